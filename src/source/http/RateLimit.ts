/**
 * A stream's client-side rate limit (`source.rateLimit`): a sliding-window log of the last `requests`
 * request starts. A request starts only once the oldest of them is at least `per` old, so no window
 * of length `per` ([t, t + per)) holds more than `requests` starts. Every try takes a turn, retries
 * included (`FetchPage.ts` takes it inside the retried effect). Time is Effect's Clock (its monotonic
 * nanoseconds), so TestClock drives it in tests. Turns are served one at a time, in order, so one
 * limiter can serve several streams' requests (a parent and its children: `registry`).
 */
import { Clock, Duration, Effect } from "effect"
import type { RateLimit } from "../../domain/RateLimit.js"

export interface Limiter {
  /** waits, if it must, until one more request may start, and counts it as started */
  readonly take: Effect.Effect<void>
}

const nowMillis = Effect.map(Clock.currentTimeNanos, (nanos) => Number(nanos) / 1e6)

export const make = (limit: RateLimit): Limiter => {
  const per = Duration.toMillis(limit.per)
  // a ring of the last `requests` starts; once full, `oldest` is the index of the earliest
  const starts: Array<number> = []
  let oldest = 0
  const lock = Effect.unsafeMakeSemaphore(1)
  const take = Effect.gen(function*() {
    let now = yield* nowMillis
    if (starts.length < limit.requests) {
      starts.push(now)
      return
    }
    const first = now
    // a loop: a real timer may wake a little before the clock says the window has passed
    while (starts[oldest]! + per > now) {
      yield* Effect.sleep(Duration.millis(starts[oldest]! + per - now))
      now = yield* nowMillis
    }
    if (now > first) {
      // once per wait, at debug: waiting for the limit is what the user asked for, not a fault
      yield* Effect.logDebug("source.rate_limit").pipe(
        Effect.annotateLogs({ waited: Duration.format(Duration.millis(Math.ceil(now - first))) })
      )
    }
    starts[oldest] = now
    oldest = (oldest + 1) % limit.requests
  })
  return { take: lock.withPermits(1)(take) }
}

/**
 * The limiters of one Source, one per `rateLimit` setting, made on first use: every read of a stream
 * in a run shares its limiter, and so do a parent stream and the children that have no `rateLimit` of
 * their own (they are given the parent's setting, the same object: `config/Config.ts`). A stream
 * without `rateLimit` has none and pays nothing.
 */
export const registry = () => {
  const limiters = new WeakMap<RateLimit, Limiter>()
  return (limit: RateLimit | undefined): Limiter | undefined => {
    if (limit === undefined) return undefined
    let limiter = limiters.get(limit)
    if (limiter === undefined) {
      limiter = make(limit)
      limiters.set(limit, limiter)
    }
    return limiter
  }
}
