/**
 * Live progress of a run. On a terminal: one status line at the bottom of stderr (`StatusLine`), with
 * the run's log lines printed above it. Not on a terminal: a `run.progress` log line every interval.
 */
import { Duration, Effect, Schedule } from "effect"
import type { Scope } from "effect"
import { CurrentStatusLine, StatusLine } from "./StatusLine.js"
import type { Progress as SyncProgress } from "../sync/Sync.js"

export interface Reporter {
  readonly update: (progress: SyncProgress) => void
}

const rate = (records: number, ms: number) => (ms <= 0 ? 0 : Math.round((records * 1000) / ms))
const clock = (ms: number) => {
  const s = Math.floor(ms / 1000)
  return `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`
}

export const render = (p: SyncProgress): string =>
  `${p.stream}: ${p.pages} page${p.pages === 1 ? "" : "s"}, ${p.fetched.toLocaleString("en-US")} record${p.fetched === 1 ? "" : "s"} ` +
  `(${p.inserted} new, ${p.updated} updated, ${p.quarantined} quarantined), ` +
  `${rate(p.fetched, p.elapsedMs).toLocaleString("en-US")} rec/s, ${clock(p.elapsedMs)}`

/** how long a stream stays on the status line after its last news (a finished stream leaves it) */
const shownFor = 3_000

/**
 * A reporter for the life of the scope, for one stream at a time or several (`--concurrency`). `tty`:
 * redraw the status line (at most every 100 ms) with each stream that had news in the last seconds, and
 * the logger prints through it for the rest of the scope (`CurrentStatusLine`, in this fiber and those
 * it forks after); otherwise log `run.progress` for each stream with news every `interval`.
 */
export const make = (options: {
  readonly tty: boolean
  readonly interval?: Duration.DurationInput
}): Effect.Effect<Reporter, never, Scope.Scope> =>
  Effect.gen(function*() {
    // the latest progress of each stream, and when it came
    const latest = new Map<string, { readonly progress: SyncProgress; readonly at: number }>()
    // per stream, the progress last logged
    const shown = new Map<string, SyncProgress>()
    const update = (p: SyncProgress) => {
      latest.set(p.stream, { progress: p, at: Date.now() })
    }
    if (options.tty && process.stderr.isTTY) {
      const line = new StatusLine(process.stderr)
      yield* Effect.addFinalizer(() => Effect.sync(() => line.end()))
      yield* Effect.locallyScoped(CurrentStatusLine, line)
      let text = ""
      yield* Effect.forkScoped(
        Effect.sync(() => {
          const now = Date.now()
          const next = [...latest.values()].filter((e) => now - e.at < shownFor).map((e) => render(e.progress)).join("  |  ")
          if (next !== "" && next !== text) line.show((text = next))
        }).pipe(Effect.repeat(Schedule.spaced(Duration.millis(100))))
      )
    } else {
      const news = Effect.suspend(() => {
        const fresh = [...latest.values()].map((e) => e.progress).filter((p) => shown.get(p.stream) !== p)
        return Effect.forEach(fresh, (p) => {
          shown.set(p.stream, p)
          return Effect.logInfo("run.progress").pipe(
            Effect.annotateLogs({
              stream: p.stream,
              pages: p.pages,
              fetched: p.fetched,
              inserted: p.inserted,
              updated: p.updated,
              unchanged: p.unchanged,
              quarantined: p.quarantined,
              retries: p.retries,
              elapsed_ms: p.elapsedMs,
              records_per_s: rate(p.fetched, p.elapsedMs)
            })
          )
        }, { discard: true })
      })
      yield* Effect.forkScoped(
        news.pipe(Effect.repeat(Schedule.spaced(options.interval ?? Duration.seconds(10))), Effect.delay(options.interval ?? Duration.seconds(10)))
      )
    }
    return { update }
  })
