/**
 * The live Source: pages of records from an HTTP JSON API through @effect/platform's HttpClient.
 * A run is a loop of (request -> page -> paginator.next); this module adds what every style needs:
 * retries (`Retry.ts`), a timeout that covers the body, parsing the records out of the body, and the
 * guards that stop a server from keeping us in a loop.
 */
import { FetchHttpClient, Headers, HttpClient } from "@effect/platform"
import type { HttpClientError } from "@effect/platform"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Duration, Effect, Either, Layer, Option, Stream } from "effect"
import { RateLimited, SourceError } from "../../domain/Errors.js"
import * as Failpoint from "../../lib/Failpoint.js"
import type { Page, SourceShape } from "../../Source.js"
import { Source } from "../../Source.js"
import type { Auth, StreamSpec } from "../../domain/StreamSpec.js"
import * as Json from "../../domain/Json.js"
import { valueAt } from "../../domain/JsonPath.js"
import * as Pagination from "./Pagination.js"
import { nextPageRefusal } from "../../domain/Origin.js"
import { effectiveAuth, firstUrl, redactUrl, requestUrl, scrub, sentUrl, toHttpRequest } from "./Request.js"
import type { Attempt, GiveUp } from "./Retry.js"
import { classify, retrying } from "./Retry.js"

/** A backstop only: the repeat and empty-page guards stop real loops long before this. */
export const maxPages = 1_000_000

interface Received {
  readonly status: number
  readonly headers: Readonly<Record<string, string | undefined>>
  /** the body as text (UTF-8); read as text, not bytes: platform-node's `arrayBuffer` concatenates
   * every chunk into a new buffer (quadratic: 8 s of copying for one 50 MB page) */
  readonly text: string
  readonly bytes: number
}

/** The text of a client error without its own message, which holds the full URL (and a query secret). */
const describe = (error: HttpClientError.HttpClientError, auth: Auth | undefined): string => {
  const parts: Array<string> = []
  let cause: unknown = error.cause
  for (let depth = 0; depth < 4 && cause !== undefined && cause !== null; depth++) {
    if (cause instanceof Error) {
      const code = (cause as { code?: unknown }).code
      parts.push(typeof code === "string" && !cause.message.includes(code) ? `${cause.message} (${code})` : cause.message)
      cause = cause.cause
    } else {
      parts.push(String(cause))
      break
    }
  }
  const what = error._tag === "RequestError" ? "connection failed" : "reading the response failed"
  return scrub(parts.length === 0 ? what : `${what}: ${parts.join(": ")}`, auth)
}

/** Header names whose values must not reach a trace span: the auth header and every fixed header. */
const secretHeaders = (spec: StreamSpec["source"], auth: Auth | undefined): ReadonlyArray<string> => [
  ...Object.keys(spec.headers),
  ...(auth?.type === "header" ? [auth.name] : [])
]

const fatalReason = (status: number): string =>
  status === 401 ? "the source refused the credentials (check the stream's auth)"
  : status === 403 ? "the source forbids this request (check the stream's auth)"
  : status === 404 ? "the source URL was not found"
  : status >= 300 && status < 400 ? "the source answered with a redirect that was not followed"
  : "the source refused the request"

const giveUpError = (stream: string, url: string) => (reason: GiveUp): SourceError | RateLimited => {
  const last = reason.last
  if (reason._tag === "WaitTooLong") {
    return new RateLimited({
      stream,
      url,
      status: last.status ?? 429,
      reason: `the source asked to wait ${Duration.format(Duration.millis(reason.millis))}, longer than retry.max`
    })
  }
  if (last.kind === "rate-limited") {
    return new RateLimited({
      stream,
      url,
      status: last.status ?? 429,
      reason: `rate limited; gave up after ${reason.attempts} attempt(s)`,
      retries: reason.attempts - 1
    })
  }
  return new SourceError({
    stream,
    url,
    status: last.status,
    reason: `${last.status === undefined ? last.reason : "the source kept failing"}; gave up after ${reason.attempts} attempt(s)`,
    retries: reason.attempts - 1
  })
}

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

/**
 * What identifies a page without keeping it: its size and its first and last records. Two pages in a
 * row alike in all three are the same page (records have primary keys); empty pages have their own guard.
 */
