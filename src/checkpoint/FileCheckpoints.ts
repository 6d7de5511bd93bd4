/**
 * The file checkpoint store: one JSON file, replaced atomically under a lock file, written after the
 * rows commit.
 */
import { Duration, Effect, Layer, Option } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import { basename, dirname, join, resolve } from "node:path"
import { type CheckpointKey, CheckpointStore, type CheckpointStoreShape, type Stored } from "../CheckpointStore.js"
import * as Cursor from "../domain/Cursor.js"
import { DatabaseError } from "../domain/Errors.js"
import * as FileLock from "../lib/FileLock.js"

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
 * A key's entry under its stream: the target table, then, for a child stream's parent row, a space and
 * the parent row's key (a table name has no space, so no target can be taken for another's entry).
 */
const entryName = (key: CheckpointKey): string => key.parent === undefined ? key.target : `${key.target} ${key.parent}`

/**
 * One JSON file `{ "version": 2, "streams": { stream: { target: { cursor, updatedAt } } } }`, saved
 * after the rows commit (transactional: false). Every change is a read-modify-write under
 * `<path>.lock`, so two processes saving different streams keep both updates; the replace is
 * write-temp, fsync, rename. A save never moves a checkpoint back (by the stream's cursor type): a run
 * that stalled and saves after a later run did leaves the later checkpoint. Its `guard` (the run still
 * holds the stream's lock) runs under the file's lock, right before the write.
 */
export const layer = (path: string): Layer.Layer<CheckpointStore> =>
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
      const own = (state: FileState, key: CheckpointKey): Entry | undefined => state.streams[key.stream]?.[entryName(key)]
      const found = (state: FileState, key: CheckpointKey): Option.Option<Stored> => {
        const mine = own(state, key)
        if (mine !== undefined) return Option.some({ cursor: mine.cursor, legacy: false })
        if (key.parent !== undefined) return Option.none()
        const legacy = state.legacy[key.stream]
        return legacy === undefined ? Option.none() : Option.some({ cursor: legacy.cursor, legacy: true })
      }
      const put = (state: FileState, key: CheckpointKey, entry: Entry) => {
        const targets = state.streams[key.stream] ?? entries<Entry>()
        targets[entryName(key)] = entry
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
            // a stream's key clears its parent rows' checkpoints too; a parent row's key, its own
            const names = Object.keys(targets ?? {}).filter((name) =>
              name === entryName(key) || (key.parent === undefined && name.startsWith(`${key.target} `))
            )
            const legacy = key.parent === undefined && state.legacy[key.stream] !== undefined
            for (const name of names) delete targets![name]
            if (targets !== undefined && Object.keys(targets).length === 0) delete state.streams[key.stream]
            if (legacy) delete state.legacy[key.stream]
            return [undefined, names.length > 0 || legacy]
          })
      } satisfies CheckpointStoreShape
    })
  )
