/**
 * The CheckpointStore service: where each stream's cursor lives, keyed by the stream and its target
 * table (`CheckpointKey`).
 * - `postgres` (default): table `ferry.state`, written in the same transaction as the batch's rows.
 * - `file`: one JSON file, written by write-rename-fsync after the rows commit (at-least-once:
 *   a crash between the two re-reads a batch, which the idempotent upsert absorbs).
 * Checkpoints saved by releases that keyed them by the stream alone are `legacy`: the first target
 * that holds rows adopts one, and no other target can then.
 */
import { SqlClient } from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Context, Duration, Effect, Layer, Option } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import { basename, dirname, join, resolve } from "node:path"
import { fromSqlError } from "./Database.js"
import * as Cursor from "./Cursor.js"
import { DatabaseError } from "./Errors.js"
import * as FileLock from "./FileLock.js"
import { type CursorType, type StreamSpec, targetName } from "./StreamSpec.js"

/** Whose checkpoint: a stream AND its target table, so that same-named streams of other configs never share one. */
export interface CheckpointKey {
  readonly stream: string
  /** the target table, `StreamSpec.targetName`: `schema.table` */
  readonly target: string
  /** how its cursors compare (the file store keeps the greatest) */
  readonly cursorType: CursorType
}

export const keyOf = (stream: StreamSpec): CheckpointKey => ({
  stream: stream.name,
  target: targetName(stream.target),
  cursorType: Cursor.typeOf(stream)
})

export interface Stored {
  readonly cursor: string
  /**
   * saved by a release that keyed checkpoints by the stream alone: it may belong to another target
   * with a stream of this name. `load` with `adopt` makes it this key's, so that only one target has it.
   */
  readonly legacy: boolean
}

export interface CheckpointStoreShape {
  readonly kind: "postgres" | "file" | "memory"
  /** true: `save` must run inside the sink's transaction; false: after it commits */
  readonly transactional: boolean
  /**
   * The key's checkpoint, else a legacy one of its stream. `adopt`: a legacy checkpoint found becomes
   * the key's (call it only for a target that holds rows: only such a target can have been filled by it).
   */
  readonly load: (
    key: CheckpointKey,
    options?: { readonly adopt?: boolean | undefined }
  ) => Effect.Effect<Option.Option<Stored>, DatabaseError>
  /**
   * `guard` runs right before a save that no transaction guards (the file store): it fails when the
   * run no longer holds the stream's lock. The file store also never moves a checkpoint back.
   */
  readonly save: (
    key: CheckpointKey,
    cursor: string,
    guard?: Effect.Effect<void, DatabaseError>
  ) => Effect.Effect<void, DatabaseError>
  /** forgets the key's checkpoint and its stream's legacy one (`reset`: the next run starts from `initial`) */
  readonly clear: (key: CheckpointKey) => Effect.Effect<void, DatabaseError>
}

export class CheckpointStore extends Context.Tag("ferry/CheckpointStore")<CheckpointStore, CheckpointStoreShape>() {}

// ---------------------------------------------------------------------------------------------
// postgres: table ferry.state, written inside the sink's transaction

/**
 * `none`: no `ferry.state` yet; `legacy`: not yet migrated (a release that keyed by stream alone: only
 * `status` and `reset` can meet it, as `prepare` migrates); `keyed`: (stream, target).
 */
const stateShape = (sql: SqlClient): Effect.Effect<"none" | "legacy" | "keyed", SqlError> =>
  Effect.map(
    sql.unsafe<{ present: boolean; keyed: boolean }>(
      `SELECT to_regclass('ferry.state') IS NOT NULL AS present,
         EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass('ferry.state') AND attname = 'target'
           AND NOT attisdropped) AS keyed`
    ),
    (rows) => (rows[0]?.present !== true ? "none" : rows[0].keyed ? "keyed" : "legacy")
  )

const some = (cursor: string | null | undefined, legacy: boolean): Option.Option<Stored> =>
  cursor === null || cursor === undefined ? Option.none() : Option.some({ cursor, legacy })

