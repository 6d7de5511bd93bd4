/**
 * One page of a stream: the request with its retries (`Effect.retryOrElse` on `Retry.schedule`), then the
 * records out of the body. A request that gives up becomes the stream's error: `RateLimited` (75)
 * for a source that keeps rate-limiting or asks to wait past `retry.max`, else `SourceError` (69).
 */
import { Duration, Effect, Either, Schedule } from "effect"
import { RateLimited, SourceError } from "../../domain/Errors.js"
import * as Json from "../../domain/Json.js"
import { valueAt } from "../../domain/JsonPath.js"
import type { StreamSpec } from "../../domain/StreamSpec.js"
import * as Failpoint from "../../lib/Failpoint.js"
import * as Telemetry from "../../lib/Telemetry.js"
import type { Page } from "../../Source.js"
import { type Http, send } from "./Client.js"
import * as GraphQL from "./GraphQL.js"
import type * as Pagination from "./Paginators.js"
import type { Limiter } from "./RateLimit.js"
import { effectiveAuth, redactUrl, requestUrl, scrub } from "./Request.js"
import type { Decision, RequestFailure } from "./RetrySchedule.js"
import { schedule } from "./RetrySchedule.js"

/** The records of a body: at the dotted `records` path, or the body itself when it is an array. */
const recordsOf = (body: unknown, path: string | undefined): Either.Either<ReadonlyArray<unknown>, string> => {
  const value = path === undefined ? body : valueAt(body, path)
  if (Array.isArray(value)) return Either.right(value)
  return Either.left(
    path === undefined
      ? "the response is not an array (set `records` to the path of the array in the body)"
      : `no array at "${path}" in the response`
  )
}

/** a UTF-8 byte order mark is not JSON (TextDecoder dropped it; a text read keeps it) */
const withoutBom = (text: string): string => (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text)

/**
 * The page's records parsed again from its body (it parsed once, so it parses again to the same
 * records): the body text is one string, far cheaper to keep than the records as objects (keeping it
 * as a Buffer, or reading the body as chunks, measured slower). Made here, not inside fetchPage, so
 * that the closure holds the text alone and not fetchPage's other locals.
 */
const reparser = (text: string, path: string | undefined) => (): ReadonlyArray<unknown> =>
  Either.getOrThrow(recordsOf(Json.parse(withoutBom(text)), path))

/** numbers a double cannot hold exactly stay exact (`Json.parse`) */
const parseJson = (text: string): Either.Either<unknown, void> => {
  try {
    return Either.right(Json.parse(text))
  } catch {
    return Either.left(undefined)
  }
}

/** The stream's error for a request that the schedule stopped retrying (`decision` says why). */
const giveUp = (stream: string, url: string, last: RequestFailure, decision: Decision): SourceError | RateLimited => {
  switch (decision._tag) {
    case "WaitTooLong":
      return new RateLimited({
        stream,
        url,
        status: last.status ?? 429,
        reason: `the source asked to wait ${Duration.format(Duration.millis(decision.millis))}, longer than retry.max`
      })
    case "OutOfAttempts": {
      const { attempts } = decision
      return last.kind === "rate-limited"
        ? new RateLimited({
          stream,
          url,
          status: last.status ?? 429,
          reason: `rate limited; gave up after ${attempts} attempt(s)`,
          retries: attempts - 1
        })
        : new SourceError({
          stream,
          url,
          status: last.status,
          reason: `${last.status === undefined ? last.reason : "the source kept failing"}; gave up after ${attempts} attempt(s)`,
          retries: attempts - 1
        })
    }
    case "Fatal":
    case "Retry": // never: the schedule stops on the others
      return new SourceError({ stream, url, status: last.status, reason: last.reason })
  }
}

/**
 * The tries after a first one that failed with `first`: the retry schedule (its driver and refs) is made
 * only for a request that needs it, the common page's first try succeeding without it (issue 17). The
 * schedule sees `first` as its first input, as if it had run that try itself.
 */
