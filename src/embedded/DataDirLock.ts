/**
 * An exclusive lock on an embedded Postgres data directory. Two processes opening the same PGlite
 * directory corrupt it, and PGlite has no lock of its own, so this must be taken BEFORE PGlite opens
 * the directory. The lock is a file next to the directory (`<dir>.lock`) created with O_EXCL and
 * holding `{pid, host, startedAt}`. A lock whose pid is dead on this host is stale and taken over.
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Effect, Scope } from "effect"
import { DatabaseError, LockHeld } from "../Errors.js"

export interface LockInfo {
  readonly pid: number
  readonly host: string
  readonly startedAt: string
}

/** `/a/b/pgdata` → `/a/b/pgdata.lock`: outside the directory, so PGlite never sees it. */
export const lockPath = (dir: string): string => `${Path.resolve(dir)}.lock`

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
  try {
    const v: unknown = JSON.parse(raw)
    if (typeof v !== "object" || v === null) return undefined
    const { pid, host, startedAt } = v as Record<string, unknown>
    if (typeof pid !== "number" || !Number.isInteger(pid) || pid <= 0 || typeof host !== "string") return undefined
    return { pid, host, startedAt: typeof startedAt === "string" ? startedAt : "" }
  } catch {
    return undefined
  }
}

/**
 * Whether the holder may still be running. Another host's pid cannot be checked from here, so such a
 * lock counts as held (the message says how to clear it). Our own pid holds it only if this process
 * took it: a lock with our pid but not in `held` is left by an earlier process that had the same pid
 * (a container restarted as pid 1).
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

const heldError = (dir: string, file: string, info: LockInfo | undefined) =>
  new LockHeld({
    stream: "*",
    holder:
      info === undefined
        ? `the data directory ${dir} is in use: its lock file ${file} cannot be read; remove it if no Ferry process is running`
        : info.host === Os.hostname()
        ? `the data directory ${dir} is in use by pid ${info.pid} since ${info.startedAt}`
        : `the data directory ${dir} is in use by pid ${info.pid} on host ${info.host} since ${info.startedAt}; ` +
          `if that process is gone, remove ${file}`
  })

/**
 * One try: write the content to a temp file and hard-link it into place (atomic, and fails if the lock
 * exists), so a contender never reads a half-written lock; if it exists, judge the holder; if stale,
 * move it aside and say Retry.
 */
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
  // Unreadable content (written by hand, or by an older Ferry between create and write): held.
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

/**
 * Take the lock on `dir` for the life of the scope. Fails with `LockHeld` when a live process holds
 * it (including this one, through another scope), with `DatabaseError` when the file cannot be made.
 */
export const acquire = (dir: string): Effect.Effect<void, LockHeld | DatabaseError, Scope.Scope> => {
  const resolved = Path.resolve(dir)
  const file = lockPath(resolved)
  const content = JSON.stringify({ pid: process.pid, host: Os.hostname(), startedAt: new Date().toISOString() })
  const take = Effect.gen(function*() {
    const ours = held.get(file)
    if (ours !== undefined) return yield* Effect.fail(heldError(resolved, file, parse(ours)))
    // A few rounds: each Retry means the file changed under us (released or a stale one moved aside).
    for (let round = 0; round < 5; round++) {
      const result = yield* Effect.try({
        try: () => attempt(file, content),
        catch: (e) => new DatabaseError({ reason: `cannot take the lock ${file}: ${describe(e)}` })
      })
      if (result._tag === "Acquired") {
        held.set(file, content)
        installExitHook()
        return
      }
      if (result._tag === "Held") return yield* Effect.fail(heldError(resolved, file, result.info))
    }
    return yield* Effect.fail(
      new DatabaseError({ reason: `cannot take the lock ${file}: it kept changing while being taken` })
    )
  })
  return Effect.acquireRelease(take, () =>
    Effect.sync(() => {
      removeIfOurs(file, content)
      held.delete(file)
    })
  )
}

/** Who holds the lock on `dir`, if anyone (for `ferry status` and messages). */
export const holder = (dir: string): LockInfo | undefined => {
  try {
    return parse(Fs.readFileSync(lockPath(dir), "utf8"))
  } catch {
    return undefined
  }
}
