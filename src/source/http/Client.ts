/**
 * One try at a request through @effect/platform's HttpClient: sent with the secrets kept out of its
 * trace span, its body read within the stream's timeout, and anything but a 2xx turned into a
 * `RequestFailure` that says whether another try can help (`RetrySchedule.ts` decides when).
 */
import { Headers, HttpClient, HttpClientRequest } from "@effect/platform"
import type { HttpClientError } from "@effect/platform"
import type { Redacted } from "effect"
import { Clock, Context, DefaultServices, Duration, Effect, Tracer } from "effect"
import { constTrue } from "effect/Function"
import { carriesCredentials } from "../../domain/Origin.js"
import type { Auth, HttpSourceSpec } from "../../domain/StreamSpec.js"
import { effectiveAuth, redactUrl, requestUrl, scrub, toHttpRequest } from "./Request.js"
import { accessToken, type OAuth2Auth } from "./OAuth2.js"
import { classify, RequestFailure, serverDelay } from "./RetrySchedule.js"

/** A 2xx response, read whole. */
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
const secretHeaders = (spec: HttpSourceSpec, auth: Auth | undefined): ReadonlyArray<string> => [
  ...Object.keys(spec.headers),
  ...(auth?.type === "header" ? [auth.name] : [])
]

const fatalReason = (status: number): string =>
  status === 401 ? "the source refused the credentials (check the stream's auth)"
  : status === 403 ? "the source forbids this request (check the stream's auth)"
  : status === 404 ? "the source URL was not found"
  : status === 407 ? "the proxy refused the credentials (HTTP 407: check the user and password in HTTPS_PROXY or HTTP_PROXY)"
  : status >= 300 && status < 400 ? "the source answered with a redirect that was not followed"
  : "the source refused the request"

const noResponse = (reason: string) =>
  new RequestFailure({ kind: "transient", status: undefined, reason, asked: undefined })

/** A client error: a connection that failed or broke is worth another try; a request that cannot be made is not. */
const clientFailure = (error: HttpClientError.HttpClientError, auth: Auth | undefined): RequestFailure =>
  error._tag === "RequestError" && error.reason !== "Transport"
    ? new RequestFailure({
      kind: "fatal",
      status: undefined,
      reason: `the request could not be made (${error.reason})`,
      asked: undefined
    })
    : noResponse(describe(error, auth))

/** a text of at most 200 characters on one line */
const short = (text: string): string => {
  const line = text.replace(/\s+/g, " ").trim()
  return line.length > 200 ? `${line.slice(0, 199)}…` : line
}

/**
 * What an API says about a request it refused, from the common shapes of a JSON error body: GraphQL's
 * and JSON:API's `errors[0]` (`message`, `detail`, `title`), `message`, OAuth's `error_description` and
 * `error`, RFC 9457's `detail` and `title`. `undefined` for any other body.
 */
const apiMessage = (text: string): string | undefined => {
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    return undefined
  }
  const pick = (value: unknown): string | undefined => {
    if (typeof value !== "object" || value === null) return undefined
    const o = value as Record<string, unknown>
    for (const key of ["message", "error_description", "detail", "title", "error"]) {
      const v = o[key]
      if (typeof v === "string" && v.trim() !== "") return v
      if (key === "error" && typeof v === "object") return pick(v)
    }
    return undefined
  }
  const errors = (body as { errors?: unknown } | null)?.errors
  const found = Array.isArray(errors) ? pick(errors[0]) : pick(body)
  return found === undefined ? undefined : short(found)
}

/**
 * A response: itself when 2xx, else a failure with what the server asked us to wait, read now. A refusal
 * (4xx) says what the API said about it, scrubbed of the stream's secrets (an API may quote the token).
 */
