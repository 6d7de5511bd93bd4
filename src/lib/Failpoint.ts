/**
 * Named failpoints: `FERRY_FAILPOINT=<point>:<n>[:SIGKILL|SIGTERM|SIGINT][,...]` makes the process send
 * itself that signal (SIGKILL by default) the n-th time it passes the point. They exist so that the
 * crash guarantee ("kill it at any moment and run again: nothing lost, nothing stale") is tested at
 * the exact moments where a crash is most dangerous, not only where a random kill happens to land
 * (test/failpoints.test.ts, scripts/chaos.mjs; docs/GUARANTEES.md). A testing aid, not a feature.
 *
 * The variable is read once, when the module loads. Unset, `pass` is `Effect.void` and nothing else
 * runs: a handful of calls per transaction, none per record. Unparsable, `validate` fails with a
 * ConfigError naming it (78) before any command starts.
 */
import { Effect } from "effect"
import { ConfigError } from "../domain/Errors.js"

const points = ["after-fetch", "after-upsert", "before-commit", "after-commit", "retry-backoff", "mid-swap"] as const
export type Point = (typeof points)[number]

const signals = ["SIGKILL", "SIGTERM", "SIGINT"] as const
type Signal = (typeof signals)[number]

interface Armed {
  readonly point: Point
  /** fire on the n-th pass (1-based) */
  readonly n: number
  readonly signal: Signal
}

/** The failpoints of a FERRY_FAILPOINT value, or why it cannot be read. */
export const parse = (text: string): { readonly armed: ReadonlyArray<Armed> } | { readonly error: string } => {
  const armed: Array<Armed> = []
  for (const item of text.split(",")) {
    const [point, n, signal = "SIGKILL", ...rest] = item.trim().split(":")
    if (!(points as ReadonlyArray<string>).includes(point ?? "")) {
      return { error: `unknown failpoint "${point}" in "${item.trim()}" (points: ${points.join(", ")})` }
    }
    if (n === undefined || !/^[1-9][0-9]{0,8}$/.test(n)) {
      return { error: `"${item.trim()}": expected <point>:<n> with n a positive whole number` }
    }
    if (!(signals as ReadonlyArray<string>).includes(signal) || rest.length > 0) {
      return { error: `"${item.trim()}": the signal must be one of ${signals.join(", ")}` }
    }
    armed.push({ point: point as Point, n: Number(n), signal: signal as Signal })
  }
  return { armed }
}

const setting = process.env.FERRY_FAILPOINT
const parsed = setting === undefined || setting === "" ? undefined : parse(setting)
const armed = parsed !== undefined && "armed" in parsed ? parsed.armed : undefined
const passes = new Map<Point, number>()

/** Counts the pass; the failpoint armed for it, if any. */
const next = (point: Point): Armed | undefined => {
  const n = (passes.get(point) ?? 0) + 1
  passes.set(point, n)
  return armed!.find((a) => a.point === point && a.n === n)
}

/**
 * Passing `point`: fires the failpoint armed for this pass, if any, after one `failpoint` log line
 * (stderr is written synchronously, so the line is out before a SIGKILL). SIGKILL ends the process
 * here; SIGTERM and SIGINT reach main's handler a moment later: the graceful path.
 */
export const pass: (point: Point) => Effect.Effect<void> = armed === undefined
  ? () => Effect.void
  : (point) =>
    Effect.suspend(() => {
      const fire = next(point)
      if (fire === undefined) return Effect.void
      return Effect.logWarning("failpoint").pipe(
        Effect.annotateLogs({ point, pass: fire.n, signal: fire.signal }),
        Effect.zipRight(Effect.sync(() => process.kill(process.pid, fire.signal)))
      )
    })

/** 78 when FERRY_FAILPOINT is set but cannot be read (it is configuration, like the config file). */
export const validate: Effect.Effect<void, ConfigError> = parsed !== undefined && "error" in parsed
  ? Effect.fail(new ConfigError({ path: "FERRY_FAILPOINT", reason: parsed.error }))
  : Effect.void
