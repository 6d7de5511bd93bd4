/**
 * One try at a request through @effect/platform's HttpClient: sent with the secrets kept out of its
 * trace span, its body read within the stream's timeout, and anything but a 2xx turned into a
 * `RequestFailure` that says whether another try can help (`RetrySchedule.ts` decides when).
 */
import { Headers, HttpClient, HttpClientRequest } from "@effect/platform"
import type { HttpClientError } from "@effect/platform"
import type * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import type { Redacted } from "effect"
import { Clock, Context, DefaultServices, Duration, Effect, FiberRef, Tracer } from "effect"
import { constTrue } from "effect/Function"
import { carriesCredentials } from "../../domain/Origin.js"
import type { Auth, HttpSourceSpec } from "../../domain/StreamSpec.js"
import { effectiveAuth, redactUrl, requestUrl, scrub, toHttpRequest } from "./Request.js"
import * as NodeAgent from "./NodeAgent.js"
import type { Received } from "./NodeAgent.js"
import { accessToken, type OAuth2Auth } from "./OAuth2.js"
import { classify, RequestFailure, serverDelay } from "./RetrySchedule.js"

/**
 * How a source sends: its HttpClient, and, when that is platform-node's, the Node agents under it
 * (a page's request then goes straight to them: NodeAgent.ts).
 */
export interface Http {
  readonly client: HttpClient.HttpClient
  readonly agent: NodeHttpClient.HttpAgent | undefined
}

/** The text of a client error without its own message, which holds the full URL (and a query secret). */
const describe = (error: HttpClientError.HttpClientError, auth: Auth | undefined): string =>
  describeCause(error._tag === "RequestError" ? "connection failed" : "reading the response failed", error.cause, auth)

/** what failed, and the chain of causes' messages (with their codes), scrubbed of the stream's secrets */
const describeCause = (what: string, first: unknown, auth: Auth | undefined): string => {
  const parts: Array<string> = []
  let cause: unknown = first
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

/** The failure of a try that got no response through the agents (NodeAgent.ts), as `clientFailure` words it. */
const troubleFailure = (trouble: NodeAgent.Trouble, spec: HttpSourceSpec, auth: Auth | undefined): RequestFailure => {
  switch (trouble._tag) {
    case "Invalid":
      return new RequestFailure({ kind: "fatal", status: undefined, reason: `the request could not be made (${trouble.reason})`, asked: undefined })
    case "Connection":
      return noResponse(describeCause("connection failed", trouble.cause, auth))
    case "Body":
      return noResponse(describeCause("reading the response failed", trouble.cause, auth))
    case "Timeout":
      return noResponse(timedOut(spec))
  }
}

const timedOut = (spec: HttpSourceSpec) => `timed out after ${Duration.format(spec.timeout)}`

/**
 * One try, its status not yet checked. With the client's Node agents at hand (`agent`), and no trace
 * span of the request to make (Effect's own tracer, a URL with a secret in it, or spans turned off),
 * it goes straight to them (NodeAgent.ts); otherwise through the client.
 */
const exchange = (
  http: Http,
  spec: HttpSourceSpec,
  request: HttpClientRequest.HttpClientRequest,
  sent: URL
): Effect.Effect<Received, RequestFailure> => {
  const { agent, client } = http
  const auth = effectiveAuth(spec)
  const shown = redactUrl(sent, auth)
  const redacted = shown !== sent.toString()
  return Effect.tracerWith((tracer) =>
    FiberRef.getWith(HttpClient.currentTracerDisabledWhen, (disabledWhen) => {
      const noSpan = redacted || tracer === nativeTracer || disabledWhen(request)
      if (noSpan && agent !== undefined && NodeAgent.sends(request)) {
        return Effect.mapError(NodeAgent.send(agent, request, spec.timeout), (trouble) => troubleFailure(trouble, spec, auth))
      }
      const executed = noSpan
        ? Effect.locally(client.execute(request), HttpClient.currentTracerDisabledWhen, constTrue)
        : client.execute(request).pipe(
          // the client's trace span records the full URL and the headers: keep secrets out of it too
          Effect.locallyWith(Headers.currentRedactedNames, (names) => [...names, ...secretHeaders(spec, auth)])
        )
      return executed.pipe(
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
        Effect.timeoutFail({ duration: spec.timeout, onTimeout: () => noResponse(timedOut(spec)) })
      )
    })
  )
}

/** With an OAuth2 token where the credentials go: a 401 renews the token once and tries again. */
const withToken = (
  http: Http,
  spec: HttpSourceSpec,
  auth: OAuth2Auth,
  url: URL,
  body: string | undefined
): Effect.Effect<Received, RequestFailure> => {
  const sent = requestUrl(spec, url)
  const base = toHttpRequest(spec, url, body)
  const tryWith = (token: Redacted.Redacted<string>) =>
    exchange(http, spec, HttpClientRequest.bearerToken(base, token), sent)
  return Effect.gen(function*() {
    const token = yield* accessToken(http.client, auth)
    const received = yield* tryWith(token)
    if (received.status !== 401) return received
    return yield* tryWith(yield* accessToken(http.client, auth, token))
  })
}

/**
 * One request of `url` (with `body`, a POST); the client should not propagate trace headers (no trace
 * headers to third-party APIs). A POST is retried as a GET is: reading an API does not change it.
 */
export const send = (
  http: Http,
  spec: HttpSourceSpec,
  url: URL,
  body?: string
): Effect.Effect<Received, RequestFailure> => {
  const auth = effectiveAuth(spec)
  const received = auth?.type === "oauth2" && carriesCredentials(spec, url)
    ? withToken(http, spec, auth, url, body)
    : exchange(http, spec, toHttpRequest(spec, url, body), requestUrl(spec, url))
  return Effect.flatMap(received, (r) => checkStatus(r, auth))
}
