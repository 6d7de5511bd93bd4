/**
 * The CheckpointStore service: where each stream's cursor lives.
 * - `postgres` (default): table `ferry.state`, written in the same transaction as the batch's rows.
 * - `file`: one JSON file, written by write-rename-fsync after the rows commit (at-least-once:
 *   a crash between the two re-reads a batch, which the idempotent upsert absorbs).
 */
import { SqlClient } from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Context, Duration, Effect, Layer, Option } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import { basename, dirname, join, resolve } from "node:path"
import { fromSqlError } from "./Database.js"
import { DatabaseError } from "./Errors.js"
import * as FileLock from "./FileLock.js"

export interface CheckpointStoreShape {
  readonly kind: "postgres" | "file" | "memory"
  /** true: `save` must run inside the sink's transaction; false: after it commits */
  readonly transactional: boolean
  readonly load: (stream: string) => Effect.Effect<Option.Option<string>, DatabaseError>
  readonly save: (stream: string, cursor: string) => Effect.Effect<void, DatabaseError>
  readonly clear: (stream: string) => Effect.Effect<void, DatabaseError>
}

export class CheckpointStore extends Context.Tag("ferry/CheckpointStore")<CheckpointStore, CheckpointStoreShape>() {}

// ---------------------------------------------------------------------------------------------
// postgres: table ferry.state, written inside the sink's transaction

const stateExists = (sql: SqlClient): Effect.Effect<boolean, SqlError> =>
  Effect.map(
    sql.unsafe<{ present: boolean }>(`SELECT to_regclass('ferry.state') IS NOT NULL AS present`),
    (rows) => rows[0]?.present === true
  )

/**
 * `ferry.state` (created by the sink's `prepare`). `save` joins the caller's transaction:
 * @effect/sql routes every statement inside `withTransaction` to the transaction's connection.
 * Before the first `prepare` the table does not exist: `load` is None and `clear` a no-op
 * (checked with to_regclass, so a missing table never aborts an open transaction).
 */
export const layerPostgres: Layer.Layer<CheckpointStore, never, SqlClient> = Layer.effect(
  CheckpointStore,
  Effect.map(SqlClient, (client): CheckpointStoreShape => {
    const sql = client.withoutTransforms()
    return {
      kind: "postgres",
      transactional: true,
      load: (stream) =>
        Effect.gen(function*() {
          if (!(yield* stateExists(sql))) return Option.none()
          const rows = yield* sql.unsafe<{ cursor: string | null }>(
            `SELECT cursor FROM ferry.state WHERE stream = $1`,
            [stream]
          )
          return Option.fromNullable(rows[0]?.cursor)
        }).pipe(Effect.mapError((e) => fromSqlError(e, `reading the checkpoint of stream ${stream}`))),
      save: (stream, cursor) =>
        sql.unsafe(
          `INSERT INTO ferry.state (stream, cursor, updated_at) VALUES ($1, $2, now())
           ON CONFLICT (stream) DO UPDATE SET cursor = EXCLUDED.cursor, updated_at = EXCLUDED.updated_at`,
          [stream, cursor]
        ).pipe(
          Effect.asVoid,
          Effect.mapError((e) => fromSqlError(e, `saving the checkpoint of stream ${stream}`))
        ),
      clear: (stream) =>
        Effect.gen(function*() {
          if (!(yield* stateExists(sql))) return
          yield* sql.unsafe(`DELETE FROM ferry.state WHERE stream = $1`, [stream])
        }).pipe(Effect.mapError((e) => fromSqlError(e, `clearing the checkpoint of stream ${stream}`)))
    }
  })
)

// ---------------------------------------------------------------------------------------------
// file: one JSON file, replaced atomically under a lock file

interface FileState {
  readonly version: 1
  readonly streams: Record<string, { readonly cursor: string; readonly updatedAt: string }>
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

/** Missing file: empty state. Unreadable or not the expected shape: DatabaseError naming the file. */
const readState = (path: string): Effect.Effect<FileState, DatabaseError> =>
  Effect.gen(function*() {
    const text = yield* Effect.tryPromise({
      try: () => fs.readFile(path, "utf8").catch((e) => (isCode(e, "ENOENT") ? undefined : Promise.reject(e))),
      catch: fileError(path, "cannot read it")
    })
    if (text === undefined) return { version: 1, streams: {} } as FileState
    const parsed = yield* Effect.try({ try: () => JSON.parse(text) as unknown, catch: fileError(path, "not valid JSON") })
    const corrupt = (why: string) => new DatabaseError({ reason: `checkpoint file ${path} is corrupt: ${why}` })
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      return yield* corrupt("expected a JSON object")
    }
    const { version, streams } = parsed as { version?: unknown; streams?: unknown }
    if (version !== 1) return yield* corrupt(`unsupported version ${JSON.stringify(version)} (expected 1)`)
    if (typeof streams !== "object" || streams === null || Array.isArray(streams)) {
      return yield* corrupt(`"streams" is not an object`)
    }
    const out: Record<string, { cursor: string; updatedAt: string }> = {}
    for (const [name, entry] of Object.entries(streams)) {
      const e = entry as { cursor?: unknown; updatedAt?: unknown } | null
      if (typeof e !== "object" || e === null || typeof e.cursor !== "string") {
        return yield* corrupt(`stream ${JSON.stringify(name)} has no string "cursor"`)
      }
      out[name] = { cursor: e.cursor, updatedAt: typeof e.updatedAt === "string" ? e.updatedAt : "" }
    }
    return { version: 1, streams: out } as FileState
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
          await handle.writeFile(JSON.stringify(state, null, 2) + "\n", "utf8")
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
 * One JSON file `{ "version": 1, "streams": { name: { cursor, updatedAt } } }`, saved after the rows
 * commit (transactional: false). Every change is a read-modify-write under `<path>.lock`, so two
 * processes saving different streams keep both updates; the replace is write-temp, fsync, rename.
 */
export const layerFile = (path: string): Layer.Layer<CheckpointStore> =>
  Layer.effect(
    CheckpointStore,
    Effect.gen(function*() {
      const file = resolve(path)
      // one change at a time within this process; the lock file excludes other processes
      const mutex = yield* Effect.makeSemaphore(1)
      const update = (f: (streams: FileState["streams"]) => boolean) =>
        mutex.withPermits(1)(withFileLock(
          file,
          Effect.gen(function*() {
            const state = yield* readState(file)
            const streams = { ...state.streams }
            if (f(streams)) yield* writeState(file, { version: 1, streams })
          })
        ))
      return {
        kind: "file",
        transactional: false,
        load: (stream) => Effect.map(readState(file), (s) => Option.fromNullable(s.streams[stream]?.cursor)),
        save: (stream, cursor) =>
          update((streams) => {
            streams[stream] = { cursor, updatedAt: new Date().toISOString() }
            return true
          }),
        clear: (stream) =>
          update((streams) => {
            if (!(stream in streams)) return false
            delete streams[stream]
            return true
          })
      } satisfies CheckpointStoreShape
    })
  )
