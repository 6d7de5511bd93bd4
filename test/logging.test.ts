/**
 * Per-run state of the logger: the redactor and the status line come from the fiber that logs
 * (`CurrentRedactor`, `CurrentStatusLine`), so two runs in one process never use each other's.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, LogLevel } from "effect"
import * as Logging from "../src/cli/Logging.js"
import { CurrentStatusLine, StatusLine } from "../src/cli/StatusLine.js"
import { CurrentRedactor, Redactor } from "../src/domain/Secrets.js"

const secretA = "token-of-application-a"
const secretB = "token-of-application-b"

/** Logs a few lines that name both secrets, yielding between them so the two fibers interleave. */
const chatter = (who: string) =>
  Effect.forEach([1, 2, 3], (i) =>
    Effect.zipRight(Effect.yieldNow(), Effect.logInfo(`${who} line ${i}: ${secretA} ${secretB}`)), { discard: true })

describe("the logger's per-run state", () => {
  it.effect("two applications logging at once: each line is redacted with its own redactor only", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      yield* Effect.all([
        chatter("a").pipe(Effect.locally(CurrentRedactor, Redactor.empty.with([secretA]))),
        chatter("b").pipe(Effect.locally(CurrentRedactor, Redactor.empty.with([secretB])))
      ], { concurrency: "unbounded", discard: true }).pipe(
        Effect.provide(Logging.layer({ format: "json", level: LogLevel.Info, write: (line) => lines.push(line) }))
      )
      const messages = lines.map((line) => JSON.parse(line).msg as string)
      expect(messages.filter((m) => m.startsWith("a "))).toEqual([1, 2, 3].map((i) => `a line ${i}: *** ${secretB}`))
      expect(messages.filter((m) => m.startsWith("b "))).toEqual([1, 2, 3].map((i) => `b line ${i}: ${secretA} ***`))
      // interleaved, or the test proves nothing
      expect(messages.slice(0, 2).map((m) => m[0]).sort()).toEqual(["a", "b"])
    }))

  it("the redactor is a value: `with` makes a new one and leaves the old one as it was", () => {
    const one = Redactor.empty.with([secretA])
    const two = one.with([secretB])
    expect(one.redact(`${secretA} ${secretB}`)).toBe(`*** ${secretB}`)
    expect(two.redact(`${secretA} ${secretB}`)).toBe("*** ***")
    expect(Redactor.empty.redact(secretA)).toBe(secretA)
  })

  it.effect("two runs with a status line each: a run's log lines print above its own status line", () =>
    Effect.gen(function*() {
      const screens = { a: [] as Array<string>, b: [] as Array<string> }
      const terminal = (into: Array<string>) =>
        ({ write: (text: string) => void into.push(text), columns: 80 }) as unknown as NodeJS.WriteStream
      const withLine = (who: "a" | "b") =>
        chatter(who).pipe(Effect.locally(CurrentStatusLine, new StatusLine(terminal(screens[who]))))
      yield* Effect.all([withLine("a"), withLine("b")], { concurrency: "unbounded", discard: true }).pipe(
        Effect.provide(Logging.layer({ format: "json", level: LogLevel.Info }))
      )
      const messages = (screen: Array<string>) => screen.map((line) => JSON.parse(line).msg as string)
      expect(messages(screens.a).map((m) => m.slice(0, 6))).toEqual(["a line", "a line", "a line"])
      expect(messages(screens.b).map((m) => m.slice(0, 6))).toEqual(["b line", "b line", "b line"])
    }))
})
