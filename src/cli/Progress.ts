/**
 * Live progress of a run. On a terminal: one status line at the bottom of stderr, redrawn in place
 * with Node's own readline cursor functions, and log lines are printed above it (`StatusLine.print`),
 * so the two never garble each other. Not on a terminal: a `run.progress` log line every interval.
 */
import * as readline from "node:readline"
import { Duration, Effect, Schedule } from "effect"
import type { Scope } from "effect"
import type { Progress as SyncProgress } from "../sync/Sync.js"

/** The bottom line of a terminal, owned by the progress display while a run is on. */
class StatusLine {
  private text = ""
  constructor(private readonly stream: NodeJS.WriteStream) {}
  private clear() {
    if (this.text === "") return
    readline.clearLine(this.stream, 0)
    readline.cursorTo(this.stream, 0)
  }
  /** print a line above the status line */
  print(line: string) {
    this.clear()
    this.stream.write(line + "\n")
    if (this.text !== "") this.stream.write(this.text)
  }
  show(text: string) {
    this.clear()
    this.text = text.slice(0, Math.max(10, (this.stream.columns ?? 100) - 1))
    this.stream.write(this.text)
  }
  end() {
    this.clear()
    this.text = ""
  }
}

/** Set while a progress line is on screen; the logger prints through it. */
export let statusLine: StatusLine | undefined

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
 * A reporter for the life of the scope. `tty`: redraw the status line (at most every 100 ms);
 * otherwise log `run.progress` every `interval` while there is news.
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
      yield* Effect.acquireRelease(Effect.sync(() => (statusLine = line)), () =>
        Effect.sync(() => {
          line.end()
          statusLine = undefined
        }))
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
