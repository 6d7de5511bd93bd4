/**
 * An exclusive lock file for the life of a scope, held by a live process. Two users: the embedded
 * database's data directory (PGlite has no lock of its own) and the file checkpoint store's
 * read-modify-write. The file holds `{pid, host, startedAt}`:
 * - it is made whole before it appears (a temp file hard-linked into place: atomic, and fails if the
 *   lock exists), so a contender never reads a half-written lock;
 * - a lock whose pid is dead on this host is stale and taken over (renamed aside: only one contender
 *   wins); another host's lock cannot be checked from here and counts as held;
 * - `wait` polls for a lock that is held, up to that long; without it the first refusal is final.
 * Unreadable content (written by hand, or by something else) counts as held: removing a lock is the
 * user's call, and the caller's message says how.
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import { Clock, Data, Duration, Effect } from "effect"
import type { Scope } from "effect"

export interface LockInfo {
  readonly pid: number
  readonly host: string
  readonly startedAt: string
}

/** Another live process holds the lock (`info` is undefined when its content cannot be read). */
export class Held extends Data.TaggedError("FileLockHeld")<{ readonly file: string; readonly info: LockInfo | undefined }> {}

/** The lock file could not be made or read. */
export class Failed extends Data.TaggedError("FileLockFailed")<{ readonly file: string; readonly reason: string }> {}

/** Locks this process holds: lock path → the exact content written, so release only removes its own. */
const held = new Map<string, string>()

let exitHookInstalled = false
/** On `process.exit` (and a normal end) no finalizer runs: remove our lock files synchronously. */
const installExitHook = () => {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on("exit", () => {
    for (const [file, content] of held) removeIfOurs(file, content)
  })
}

const removeIfOurs = (file: string, content: string) => {
  try {
    if (Fs.readFileSync(file, "utf8") === content) Fs.unlinkSync(file)
  } catch {
    // already gone or unreadable: nothing of ours to remove
  }
}

const code = (e: unknown): string | undefined =>
  typeof e === "object" && e !== null && "code" in e ? String((e as { code: unknown }).code) : undefined

const describe = (e: unknown): string => (e instanceof Error ? e.message : String(e))

const parse = (raw: string): LockInfo | undefined => {
  // the checkpoint store's lock used to be a bare pid, written on this host
  if (/^\d+$/.test(raw.trim())) return { pid: Number(raw.trim()), host: Os.hostname(), startedAt: "" }
  try {
    const v: unknown = JSON.parse(raw)
    if (typeof v !== "object" || v === null) return undefined
    const { host, pid, startedAt } = v as Record<string, unknown>
    if (typeof pid !== "number" || !Number.isInteger(pid) || pid <= 0 || typeof host !== "string") return undefined
    return { pid, host, startedAt: typeof startedAt === "string" ? startedAt : "" }
  } catch {
    return undefined
  }
}

/**
 * Whether the holder may still be running. Our own pid holds it only if this process took it: a lock
 * with our pid but not in `held` was left by an earlier process that had the same pid (a container
 * restarted as pid 1).
 */
const isAlive = (file: string, info: LockInfo): boolean => {
  if (info.host !== Os.hostname()) return true
  if (info.pid === process.pid) return held.has(file)
  try {
    process.kill(info.pid, 0)
    return true
  } catch (e) {
    // EPERM: the process exists but belongs to another user
    return code(e) === "EPERM"
  }
}

type Attempt =
  | { readonly _tag: "Acquired" }
  | { readonly _tag: "Held"; readonly info: LockInfo | undefined }
  | { readonly _tag: "Retry" }

/** One try: create the lock whole, or judge the holder; a stale lock is moved aside and we say Retry. */
const attempt = (file: string, content: string): Attempt => {
  const temp = `${file}.${process.pid}.${Date.now()}.tmp`
  try {
    Fs.writeFileSync(temp, content, { mode: 0o644, flush: true })
    Fs.linkSync(temp, file)
    return { _tag: "Acquired" }
  } catch (e) {
    if (code(e) !== "EEXIST") throw e
  } finally {
    Fs.rmSync(temp, { force: true })
  }
  let raw: string
  try {
    raw = Fs.readFileSync(file, "utf8")
  } catch (e) {
    if (code(e) === "ENOENT") return { _tag: "Retry" } // released meanwhile
    throw e
  }
  const info = parse(raw)
  if (info === undefined || isAlive(file, info)) return { _tag: "Held", info }
  // Stale. Rename is atomic, so only one contender moves this file aside; the aside copy is then
  // checked: if it is not the stale lock we judged (another contender already replaced it), put it back.
  const aside = `${file}.stale.${process.pid}.${Date.now()}`
  try {
    Fs.renameSync(file, aside)
  } catch (e) {
    if (code(e) === "ENOENT") return { _tag: "Retry" }
    throw e
  }
  try {
    if (Fs.readFileSync(aside, "utf8") !== raw) {
      try {
        Fs.linkSync(aside, file)
      } catch {
        // a third contender created one meanwhile: it is the holder now
      }
    }
  } finally {
    Fs.rmSync(aside, { force: true })
  }
  return { _tag: "Retry" }
}

/** how often a waiting `acquire` looks again */
const pollEvery = Duration.millis(20)

/**
 * Holds the lock file `file` for the life of the scope. Fails with `Held` when a live process holds it
 * (this one included, through another scope) for longer than `wait` (default: not at all), with
 * `Failed` when the file cannot be made.
 */
export const acquire = (
  file: string,
  options?: { readonly wait?: Duration.DurationInput | undefined }
): Effect.Effect<void, Held | Failed, Scope.Scope> => {
  const content = JSON.stringify({ pid: process.pid, host: Os.hostname(), startedAt: new Date().toISOString() })
  const once: Effect.Effect<void, Held | Failed> = Effect.gen(function*() {
    const ours = held.get(file)
    if (ours !== undefined) return yield* new Held({ file, info: parse(ours) })
    // A few rounds: each Retry means the file changed under us (released or a stale one moved aside).
    for (let round = 0; round < 5; round++) {
      const result = yield* Effect.try({
        try: () => attempt(file, content),
        catch: (e) => new Failed({ file, reason: describe(e) })
      })
      if (result._tag === "Acquired") {
        held.set(file, content)
        installExitHook()
        return
      }
      if (result._tag === "Held") return yield* new Held({ file, info: result.info })
    }
    return yield* new Failed({ file, reason: "it kept changing while being taken" })
  })
  const waitMs = options?.wait === undefined ? 0 : Duration.toMillis(Duration.decode(options.wait))
  const take = Effect.flatMap(Clock.currentTimeMillis, (start) => {
    const loop: Effect.Effect<void, Held | Failed> = Effect.catchTag(once, "FileLockHeld", (e) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        now - start >= waitMs ? Effect.fail(e) : Effect.zipRight(Effect.sleep(pollEvery), loop)))
    return loop
  })
  return Effect.acquireRelease(take, () =>
    Effect.sync(() => {
      removeIfOurs(file, content)
      held.delete(file)
    }))
}

/** Who holds the lock file, if anyone (for `ferry status` and messages). */
export const holder = (file: string): LockInfo | undefined => {
  try {
    return parse(Fs.readFileSync(file, "utf8"))
  } catch {
    return undefined
  }
}

/**
 * Whether this process still holds the lock file it took: the file is there with our content. False
 * after someone removed it, or replaced it (another process judged it stale).
 */
export const stillHeld = (file: string): boolean => {
  const ours = held.get(file)
  if (ours === undefined) return false
  try {
    return Fs.readFileSync(file, "utf8") === ours
  } catch {
    return false
  }
}