/**
 * `ferry.state` (made by the sink's `prepare`), one row per (stream, target); target '' is a legacy
 * row. `save` joins the caller's transaction: @effect/sql routes every statement inside
 * `withTransaction` to the transaction's connection. Before the first `prepare` the table does not
 * exist: `load` is None and `clear` a no-op (checked in the catalog, so a missing table never aborts
 * an open transaction).
 */
export const layerPostgres: Layer.Layer<CheckpointStore, never, SqlClient> = Layer.effect(
  CheckpointStore,
  Effect.map(SqlClient, (client): CheckpointStoreShape => {
    const sql = client.withoutTransforms()
    const named = (key: CheckpointKey) => `stream ${key.stream} (${key.target})`
    return {
      kind: "postgres",
      transactional: true,
      load: (key, options) =>
        Effect.gen(function*() {
          const shape = yield* stateShape(sql)
          if (shape === "none") return Option.none()
          if (shape === "legacy") {
            const rows = yield* sql.unsafe<{ cursor: string | null }>(`SELECT cursor FROM ferry.state WHERE stream = $1`, [key.stream])
            return some(rows[0]?.cursor, true)
          }
          const [row] = yield* sql.unsafe<{ cursor: string | null; legacy: boolean }>(
            `SELECT cursor, target = '' AS legacy FROM ferry.state WHERE stream = $1 AND target IN ($2, '')
             ORDER BY target = '' LIMIT 1`,
            [key.stream, key.target]
          )
          if (row === undefined || !row.legacy || options?.adopt !== true) return some(row?.cursor, row?.legacy ?? false)
          // One statement: of two targets adopting at once, one gets the row, the other none.
          const [adopted] = yield* sql.unsafe<{ cursor: string | null }>(
            `UPDATE ferry.state SET target = $2, updated_at = now() WHERE stream = $1 AND target = '' RETURNING cursor`,
            [key.stream, key.target]
          )
          return some(adopted?.cursor, true)
        }).pipe(Effect.mapError((e) => fromSqlError(e, `reading the checkpoint of ${named(key)}`))),
      save: (key, cursor) =>
        sql.unsafe(
          `INSERT INTO ferry.state (stream, target, cursor, updated_at) VALUES ($1, $2, $3, now())
           ON CONFLICT (stream, target) DO UPDATE SET cursor = EXCLUDED.cursor, updated_at = EXCLUDED.updated_at`,
          [key.stream, key.target, cursor]
        ).pipe(
          Effect.asVoid,
          Effect.mapError((e) => fromSqlError(e, `saving the checkpoint of ${named(key)}`))
        ),
      clear: (key) =>
        Effect.gen(function*() {
          const shape = yield* stateShape(sql)
          if (shape === "none") return
          if (shape === "legacy") yield* sql.unsafe(`DELETE FROM ferry.state WHERE stream = $1`, [key.stream])
          else yield* sql.unsafe(`DELETE FROM ferry.state WHERE stream = $1 AND target IN ($2, '')`, [key.stream, key.target])
        }).pipe(Effect.mapError((e) => fromSqlError(e, `clearing the checkpoint of ${named(key)}`)))
    }
  })
)

// ---------------------------------------------------------------------------------------------
// file: one JSON file, replaced atomically under a lock file

interface Entry {
  readonly cursor: string
  readonly updatedAt: string
}

/** maps without a prototype: a stream named `__proto__` is a stream like any other */
type Entries<V> = Record<string, V>
const entries = <V>(): Entries<V> => Object.create(null) as Entries<V>

/**
 * Version 2: `streams` maps stream -> target -> checkpoint. A version 1 file (stream -> checkpoint)
 * is read as `legacy` entries, which the first target that is not empty adopts (as in ferry.state).
 */
interface FileState {
  readonly streams: Entries<Entries<Entry>>
  readonly legacy: Entries<Entry>
}

const errorText = (cause: unknown): string => {
  if (typeof cause === "object" && cause !== null) {
    const { code, message } = cause as { code?: unknown; message?: unknown }
    if (typeof message === "string" && message !== "") return message
    if (typeof code === "string") return code
  }
  return String(cause)
}

const fileError = (path: string, doing: string) => (cause: unknown): DatabaseError =>
  new DatabaseError({ reason: `checkpoint file ${path}: ${doing}: ${errorText(cause)}` })

const isCode = (cause: unknown, code: string): boolean =>
  typeof cause === "object" && cause !== null && (cause as { code?: unknown }).code === code

