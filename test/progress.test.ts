/**
 * Progress not on a terminal: a `run.progress` log line every interval while there is news, none
 * when nothing moved; on a terminal the same numbers render as one status line.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Logger, LogLevel, TestClock } from "effect"
import * as Logging from "../src/cli/Logging.js"
import * as Progress from "../src/cli/Progress.js"

const snapshot = (fetched: number, elapsedMs: number) => ({
  stream: "orders",
  pages: Math.ceil(fetched / 100),
  fetched,
  inserted: fetched - 10,
  updated: 10,
  unchanged: 0,
  quarantined: 0,
  alreadyQuarantined: 0,
  retries: 0,
  elapsedMs
})

describe("Progress", () => {
  it.scoped("logs run.progress every interval while records arrive, and stays quiet otherwise", () =>
    Effect.gen(function*() {
      const lines: Array<{ message: unknown; annotations: Record<string, unknown> }> = []
      const logger = Logger.make(({ annotations, message }) => {
        lines.push({ message, annotations: Object.fromEntries(annotations) })
      })
      yield* Effect.gen(function*() {
        const reporter = yield* Progress.make({ tty: false, interval: Duration.seconds(10) })
        reporter.update(snapshot(500, 4_000))
        yield* TestClock.adjust(Duration.seconds(10))
        expect(lines).toHaveLength(1)
        expect(lines[0]!.annotations).toMatchObject({ stream: "orders", fetched: 500, records_per_s: 125 })
        // nothing new: no line
        yield* TestClock.adjust(Duration.seconds(10))
        expect(lines).toHaveLength(1)
        reporter.update(snapshot(900, 24_000))
        yield* TestClock.adjust(Duration.seconds(10))
        expect(lines).toHaveLength(2)
        expect(lines[1]!.annotations).toMatchObject({ fetched: 900 })
      }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
    }))

  it("renders pages, records, rate and elapsed time on one line", () => {
    expect(Progress.render(snapshot(12_345, 65_000))).toBe(
      "orders: 124 pages, 12,345 records (12335 new, 10 updated, 0 quarantined), 190 rec/s, 01:05"
    )
  })

  it("says 1 page, 1 record in the singular", () => {
    expect(Progress.render({ ...snapshot(1, 1_000), pages: 1 })).toMatch(/^orders: 1 page, 1 record \(/)
  })
})

describe("the pretty run summary", () => {
  const summary = (retries: number, pages: number) => {
    const lines: Array<string> = []
    Effect.runSync(
      Effect.logInfo("run.summary").pipe(
        Effect.annotateLogs({
          stream: "orders",
          status: "succeeded",
          pages,
          fetched: 3,
          inserted: 3,
          updated: 0,
          unchanged: 0,
          quarantined: 0,
          retries,
          duration_ms: 1200,
          checkpoint: null,
          dry_run: false,
          exit_code: 0
        }),
        Effect.provide(Logging.layer({ format: "pretty", level: LogLevel.Info, write: (line) => lines.push(line) }))
      )
    )
    return lines.join("\n")
  }
  it("counts in the singular and the plural: 1 page, 1 retry; 2 pages, 2 retries; 0 retries", () => {
    expect(summary(1, 1)).toContain("; 1 page, 1 retry, 1.2 s;")
    expect(summary(2, 2)).toContain("; 2 pages, 2 retries, 1.2 s;")
    expect(summary(0, 2)).toContain("; 2 pages, 0 retries, 1.2 s;")
  })
})
