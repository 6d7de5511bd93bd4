/**
 * When to retry a request and how long to wait. A failed try is a `RequestFailure`; `schedule` is the
 * Effect `Schedule` the request is retried on (`FetchPage.ts`). Its decisions are pure functions
 * (`retryDelay`, `decide`), so every branch is tested without a clock.
 *
 * Backoff: delay(n) = min(max, base * 2^n) with jitter, n = 0 before the first retry. A server that
 * says how long to wait (`Retry-After`, or `X-RateLimit-Reset` when `X-RateLimit-Remaining` is 0) is
 * obeyed exactly, unless it asks for more than `retry.max`: then we stop at once rather than sleep for
 * an hour inside a cron job.
 */
import { Data, Duration, Effect, Random, Schedule } from "effect"
import * as Failpoint from "../../lib/Failpoint.js"
import type { Retry } from "../../domain/StreamSpec.js"

export type Headers = Readonly<Record<string, string | undefined>>

/** `full`: uniform in [0, d]; `equal`: uniform in [d/2, d] (never hammers a server with a zero wait). */
export type Jitter = "full" | "equal"

type RetryDelay =
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
const budgetSpent = (headers: Headers | undefined): boolean => header(headers, "x-ratelimit-remaining")?.trim() === "0"

/** What the server asked us to wait, and through which header. */
interface ServerDelay {
  readonly millis: number
  readonly by: "retry-after" | "x-ratelimit-reset"
}

/** Milliseconds the server asks us to wait, if it says, read at `nowMillis` (an HTTP date is relative). */
export const serverDelay = (headers: Headers | undefined, nowMillis: number): ServerDelay | undefined => {
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
 * How long to wait before retry `attempt` (0 = the first retry), given what the server asked for
 * (`serverDelay`; undefined after a connection error, a timeout, or no such header) and a random
 * number in [0, 1).
 */
export const retryDelay = (
  attempt: number,
  retry: Retry,
  asked: ServerDelay | undefined,
  random: number,
  jitter: Jitter = "equal"
): RetryDelay => {
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

/** What a status means for a retry. */
type Verdict = "ok" | "transient" | "rate-limited" | "fatal"

export const classify = (status: number, headers: Headers | undefined): Verdict => {
  if (status >= 200 && status < 300) return "ok"
  if (status === 429) return "rate-limited"
  if (status === 403 && budgetSpent(headers)) return "rate-limited"
  if (status === 408 || status >= 500) return "transient"
  return "fatal"
}

/** One try at a request that failed: why, and whether another try can help. */
export class RequestFailure extends Data.TaggedError("RequestFailure")<{
  /** `transient` and `rate-limited` are retried; `fatal` (a 404, a request that cannot be made) is not */
  readonly kind: Exclude<Verdict, "ok">
  /** undefined: no response (connection error, timeout) */
  readonly status: number | undefined
  /** what went wrong, secrets removed: `HTTP 503`, `timed out after 30s`, the connection error */
  readonly reason: string
  /** what the server asked us to wait (`serverDelay`, read when it answered) */
  readonly asked: ServerDelay | undefined
}> {}

/** The schedule's answer to a failed try: wait and try again, or stop and say why. */
export type Decision =
  | { readonly _tag: "Retry"; readonly failure: RequestFailure; readonly retry: number; readonly millis: number }
  | { readonly _tag: "Fatal" }
  | { readonly _tag: "OutOfAttempts"; readonly attempts: number }
  /** the server asked to wait `millis`, longer than `retry.max` */
  | { readonly _tag: "WaitTooLong"; readonly millis: number }

/** After failed try number `tries` (1-based), with a random number in [0, 1) for the jitter. */
export const decide = (failure: RequestFailure, tries: number, retry: Retry, random: number): Decision => {
  if (failure.kind === "fatal") return { _tag: "Fatal" }
  const attempts = Math.max(1, Math.floor(retry.attempts))
  if (tries >= attempts) return { _tag: "OutOfAttempts", attempts }
  const delay = retryDelay(tries - 1, retry, failure.asked, random)
  return delay._tag === "TooLong"
    ? { _tag: "WaitTooLong", millis: delay.millis }
    : { _tag: "Retry", failure, retry: tries, millis: delay.millis }
}

/** The `http.retry` line, before the wait, and the failpoint that kills a run in its backoff. */
const logRetry = (url: string, decision: Decision) =>
  decision._tag === "Retry"
    ? Effect.logWarning("http.retry").pipe(
      Effect.annotateLogs({
        url,
        status: decision.failure.status ?? null,
        reason: decision.failure.reason,
        attempt: decision.retry,
        delay_ms: decision.millis
      }),
      Effect.zipRight(Failpoint.pass("retry-backoff"))
    )
    : Effect.void

/**
 * The retries of one request, for `Effect.retry` and `Effect.retryOrElse`: `decide` after each failed try, sleeping its wait
 * on the Effect Clock; each retry logged once (`logRetry`) before its wait. The output is the last
 * decision: once the schedule stops, why.
 */
export const schedule = (retry: Retry, url: string): Schedule.Schedule<Decision, RequestFailure> =>
  Schedule.intersect(Schedule.identity<RequestFailure>(), Schedule.count).pipe(
    Schedule.mapEffect(([failure, retries]) =>
      Effect.map(Random.next, (random) => decide(failure, retries + 1, retry, random))
    ),
    Schedule.whileOutput((decision) => decision._tag === "Retry"),
    Schedule.addDelay((decision) => Duration.millis(decision._tag === "Retry" ? decision.millis : 0)),
    Schedule.tapOutput((decision) => logRetry(url, decision))
  )