/** `{ name: { cursor, updatedAt } }` of a file, or the reason it is not that */
const parseEntries = (value: unknown, where: string): Entries<Entry> | string => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return `${where} is not an object`
  const out = entries<Entry>()
  for (const [name, entry] of Object.entries(value)) {
    const e = entry as { cursor?: unknown; updatedAt?: unknown } | null
    if (typeof e !== "object" || e === null || typeof e.cursor !== "string") {
      return `${where} ${JSON.stringify(name)} has no string "cursor"`
    }
    out[name] = { cursor: e.cursor, updatedAt: typeof e.updatedAt === "string" ? e.updatedAt : "" }
  }
  return out
}

/** Missing file: empty state. Unreadable or not the expected shape: DatabaseError naming the file. */
const readState = (path: string): Effect.Effect<FileState, DatabaseError> =>
  Effect.gen(function*() {
    const text = yield* Effect.tryPromise({
      try: () => fs.readFile(path, "utf8").catch((e) => (isCode(e, "ENOENT") ? undefined : Promise.reject(e))),
      catch: fileError(path, "cannot read it")
    })
    if (text === undefined) return { streams: entries(), legacy: entries() }
    const parsed = yield* Effect.try({ try: () => JSON.parse(text) as unknown, catch: fileError(path, "not valid JSON") })
    const corrupt = (why: string) => new DatabaseError({ reason: `checkpoint file ${path} is corrupt: ${why}` })
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      return yield* corrupt("expected a JSON object")
    }
    const { legacy, streams, version } = parsed as { version?: unknown; streams?: unknown; legacy?: unknown }
    if (version === 1) {
      const old = parseEntries(streams, "stream")
      return typeof old === "string" ? yield* corrupt(old) : { streams: entries(), legacy: old }
    }
    if (version !== 2) return yield* corrupt(`unsupported version ${JSON.stringify(version)} (expected 1 or 2)`)
    if (typeof streams !== "object" || streams === null || Array.isArray(streams)) {
      return yield* corrupt(`"streams" is not an object`)
    }
    const out = entries<Entries<Entry>>()
    for (const [name, targets] of Object.entries(streams)) {
      const parsedTargets = parseEntries(targets, `stream ${JSON.stringify(name)} target`)
      if (typeof parsedTargets === "string") return yield* corrupt(parsedTargets)
      out[name] = parsedTargets
    }
    const old = legacy === undefined ? entries<Entry>() : parseEntries(legacy, "legacy stream")
    return typeof old === "string" ? yield* corrupt(old) : { streams: out, legacy: old }
  })

const fileContent = (state: FileState) => ({
  version: 2,
  streams: state.streams,
  ...(Object.keys(state.legacy).length > 0 ? { legacy: state.legacy } : {})
})

