/**
 * FileLock, the lock file behind the embedded database's data directory and the file checkpoint
 * store: exclusive while a scope holds it, removed after, stale locks of dead processes taken over,
 * a live holder refused at once or waited for up to `wait`.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Scope } from "effect"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as FileLock from "../src/lib/FileLock.js"

const tempFile = () => Path.join(Fs.mkdtempSync(Path.join(Os.tmpdir(), "ferry-lock-")), "thing.lock")

/** a live process that is not this one, for as long as the scope is open */
const otherProcess = Effect.acquireRelease(
  Effect.sync(() => spawn(process.execPath, ["-e", "setTimeout(() => {}, 60000)"], { stdio: "ignore" })),
  (child) => Effect.sync(() => child.kill("SIGKILL"))
)

describe("FileLock", () => {
  it.scopedLive("holds the file for the scope with this process's pid and host, and removes it after", () =>
    Effect.gen(function*() {
      const file = tempFile()
      const scope = yield* Scope.make()
      yield* FileLock.acquire(file).pipe(Scope.extend(scope))
      expect(FileLock.holder(file)).toMatchObject({ pid: process.pid, host: Os.hostname() })
      yield* Scope.close(scope, Exit.void)
      expect(Fs.existsSync(file)).toBe(false)
    }))

  it.scopedLive("a second holder in this process is refused at once, or gets it when the first lets go within `wait`", () =>
    Effect.gen(function*() {
      const file = tempFile()
      const first = yield* Scope.make()
      yield* FileLock.acquire(file).pipe(Scope.extend(first))
      const refused = yield* Effect.flip(Effect.scoped(FileLock.acquire(file)))
      expect(refused).toMatchObject({ _tag: "FileLockHeld", info: { pid: process.pid } })
      const waiting = yield* Effect.fork(Effect.scoped(FileLock.acquire(file, { wait: Duration.seconds(5) })))
      yield* Effect.sleep(Duration.millis(100))
      expect(waiting.unsafePoll()).toBeNull()
      yield* Scope.close(first, Exit.void)
      expect(Exit.isSuccess(yield* Fiber.await(waiting))).toBe(true)
    }))

  it.scopedLive("a live process's lock is held: refused at once, and still refused once `wait` has passed", () =>
    Effect.gen(function*() {
      const file = tempFile()
      const child = yield* otherProcess
      Fs.writeFileSync(file, JSON.stringify({ pid: child.pid, host: Os.hostname(), startedAt: "2024-01-01T00:00:00Z" }))
      expect(yield* Effect.flip(Effect.scoped(FileLock.acquire(file)))).toMatchObject({ info: { pid: child.pid } })
      const started = Date.now()
      const error = yield* Effect.flip(Effect.scoped(FileLock.acquire(file, { wait: Duration.millis(200) })))
      expect(error._tag).toBe("FileLockHeld")
      expect(Date.now() - started).toBeGreaterThanOrEqual(200)
      expect(FileLock.holder(file)?.pid).toBe(child.pid)
    }))

  it.scopedLive("a dead process's lock is taken over, in the JSON form and in the bare-pid form", () =>
    Effect.gen(function*() {
      // above any pid_max, so no such process
      for (const content of [JSON.stringify({ pid: 99999999, host: Os.hostname(), startedAt: "x" }), "99999999\n"]) {
        const file = tempFile()
        Fs.writeFileSync(file, content)
        yield* Effect.scoped(Effect.zipRight(
          FileLock.acquire(file),
          Effect.sync(() => expect(FileLock.holder(file)?.pid).toBe(process.pid))
        ))
        expect(Fs.existsSync(file)).toBe(false)
      }
    }))

  it.scopedLive("another host's lock, and one that cannot be read, are held and left alone", () =>
    Effect.gen(function*() {
      const elsewhere = tempFile()
      Fs.writeFileSync(elsewhere, JSON.stringify({ pid: 1, host: "elsewhere.example", startedAt: "x" }))
      expect(yield* Effect.flip(Effect.scoped(FileLock.acquire(elsewhere)))).toMatchObject({
        info: { host: "elsewhere.example" }
      })
      const garbled = tempFile()
      Fs.writeFileSync(garbled, "not a lock")
      expect(yield* Effect.flip(Effect.scoped(FileLock.acquire(garbled)))).toMatchObject({ info: undefined })
      expect(Fs.readFileSync(garbled, "utf8")).toBe("not a lock")
    }))

  it.live("many fibers waiting on one lock take it one at a time", () =>
    Effect.gen(function*() {
      const file = tempFile()
      let inside = 0
      let most = 0
      yield* Effect.all(
        Array.from({ length: 8 }, () =>
          Effect.scoped(Effect.zipRight(
            FileLock.acquire(file, { wait: Duration.seconds(10) }),
            Effect.gen(function*() {
              inside++
              most = Math.max(most, inside)
              yield* Effect.sleep(Duration.millis(5))
              inside--
            })
          ))),
        { concurrency: "unbounded", discard: true }
      )
      expect(most).toBe(1)
      expect(Fs.existsSync(file)).toBe(false)
    }))
})