const retried = <A>(
  attempt: Effect.Effect<A, RequestFailure>,
  first: RequestFailure,
  policy: Schedule.Schedule<Decision, RequestFailure>,
  giveUp: (last: RequestFailure, decision: Decision) => SourceError | RateLimited
): Effect.Effect<{ readonly received: A; readonly retries: number }, SourceError | RateLimited> => {
  let replay: RequestFailure | undefined = first
  const again = Effect.suspend(() => {
    if (replay === undefined) return attempt
    const failure = replay
    replay = undefined
    return Effect.fail(failure)
  })
  return again.pipe(
    // a try that succeeds knows how many retries came before it
    Effect.zipWith(Schedule.CurrentIterationMetadata, (received, meta) => ({ received, retries: meta.recurrence })),
    Effect.retryOrElse(policy, (last, decision) => Effect.fail(giveUp(last, decision)))
  )
}

/**
 * One page, and what the pagination reads from it; `body` is the request's JSON text (a POST), never
 * logged.
 */
export const fetchPage = (
  http: Http,
  stream: StreamSpec,
  request: Pagination.PageRequest,
  body: string | undefined,
  limiter?: Limiter
) => {
  const spec = stream.source
  const { url } = request
  const shown = redactUrl(requestUrl(spec, url), effectiveAuth(spec))
  return Effect.gen(function*() {
    const fail = (reason: string, status?: number) => new SourceError({ stream: stream.name, url: shown, status, reason })

    // with a rate limit, every try waits its turn: retries count as requests
    const attempt = limiter === undefined ? send(http, spec, url, body) : Effect.zipRight(limiter.take, send(http, spec, url, body))
    const { received, retries } = yield* Effect.catchAll(
      Effect.map(attempt, (received) => ({ received, retries: 0 })),
      (first) => retried(attempt, first, schedule(spec.retry, shown), (last, decision) => giveUp(stream.name, shown, last, decision))
    )
    yield* Failpoint.pass("after-fetch")

    // plain checks rather than an effect each: this runs once a page (issue 17)
    const json = parseJson(withoutBom(received.text))
    if (Either.isLeft(json)) {
      const contentType = received.headers["content-type"] ?? "no content-type"
      return yield* Effect.fail(fail(`response is not JSON (${contentType})`, received.status))
    }
    const parsed = json.right
    // a GraphQL API reports its errors in a 200 response
    const refused = spec.graphql === undefined ? undefined : GraphQL.problem(parsed)
    if (refused !== undefined) return yield* Effect.fail(fail(scrub(refused, effectiveAuth(spec)), received.status))
    const found = recordsOf(parsed, spec.records)
    if (Either.isLeft(found)) return yield* Effect.fail(fail(found.left, received.status))
    const records = found.right
    // its annotations only when debug lines are written (annotating costs a map of them per page)
    yield* Effect.whenLogLevel(
      Effect.logDebug("http.page").pipe(
        Effect.annotateLogs({ url: shown, status: received.status, records: records.length, bytes: received.bytes })
      ),
      "Debug"
    )
    const page: Page = { records, url: shown, retries, bytes: received.bytes, reparse: reparser(received.text, spec.records) }
    const exchange: Pagination.Exchange = { request, headers: received.headers, body: parsed, records }
    yield* Telemetry.annotate({
      "http.response.status_code": received.status,
      "ferry.retries": retries,
      "ferry.records": records.length,
      "ferry.bytes": received.bytes
    })
    return { page, exchange, status: received.status }
  }).pipe(
    // the URL as logs show it: auth redacted (and the tracer redacts the config's secrets: cli/Telemetry.ts)
    Telemetry.span("ferry.page.fetch", () => ({
      "ferry.stream": stream.name,
      "url.full": shown,
      "http.request.method": spec.method ?? "GET"
    }))
  )
}