const checkStatus = (received: Received, auth: Auth | undefined): Effect.Effect<Received, RequestFailure> => {
  const verdict = classify(received.status, received.headers)
  if (verdict === "ok") return Effect.succeed(received)
  return Effect.flatMap(Clock.currentTimeMillis, (now) =>
    Effect.fail(
      new RequestFailure({
        kind: verdict,
        status: received.status,
        reason: verdict === "fatal" ? refusal(received, auth) : `HTTP ${received.status}`,
        asked: verdict === "fatal" ? undefined : serverDelay(received.headers, now)
      })
    ))
}

const refusal = (received: Received, auth: Auth | undefined): string => {
  const said = received.status >= 400 ? apiMessage(received.text) : undefined
  return said === undefined ? fatalReason(received.status) : scrub(`${fatalReason(received.status)}: the API says "${said}"`, auth)
}

/**
 * Effect's own tracer, the one in place unless an application or `ferry` with OpenTelemetry sets
 * another: its spans reach no exporter, so the client's span of each request (its attributes, every
 * header redacted and copied) is work for nothing, ~1 % of a full load's CPU (docs/PERFORMANCE.md).
 */
const nativeTracer = Context.get(DefaultServices.liveServices, Tracer.Tracer)

/** One try, its status not yet checked. */
const exchange = (
  client: HttpClient.HttpClient,
  spec: HttpSourceSpec,
  request: HttpClientRequest.HttpClientRequest,
  sent: URL
): Effect.Effect<Received, RequestFailure> => {
  const auth = effectiveAuth(spec)
  const shown = redactUrl(sent, auth)
  const redacted = shown !== sent.toString()
  return Effect.tracerWith((tracer) =>
    redacted || tracer === nativeTracer
      ? Effect.locally(client.execute(request), HttpClient.currentTracerDisabledWhen, constTrue)
      : client.execute(request).pipe(
        // the client's trace span records the full URL and the headers: keep secrets out of it too
        Effect.locallyWith(Headers.currentRedactedNames, (names) => [...names, ...secretHeaders(spec, auth)])
      )
  ).pipe(
    Effect.flatMap((response) =>
      Effect.map(response.text, (text): Received => ({
        status: response.status,
        headers: response.headers,
        text,
        bytes: Buffer.byteLength(text)
      }))
    ),
    Effect.mapError((error) => clientFailure(error, auth)),
    // the timeout covers the headers AND the body: a server that stalls mid-body is a timeout too
    Effect.timeoutFail({
      duration: spec.timeout,
      onTimeout: () => noResponse(`timed out after ${Duration.format(spec.timeout)}`)
    })
  )
}

/** With an OAuth2 token where the credentials go: a 401 renews the token once and tries again. */
const withToken = (
  client: HttpClient.HttpClient,
  spec: HttpSourceSpec,
  auth: OAuth2Auth,
  url: URL,
  body: string | undefined
): Effect.Effect<Received, RequestFailure> => {
  const sent = requestUrl(spec, url)
  const base = toHttpRequest(spec, url, body)
  const tryWith = (token: Redacted.Redacted<string>) =>
    exchange(client, spec, HttpClientRequest.bearerToken(base, token), sent)
  return Effect.gen(function*() {
    const token = yield* accessToken(client, auth)
    const received = yield* tryWith(token)
    if (received.status !== 401) return received
    return yield* tryWith(yield* accessToken(client, auth, token))
  })
}

/**
 * One request of `url` (with `body`, a POST); the client should not propagate trace headers (no trace
 * headers to third-party APIs). A POST is retried as a GET is: reading an API does not change it.
 */
export const send = (
  client: HttpClient.HttpClient,
  spec: HttpSourceSpec,
  url: URL,
  body?: string
): Effect.Effect<Received, RequestFailure> => {
  const auth = effectiveAuth(spec)
  const received = auth?.type === "oauth2" && carriesCredentials(spec, url)
    ? withToken(client, spec, auth, url, body)
    : exchange(client, spec, toHttpRequest(spec, url, body), requestUrl(spec, url))
  return Effect.flatMap(received, (r) => checkStatus(r, auth))
}