/** write a temp file in the same directory, fsync it, rename it over, fsync the directory */
const writeState = (path: string, state: FileState): Effect.Effect<void, DatabaseError> =>
  Effect.tryPromise({
    try: async () => {
      const dir = dirname(path)
      await fs.mkdir(dir, { recursive: true })
      const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`)
      try {
        const handle = await fs.open(tmp, "wx", 0o600)
        try {
          await handle.writeFile(JSON.stringify(fileContent(state), null, 2) + "\n", "utf8")
          await handle.sync()
        } finally {
          await handle.close()
        }
        await fs.rename(tmp, path)
      } catch (e) {
        await fs.rm(tmp, { force: true })
        throw e
      }
      // some platforms cannot fsync a directory; the rename itself is still atomic there
      const d = await fs.open(dir, "r").catch(() => undefined)
      if (d !== undefined) await d.sync().catch(() => undefined).finally(() => d.close())
    },
    catch: fileError(path, "cannot write it")
  })

/** how long a save waits for another process's read-modify-write of the same file */
const lockWait = Duration.seconds(10)

/** `<path>.lock` (a `FileLock`: another process that saves waits for it) for the duration of `body` */
const withFileLock = <A>(path: string, body: Effect.Effect<A, DatabaseError>): Effect.Effect<A, DatabaseError> => {
  const lockPath = `${path}.lock`
  const lock = Effect.zipRight(
    Effect.tryPromise({ try: () => fs.mkdir(dirname(path), { recursive: true }), catch: fileError(path, "cannot make its directory") }),
    FileLock.acquire(lockPath, { wait: lockWait }).pipe(
      Effect.catchTags({
        FileLockHeld: (e) =>
          Effect.fail(
            new DatabaseError({
              reason: `checkpoint file ${path}: the lock file ${lockPath} is held by ${
                e.info === undefined ? "an unknown process (remove it if no Ferry process is running)" : `pid ${e.info.pid} on ${e.info.host}`
              }`
            })
          ),
        FileLockFailed: (e) => Effect.fail(fileError(path, `cannot take the lock file ${lockPath}`)(e.reason))
      })
    )
  )
  return Effect.scoped(Effect.zipRight(lock, body))
}

/**
 * One JSON file `{ "version": 2, "streams": { stream: { target: { cursor, updatedAt } } } }`, saved
 * after the rows commit (transactional: false). Every change is a read-modify-write under
 * `<path>.lock`, so two processes saving different streams keep both updates; the replace is
 * write-temp, fsync, rename. A save never moves a checkpoint back (by the stream's cursor type): a run
 * that stalled and saves after a later run did leaves the later checkpoint. Its `guard` (the run still
 * holds the stream's lock) runs under the file's lock, right before the write.
 */
export const layerFile = (path: string): Layer.Layer<CheckpointStore> =>
  Layer.effect(
    CheckpointStore,
    Effect.gen(function*() {
      const file = resolve(path)
      // one change at a time within this process; the lock file excludes other processes
      const mutex = yield* Effect.makeSemaphore(1)
      /** `f` changes the state and says whether to write it */
      const update = <A>(
        f: (state: FileState) => readonly [A, boolean],
        guard: Effect.Effect<void, DatabaseError> = Effect.void
      ) =>
        mutex.withPermits(1)(withFileLock(
          file,
          Effect.gen(function*() {
            yield* guard
            const state = yield* readState(file)
            const [result, changed] = f(state)
            if (changed) yield* writeState(file, state)
            return result
          })
        ))
      const own = (state: FileState, key: CheckpointKey): Entry | undefined => state.streams[key.stream]?.[key.target]
      const found = (state: FileState, key: CheckpointKey): Option.Option<Stored> => {
        const mine = own(state, key)
        if (mine !== undefined) return Option.some({ cursor: mine.cursor, legacy: false })
        const legacy = state.legacy[key.stream]
        return legacy === undefined ? Option.none() : Option.some({ cursor: legacy.cursor, legacy: true })
      }
      const put = (state: FileState, key: CheckpointKey, entry: Entry) => {
        const targets = state.streams[key.stream] ?? entries<Entry>()
        targets[key.target] = entry
        state.streams[key.stream] = targets
      }
      return {
        kind: "file",
        transactional: false,
        load: (key, options) =>
          Effect.flatMap(readState(file), (read) => {
            const seen = found(read, key)
            if (options?.adopt !== true || Option.isNone(seen) || !seen.value.legacy) return Effect.succeed(seen)
            // adopt under the file's lock, from the file as it is then
            return update((state) => {
              const stored = found(state, key)
              if (Option.isNone(stored) || !stored.value.legacy) return [stored, false]
              put(state, key, state.legacy[key.stream]!)
              delete state.legacy[key.stream]
              return [stored, true]
            })
          }),
        save: (key, cursor, guard) =>
          update((state) => {
            const stored = own(state, key)
            // never back: of two runs, the one that saves last may hold the older cursor
            if (stored !== undefined && Cursor.compare(key.cursorType)(stored.cursor, cursor) >= 0) return [undefined, false]
            put(state, key, { cursor, updatedAt: new Date().toISOString() })
            return [undefined, true]
          }, guard),
        clear: (key) =>
          update((state) => {
            const targets = state.streams[key.stream]
            const changed = own(state, key) !== undefined || state.legacy[key.stream] !== undefined
            if (targets !== undefined) {
              delete targets[key.target]
              if (Object.keys(targets).length === 0) delete state.streams[key.stream]
            }
            delete state.legacy[key.stream]
            return [undefined, changed]
          })
      } satisfies CheckpointStoreShape
    })
  )
