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

/**
 * A reporter for the life of the scope. `tty`: redraw the status line (at most every 100 ms), and
 * the logger prints through it for the rest of the scope (`CurrentStatusLine`, in this fiber and
 * those it forks after); otherwise log `run.progress` every `interval` while there is news.
 */
export const make = (options: {
  readonly tty: boolean
  readonly interval?: Duration.DurationInput
}): Effect.Effect<Reporter, never, Scope.Scope> =>
  Effect.gen(function*() {
    let latest: SyncProgress | undefined
    let shown: SyncProgress | undefined
    const update = (p: SyncProgress) => {
      latest = p
    }
    if (options.tty && process.stderr.isTTY) {
      const line = new StatusLine(process.stderr)
      yield* Effect.addFinalizer(() => Effect.sync(() => line.end()))
      yield* Effect.locallyScoped(CurrentStatusLine, line)
      yield* Effect.forkScoped(
        Effect.sync(() => {
          if (latest !== undefined && latest !== shown) line.show(render((shown = latest)))
        }).pipe(Effect.repeat(Schedule.spaced(Duration.millis(100))))
      )
    } else {
      yield* Effect.forkScoped(
        Effect.suspend(() => {
          if (latest === undefined || latest === shown) return Effect.void
          const p = (shown = latest)
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
        }).pipe(Effect.repeat(Schedule.spaced(options.interval ?? Duration.seconds(10))), Effect.delay(options.interval ?? Duration.seconds(10)))
      )
    }
    return { update }
  })
