/**
 * When to retry a request and how long to wait. The delay is a pure function (`retryDelay`) so every
 * branch is tested without a clock; `retrying` is the loop that applies it with the Effect Clock.
 *
 * Backoff: delay(n) = min(max, base * 2^n) with jitter, n = 0 before the first retry. A server that
 * says how long to wait (`Retry-After`, or `X-RateLimit-Reset` when `X-RateLimit-Remaining` is 0) is
 * obeyed exactly, unless it asks for more than `retry.max`: then we stop at once rather than sleep for
 * an hour inside a cron job.
 */
import { Clock, Duration, Effect, Random } from "effect"
import * as Failpoint from "../../lib/Failpoint.js"
import type { Retry } from "../../domain/StreamSpec.js"

export type Headers = Readonly<Record<string, string | undefined>>

/** `full`: uniform in [0, d]; `equal`: uniform in [d/2, d] (never hammers a server with a zero wait). */
export type Jitter = "full" | "equal"

export type RetryDelay =
  /** wait `millis`, then try again */
  | { readonly _tag: "Wait"; readonly millis: number; readonly by: "backoff" | "retry-after" | "x-ratelimit-reset" }
  /** the server asked to wait `millis`, longer than `retry.max`: do not wait */
  | { readonly _tag: "TooLong"; readonly millis: number; readonly by: "retry-after" | "x-ratelimit-reset" }

const header = (headers: Headers | undefined, name: string): string | undefined => {
  if (headers === undefined) return undefined
  const direct = headers[name]
  if (direct !== undefined) return direct
  for (const [key, value] of Object.entries(headers)) if (key.toLowerCase() === name) return value
  return undefined
}

/** `X-RateLimit-Remaining: 0`: the budget is spent (GitHub answers 403 for this, others 429). */
export const budgetSpent = (headers: Headers | undefined): boolean => header(headers, "x-ratelimit-remaining")?.trim() === "0"

/** Milliseconds the server asks us to wait, if it says. */
export const serverDelay = (
  headers: Headers | undefined,
  nowMillis: number
): { readonly millis: number; readonly by: "retry-after" | "x-ratelimit-reset" } | undefined => {
  const retryAfter = header(headers, "retry-after")?.trim()
  if (retryAfter !== undefined && retryAfter !== "") {
    if (/^\d+(\.\d+)?$/.test(retryAfter)) return { millis: Math.ceil(Number(retryAfter) * 1000), by: "retry-after" }
    // HTTP-dates start with the day name; Date.parse alone reads "-3" as a year
    const date = /^[A-Za-z]{3}/.test(retryAfter) ? Date.parse(retryAfter) : NaN
    if (!Number.isNaN(date)) return { millis: Math.max(0, date - nowMillis), by: "retry-after" }
  }
  const reset = header(headers, "x-ratelimit-reset")?.trim()
  if (reset !== undefined && budgetSpent(headers) && /^\d+(\.\d+)?$/.test(reset)) {
    const seconds = Number(reset)
    // Most APIs send epoch seconds; a few send seconds-until-reset. No epoch value is this small (2001).
    const millis = seconds < 1e9 ? seconds * 1000 : seconds * 1000 - nowMillis
    return { millis: Math.max(0, Math.ceil(millis)), by: "x-ratelimit-reset" }
  }
  return undefined
}

/** The backoff before retry `attempt` (0-based), before jitter. */
export const backoff = (attempt: number, retry: Retry): number => {
  const base = Duration.toMillis(retry.base)
  const max = Duration.toMillis(retry.max)
  if (base <= 0) return 0
  // cap the exponent: 2^60 * base is finite and already past any sane max
  return Math.min(max, base * 2 ** Math.min(Math.max(0, attempt), 60))
}

/**
 * How long to wait before retry `attempt` (0 = the first retry), given the failed response's headers
 * (undefined after a connection error or a timeout), the Clock's now, and a random number in [0, 1).
 */
export const retryDelay = (
  attempt: number,
  retry: Retry,
  headers: Headers | undefined,
  nowMillis: number,
  random: number,
  jitter: Jitter = "equal"
): RetryDelay => {
  const asked = serverDelay(headers, nowMillis)
  if (asked !== undefined) {
    return asked.millis > Duration.toMillis(retry.max)
      ? { _tag: "TooLong", millis: asked.millis, by: asked.by }
      : { _tag: "Wait", millis: asked.millis, by: asked.by }
  }
  const d = backoff(attempt, retry)
  const r = Math.min(Math.max(random, 0), 1)
  const millis = jitter === "full" ? Math.floor(d * r) : Math.floor(d / 2 + (d / 2) * r)
  return { _tag: "Wait", millis, by: "backoff" }
}

/** What a status means for the retry loop. */
export type Verdict = "ok" | "transient" | "rate-limited" | "fatal"

export const classify = (status: number, headers: Headers | undefined): Verdict => {
  if (status >= 200 && status < 300) return "ok"
  if (status === 429) return "rate-limited"
  if (status === 403 && budgetSpent(headers)) return "rate-limited"
  if (status === 408 || status >= 500) return "transient"
  return "fatal"
}

/** A failed attempt worth retrying. */
export interface Failure {
  readonly kind: "transient" | "rate-limited"
  /** undefined: no response (connection error, timeout) */
  readonly status: number | undefined
  readonly headers: Headers | undefined
  /** what went wrong, secrets removed: `HTTP 503`, `timed out after 30s`, the connection error */
  readonly reason: string
}

export type Attempt<A> =
  | { readonly _tag: "Success"; readonly value: A }
  | { readonly _tag: "Failure"; readonly failure: Failure }

/** Why the loop gave up on a retryable failure. */
export type GiveUp =
  | { readonly _tag: "OutOfAttempts"; readonly attempts: number; readonly last: Failure }
  | { readonly _tag: "WaitTooLong"; readonly millis: number; readonly last: Failure }

/**
 * Run `attempt` up to `retry.attempts` times, sleeping `retryDelay` between tries and logging each
 * retry once (`http.retry`, annotated with url, status, attempt, delay_ms). Errors in `attempt`'s own
 * channel (a 404, a bad body) are not retried. Returns the value and how many retries it took.
 */
export const retrying = <A, E, R, E2>(options: {
  readonly attempt: Effect.Effect<Attempt<A>, E, R>
  readonly retry: Retry
  /** the redacted URL, for the log line */
  readonly url: string
  readonly giveUp: (reason: GiveUp) => E2
}): Effect.Effect<{ readonly value: A; readonly retries: number }, E | E2, R> =>
  Effect.gen(function*() {
    const attempts = Math.max(1, Math.floor(options.retry.attempts))
    for (let n = 0;; n++) {
      const result = yield* options.attempt
      if (result._tag === "Success") return { value: result.value, retries: n }
      const failure = result.failure
      if (n + 1 >= attempts) {
        return yield* Effect.fail(options.giveUp({ _tag: "OutOfAttempts", attempts, last: failure }))
      }
      const now = yield* Clock.currentTimeMillis
      const random = yield* Random.next
      const delay = retryDelay(n, options.retry, failure.headers, now, random)
      if (delay._tag === "TooLong") {
        return yield* Effect.fail(options.giveUp({ _tag: "WaitTooLong", millis: delay.millis, last: failure }))
      }
      yield* Effect.logWarning("http.retry").pipe(
        Effect.annotateLogs({
          url: options.url,
          status: failure.status ?? null,
          reason: failure.reason,
          attempt: n + 1,
          delay_ms: delay.millis
        })
      )
      yield* Failpoint.pass("retry-backoff")
      yield* Effect.sleep(Duration.millis(delay.millis))
    }
  })
