/**
 * One request sent straight to the Node agents under @effect/platform-node's HttpClient (its lower
 * layer, `NodeHttpClient.HttpAgent`), read whole within a timeout, as one callback-driven effect.
 *
 * Why: the client's `execute` costs a page an abort controller, a finalization-registry entry, a
 * fiber for the body and one for sending it, and `Effect.timeoutFail` two more; together ~13 % of a
 * 500,000-record load's CPU (docs/PERFORMANCE.md, issue 17). This does what platform-node's client
 * does for a request with a text body (the same agents, so the same keep-alive sockets and proxies;
 * the same URL and headers; the body as UTF-8 text, as its `response.text` reads it), and nothing else.
 * Client.ts uses it only where the client would make no trace span anyway, and never for OAuth2's
 * token requests.
 */
import { Headers, UrlParams } from "@effect/platform"
import type { HttpClientRequest } from "@effect/platform"
import type * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Duration, Effect } from "effect"
import * as Http from "node:http"
import * as Https from "node:https"

/** A 2xx response or not, read whole. */
export interface Received {
  readonly status: number
  readonly headers: Readonly<Record<string, string | undefined>>
  /** the body as text (UTF-8); read as text, not bytes: platform-node's `arrayBuffer` concatenates
   * every chunk into a new buffer (quadratic: 8 s of copying for one 50 MB page) */
  readonly text: string
  readonly bytes: number
}

/** Why a request got no response: what went wrong, in the words of HttpClient's error kinds. */
export type Trouble =
  | { readonly _tag: "Invalid"; readonly reason: string }
  | { readonly _tag: "Connection"; readonly cause: unknown }
  | { readonly _tag: "Body"; readonly cause: unknown }
  | { readonly _tag: "Timeout" }

/** The request's body as bytes; `undefined` for a kind this path does not send (a stream, a form). */
const bodyOf = (request: HttpClientRequest.HttpClientRequest): Uint8Array | null | undefined => {
  const body = request.body
  switch (body._tag) {
    case "Empty":
      return null
    case "Uint8Array":
      return body.body
    default:
      return undefined
  }
}

/** whether this path can send the request (Ferry's requests: no body, or a text one) */
export const sends = (request: HttpClientRequest.HttpClientRequest): boolean => bodyOf(request) !== undefined

/** the longest delay `setTimeout` holds (~24.8 days): it fires a longer one at once */
const longestTimer = 2 ** 31 - 1

/**
 * `f` after `millis`: a delay longer than a timer holds never comes, as Effect's own clock treats it
 * (`Effect.timeoutFail`, which this path replaces, never fired for a `timeout` of 30 days).
 */
const after = (millis: number, f: () => void): ReturnType<typeof setTimeout> | undefined =>
  millis > longestTimer ? undefined : setTimeout(f, millis)

/**
 * Sends `request` through `agent` and reads the response whole, all within `timeout` (headers and
 * body: a server that stalls mid-body times out too). Interrupted, it destroys the request.
 */
export const send = (
  agent: NodeHttpClient.HttpAgent,
  request: HttpClientRequest.HttpClientRequest,
  timeout: Duration.Duration
): Effect.Effect<Received, Trouble> =>
  Effect.async<Received, Trouble>((resume) => {
    const url = UrlParams.makeUrl(request.url, request.urlParams, request.hash)
    if (url._tag === "Left") {
      resume(Effect.fail({ _tag: "Invalid", reason: "InvalidUrl" }))
      return
    }
    const https = url.right.protocol === "https:"
    const options = { agent: https ? agent.https : agent.http, method: request.method, headers: request.headers }
    const sent = https ? Https.request(url.right, options) : Http.request(url.right, options)
    let settled = false
    const settle = (outcome: Effect.Effect<Received, Trouble>) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resume(outcome)
    }
    const timer = after(Duration.toMillis(timeout), () => {
      sent.destroy()
      settle(Effect.fail({ _tag: "Timeout" }))
    })
    sent.on("error", (cause) => settle(Effect.fail({ _tag: "Connection", cause })))
    sent.on("response", (response) => {
      response.setEncoding("utf8")
      let text = ""
      response.on("data", (chunk: string) => {
        text += chunk
      })
      response.on("error", (cause) => settle(Effect.fail({ _tag: "Body", cause })))
      // a connection that closes mid-body: Node reports it as an error, this is the backstop
      response.on("close", () => {
        if (!response.complete) settle(Effect.fail({ _tag: "Body", cause: new Error("the connection closed before the body ended") }))
      })
      response.on("end", () =>
        settle(Effect.succeed({
          status: response.statusCode ?? 0,
          headers: Headers.fromInput(response.headers),
          text,
          bytes: Buffer.byteLength(text)
        })))
    })
    const body = bodyOf(request)
    if (body === null || body === undefined) sent.end()
    else sent.end(body)
    return Effect.sync(() => {
      settled = true
      clearTimeout(timer)
      sent.destroy()
    })
  })