const fingerprintOf = (records: ReadonlyArray<unknown>): string | undefined => {
  if (records.length === 0) return undefined
  try {
    return `${records.length}:${JSON.stringify(records[0])}:${JSON.stringify(records[records.length - 1])}`
  } catch {
    return undefined
  }
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

/** What a `source.more_pages` warning advises, by the pagination that stopped. */
const morePagesHint = (pagination: StreamSpec["source"]["pagination"]): string =>
  pagination._tag === "None"
    ? "the source says it has more pages, which pagination: none does not read; set source.pagination"
    : `the page was shorter than the ${pagination._tag === "Offset" ? "limit" : "size"} asked for, but the source ` +
      "says it has more: it may cap the page size; set it to the API's maximum"

export const make: Effect.Effect<SourceShape, never, HttpClient.HttpClient> = Effect.gen(function*() {
  // no trace headers to third-party APIs
  const client = (yield* HttpClient.HttpClient).pipe(HttpClient.withTracerPropagation(false))

  /** One page: the request with its retries, then the records out of the body. */
  const fetchPage = (stream: StreamSpec, url: URL) =>
    Effect.gen(function*() {
      const spec = stream.source
      const auth = effectiveAuth(spec)
      const sent = requestUrl(spec, url)
      const shown = redactUrl(sent, auth)
      const fail = (reason: string, status?: number) =>
        new SourceError({ stream: stream.name, url: shown, status, reason })

      // the timeout covers the headers AND the body: a server that stalls mid-body is a timeout too
      const exchange: Effect.Effect<Received, HttpClientError.HttpClientError> = client.execute(
        toHttpRequest(spec, url)
      ).pipe(
        // the client's trace span records the full URL and the headers: keep secrets out of it too
        Effect.locallyWith(Headers.currentRedactedNames, (names) => [...names, ...secretHeaders(spec, auth)]),
        Effect.locallyWith(
          HttpClient.currentTracerDisabledWhen,
          (disabled) => shown === sent.toString() ? disabled : () => true
        ),
        Effect.flatMap((response) =>
          Effect.map(response.text, (text): Received => ({
            status: response.status,
            headers: response.headers,
            text,
            bytes: Buffer.byteLength(text)
          }))
        )
      )
      const attempt: Effect.Effect<Attempt<Received>, SourceError> = exchange.pipe(
        Effect.either,
        Effect.timeoutOption(spec.timeout),
        Effect.flatMap(Option.match({
          onNone: () =>
            Effect.succeed<Attempt<Received>>({
              _tag: "Failure",
              failure: {
                kind: "transient",
                status: undefined,
                headers: undefined,
                reason: `timed out after ${Duration.format(spec.timeout)}`
              }
            }),
          onSome: Either.match({
            onLeft: (error): Effect.Effect<Attempt<Received>, SourceError> =>
              error._tag === "RequestError" && error.reason !== "Transport"
                ? Effect.fail(fail(`the request could not be made (${error.reason})`))
                : Effect.succeed({
                  _tag: "Failure",
                  failure: { kind: "transient", status: undefined, headers: undefined, reason: describe(error, auth) }
                }),
            onRight: (received): Effect.Effect<Attempt<Received>, SourceError> => {
              const verdict = classify(received.status, received.headers)
              switch (verdict) {
                case "ok":
                  return Effect.succeed({ _tag: "Success", value: received })
                case "fatal":
                  return Effect.fail(fail(fatalReason(received.status), received.status))
                case "transient":
                case "rate-limited":
                  return Effect.succeed({
                    _tag: "Failure",
                    failure: {
                      kind: verdict,
                      status: received.status,
                      headers: received.headers,
                      reason: `HTTP ${received.status}`
                    }
                  })
              }
            }
          })
        }))
      )
      const { retries, value: received } = yield* retrying({
        attempt,
        retry: spec.retry,
        url: shown,
        giveUp: giveUpError(stream.name, shown)
      })
      yield* Failpoint.pass("after-fetch")

      const contentType = received.headers["content-type"] ?? "no content-type"
      const body = yield* Either.match(parseJson(withoutBom(received.text)), {
        onLeft: () => Effect.fail(fail(`response is not JSON (${contentType})`, received.status)),
        onRight: Effect.succeed
      })
      const records = yield* Either.match(recordsOf(body, spec.records), {
        onLeft: (reason) => Effect.fail(fail(reason, received.status)),
        onRight: Effect.succeed
      })
      yield* Effect.logDebug("http.page").pipe(
        Effect.annotateLogs({ url: shown, status: received.status, records: records.length, bytes: received.bytes })
      )
      const page: Page = { records, url: shown, retries, bytes: received.bytes, reparse: reparser(received.text, spec.records) }
      const exchangeDone: Pagination.Exchange = { url, headers: received.headers, body, records }
      return { page, exchange: exchangeDone, status: received.status }
    })

  type Step =
    | {
      readonly _tag: "Fetch"
      readonly url: URL
      readonly afterEmpty: boolean
      /** the last page's fingerprint: a server that ignores the page parameter sends it again under a new URL */
      readonly previous?: string | undefined
    }
    | { readonly _tag: "Fail"; readonly error: SourceError }
    | { readonly _tag: "Done" }

  const pages = (stream: StreamSpec, from: Option.Option<string>): Stream.Stream<Page, SourceError | RateLimited> =>
    Stream.suspend(() => {
      const spec = stream.source
      const auth = effectiveAuth(spec)
      // a next page on another origin is refused here, before any request goes there
      const paginator = Pagination.guardOrigins(Pagination.fromSpec(spec.pagination), (from, to) =>
        nextPageRefusal(spec, from, to))
      const start = firstUrl(spec, from)
      if (start === undefined) {
        return Stream.fail(
          new SourceError({ stream: stream.name, url: redactUrl(spec.url, auth), reason: "the source URL is not a URL" })
        )
      }
      // every URL requested in this run: a server that sends one twice would keep us here for ever
      const seen = new Set<string>()
      const initial: Step = { _tag: "Fetch", url: paginator.first(start), afterEmpty: false, previous: undefined }
      return Stream.unfoldEffect(initial, (step: Step) =>
        Effect.gen(function*() {
          if (step._tag === "Done") return Option.none()
          if (step._tag === "Fail") return yield* Effect.fail(step.error)
          const key = sentUrl(step.url, auth).toString()
          const shown = redactUrl(key, auth)
          if (seen.has(key)) {
            return yield* Effect.fail(
              new SourceError({
                stream: stream.name,
                url: shown,
                reason: "pagination repeats: the server sent the same next page twice"
              })
            )
          }
          if (seen.size >= maxPages) {
            return yield* Effect.fail(
              new SourceError({ stream: stream.name, url: shown, reason: `more than ${maxPages} pages; stopping` })
            )
          }
          seen.add(key)
          const { exchange, page, status } = yield* fetchPage(stream, step.url)
          const empty = exchange.records.length === 0
          const fingerprint = fingerprintOf(exchange.records)
          if (fingerprint !== undefined && fingerprint === step.previous) {
            return yield* Effect.fail(
              new SourceError({
                stream: stream.name,
                url: page.url,
                // the same words as the repeated-URL guard: to the user it is the same fault
                reason: "pagination repeats: the server sent the same next page twice"
              })
            )
          }
          const next: Step = Either.match(paginator.next(exchange), {
            onLeft: (reason): Step => ({
              _tag: "Fail",
              error: new SourceError({ stream: stream.name, url: page.url, status, reason })
            }),
            onRight: Option.match({
              onNone: (): Step => ({ _tag: "Done" }),
              // one empty page that points onwards happens (a filtered page); two in a row is a loop
              onSome: (url): Step =>
                empty && step.afterEmpty
                  ? {
                    _tag: "Fail",
                    error: new SourceError({
                      stream: stream.name,
                      url: page.url,
                      status,
                      reason: "two empty pages in a row that still point to a next page; stopping rather than loop"
                    })
                  }
                  : { _tag: "Fetch", url, afterEmpty: empty, previous: fingerprint }
            })
          })
          const more = next._tag === "Done" ? Pagination.moreSign(spec.pagination, spec.records, exchange) : undefined
          if (more === undefined) return Option.some([page, next] as const)
          yield* Effect.logWarning("source.more_pages").pipe(Effect.annotateLogs({
            signal: more,
            records: exchange.records.length,
            url: page.url,
            hint: morePagesHint(spec.pagination)
          }))
          return Option.some([{ ...page, morePages: more }, next] as const)
        }))
    })

  return Source.of({ pages })
})

/** The live Source over any HttpClient (an application's own, or a stub in tests). */
export const layer: Layer.Layer<Source, never, HttpClient.HttpClient> = Layer.effect(Source, make)

/**
 * The live Source over Node's fetch. Redirects are not followed, as with `http` (a 3xx fails the stream):
 * fetch would carry the fixed headers and a header auth to whatever origin the Location names.
 */
export const layerFetch: Layer.Layer<Source> = Layer.provide(
  layer,
  Layer.provide(FetchHttpClient.layer, Layer.succeed(FetchHttpClient.RequestInit, { redirect: "manual" }))
)

/**
 * The live Source over Node's own `http`/`https` modules, with keep-alive agents. The `ferry` bin
 * uses it: Node's fetch loads undici on first use, which cost 120 ms of start-up on Node 20 and
 * 55 ms on Node 22 here, against 15 ms for `http` (docs/PERFORMANCE.md).
 */
export const layerNode: Layer.Layer<Source> = Layer.provide(
  layer,
  Layer.provide(NodeHttpClient.layerWithoutAgent, NodeHttpClient.makeAgentLayer({ keepAlive: true }))
)
