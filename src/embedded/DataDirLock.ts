/**
 * An exclusive lock on an embedded Postgres data directory. Two processes opening the same PGlite
 * directory corrupt it, and PGlite has no lock of its own, so this must be taken BEFORE PGlite opens
 * the directory. It is a `FileLock` next to the directory (`<dir>.lock`), refused at once when held:
 * a second run on the same directory exits 75 instead of waiting.
 */
import * as Path from "node:path"
import { Effect } from "effect"
import type { Scope } from "effect"
import * as Os from "node:os"
import { DatabaseError, LockHeld } from "../domain/Errors.js"
import * as FileLock from "../lib/FileLock.js"

/** `/a/b/pgdata` → `/a/b/pgdata.lock`: outside the directory, so PGlite never sees it. */
export const lockPath = (dir: string): string => `${Path.resolve(dir)}.lock`

const heldError = (dir: string, file: string, info: FileLock.LockInfo | undefined) =>
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
 * Take the lock on `dir` for the life of the scope. Fails with `LockHeld` when a live process holds
 * it (including this one, through another scope), with `DatabaseError` when the file cannot be made.
 */
export const acquire = (dir: string): Effect.Effect<void, LockHeld | DatabaseError, Scope.Scope> => {
  const resolved = Path.resolve(dir)
  return FileLock.acquire(lockPath(resolved)).pipe(
    Effect.catchTags({
      FileLockHeld: (e) => Effect.fail(heldError(resolved, e.file, e.info)),
      FileLockFailed: (e) => Effect.fail(new DatabaseError({ reason: `cannot take the lock ${e.file}: ${e.reason}` }))
    })
  )
}

/** Who holds the lock on `dir`, if anyone (for `ferry status` and messages). */
export const holder = (dir: string): FileLock.LockInfo | undefined => FileLock.holder(lockPath(dir))

/**
 * Fails when this process no longer holds the lock on `dir` (its file was removed or replaced): on
 * the embedded database that lock is the stream locks' stand-in, checked before a write no
 * transaction guards (the file checkpoint).
 */
export const verify = (dir: string): Effect.Effect<void, DatabaseError> =>
  Effect.suspend(() =>
    FileLock.stillHeld(lockPath(dir))
      ? Effect.void
      : Effect.fail(
        new DatabaseError({
          reason: `lost the lock of the data directory ${Path.resolve(dir)}: ${lockPath(dir)} is no longer this process's; ` +
            `stopping rather than writing without it`
        })
      )
  )
