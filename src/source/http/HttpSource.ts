/**
 * The live Source: pages of records from an HTTP JSON API through @effect/platform's HttpClient.
 * A run is a loop of (request -> page -> paginator.next); this module adds what every style needs:
 * the guards that stop a server from keeping us in a loop. One page, with its retries and its
 * records, is `FetchPage.ts`; one try at a request, `Client.ts`.
 */
import { FetchHttpClient, HttpClient } from "@effect/platform"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Effect, Either, Layer, Option, Stream } from "effect"
import type { RateLimited } from "../../domain/Errors.js"
import { SourceError } from "../../domain/Errors.js"
import type { Page, SourceShape } from "../../Source.js"
import { Source } from "../../Source.js"
import type { StreamSpec } from "../../domain/StreamSpec.js"
import * as Pagination from "./Paginators.js"
import { nextPageRefusal } from "../../domain/Origin.js"
import { bodyText } from "./Body.js"
import type { Http } from "./Client.js"
import { fetchPage } from "./FetchPage.js"
import * as RateLimit from "./RateLimit.js"
import { proxyFor, type ProxySettings } from "./Proxy.js"
import { effectiveAuth, firstUrl, redactUrl, sentUrl } from "./Request.js"

/** A backstop only: the repeat and empty-page guards stop real loops long before this. */
export const maxPages = 1_000_000

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

/** What a `source.more_pages` warning advises, by the pagination that stopped. */
const morePagesHint = (pagination: StreamSpec["source"]["pagination"]): string =>
  pagination._tag === "None"
    ? "the source says it has more pages, which pagination: none does not read; set source.pagination"
    : `the page was shorter than the ${pagination._tag === "Offset" ? "limit" : "size"} asked for, but the source ` +
      "says it has more: it may cap the page size; set it to the API's maximum"

/** The same words for a repeated URL and a repeated page: to the user it is the same fault. */
const repeats = "pagination repeats: the server sent the same next page twice"

interface Fetch {
  readonly _tag: "Fetch"
  readonly request: Pagination.PageRequest
  readonly afterEmpty: boolean
  /** the last page's fingerprint: a server that ignores the page parameter sends it again under a new URL */
  readonly previous?: string | undefined
}

type Step = Fetch | { readonly _tag: "Fail"; readonly error: SourceError } | { readonly _tag: "Done" }

/** After `step`'s page: the paginator's next request, the end, or an error that ends the stream after this page. */
const stepAfter = (
  stream: StreamSpec,
  step: Fetch,
  next: Pagination.Next,
  fetched: { readonly page: Page; readonly exchange: Pagination.Exchange; readonly status: number },
  fingerprint: string | undefined
): Step => {
  const empty = fetched.exchange.records.length === 0
  const fail = (reason: string): Step => ({
    _tag: "Fail",
    error: new SourceError({ stream: stream.name, url: fetched.page.url, status: fetched.status, reason })
  })
  return Either.match(next, {
    onLeft: fail,
    onRight: Option.match({
      onNone: (): Step => ({ _tag: "Done" }),
      // one empty page that points onwards happens (a filtered page); two in a row is a loop
      onSome: (request): Step =>
        empty && step.afterEmpty
          ? fail("two empty pages in a row that still point to a next page; stopping rather than loop")
          : { _tag: "Fetch", request, afterEmpty: empty, previous: fingerprint }
    })
  })
}

/** The last page, marked and warned about when the source says it has more than the pagination read. */
const withMorePages = (spec: StreamSpec["source"], page: Page, exchange: Pagination.Exchange) => {
  const more = Pagination.moreSign(spec.pagination, spec.records, exchange)
  if (more === undefined) return Effect.succeed(page)
  return Effect.logWarning("source.more_pages").pipe(
    Effect.annotateLogs({ signal: more, records: exchange.records.length, url: page.url, hint: morePagesHint(spec.pagination) }),
    Effect.as({ ...page, morePages: more })
  )
}

/**
 * The Source over the context's HttpClient; `agent`: the Node agents under it, when it is
 * platform-node's (page requests then go straight to them: NodeAgent.ts).
 */
const makeWith = (agent: NodeHttpClient.HttpAgent | undefined): Effect.Effect<SourceShape, never, HttpClient.HttpClient> => Effect.gen(function*() {
  // no trace headers to third-party APIs
  const client = (yield* HttpClient.HttpClient).pipe(HttpClient.withTracerPropagation(false))
  const http: Http = { client, agent }
  // one limiter per stream for the Source's life, so every read of the stream in a run shares it
  const limiterFor = RateLimit.registry()

  const pages = (
    stream: StreamSpec,
    from: Option.Option<string>,
    end: Option.Option<string> = Option.none()
  ): Stream.Stream<Page, SourceError | RateLimited> =>
    Stream.suspend(() => {
      const spec = stream.source
      const auth = effectiveAuth(spec)
      // a next page on another origin is refused here, before any request goes there
      const paginator = Pagination.guardOrigins(Pagination.fromSpec(spec.pagination), (from, to) =>
        nextPageRefusal(spec, from, to))
      const start = firstUrl(spec, from, end)
      if (start === undefined) {
        return Stream.fail(
          new SourceError({ stream: stream.name, url: redactUrl(spec.url, auth), reason: "the source URL is not a URL" })
        )
      }
      // every request (URL and body) sent in this run: a server that sends one twice would keep us here for ever
      const seen = new Set<string>()
      const limiter = limiterFor(spec.rateLimit)
      const first = paginator.first({ url: start, fields: {} })
      const initial: Step = { _tag: "Fetch", request: first, afterEmpty: false, previous: undefined }
      return Stream.unfoldEffect(initial, (step: Step) =>
        Effect.gen(function*() {
          if (step._tag === "Done") return Option.none()
          if (step._tag === "Fail") return yield* Effect.fail(step.error)
          const sent = sentUrl(step.request.url, auth).toString()
          const body = bodyText(spec, from, step.request, end)
          // a POST API that pages in the body sends one URL throughout: the body tells its pages apart
          const key = body === undefined ? sent : `${sent}\n${body}`
          const refuse = (reason: string, url = redactUrl(sent, auth)) =>
            Effect.fail(new SourceError({ stream: stream.name, url, reason }))
          if (seen.has(key)) return yield* refuse(repeats)
          if (seen.size >= maxPages) return yield* refuse(`more than ${maxPages} pages; stopping`)
          seen.add(key)
          const fetched = yield* fetchPage(http, stream, step.request, body, limiter)
          const fingerprint = fingerprintOf(fetched.exchange.records)
          if (fingerprint !== undefined && fingerprint === step.previous) return yield* refuse(repeats, fetched.page.url)
          const next = stepAfter(stream, step, paginator.next(fetched.exchange), fetched, fingerprint)
          const page = next._tag === "Done" ? yield* withMorePages(spec, fetched.page, fetched.exchange) : fetched.page
          return Option.some([page, next] as const)
        }))
    })

  return Source.of({ pages })
})

export const make: Effect.Effect<SourceShape, never, HttpClient.HttpClient> = makeWith(undefined)

/** The live Source over any HttpClient (an application's own, or a stub in tests). */
export const layer: Layer.Layer<Source, never, HttpClient.HttpClient> = Layer.effect(Source, make)

/** The live Source over platform-node's HttpClient and the agents under it. */
const layerOverAgent: Layer.Layer<Source, never, HttpClient.HttpClient | NodeHttpClient.HttpAgent> = Layer.effect(
  Source,
  Effect.flatMap(NodeHttpClient.HttpAgent, makeWith)
)

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
  layerOverAgent,
  Layer.provideMerge(NodeHttpClient.layerWithoutAgent, NodeHttpClient.makeAgentLayer({ keepAlive: true }))
)

/**
 * `layerNode` through the proxies of the environment (`Proxy.fromEnv`). The agents and the packages
 * they use are imported here, on the first build of this layer: a run without a proxy loads none of them.
 */
export const layerNodeProxied = (proxies: ProxySettings): Layer.Layer<Source> =>
  Layer.provide(
    layerOverAgent,
    Layer.provideMerge(
      NodeHttpClient.layerWithoutAgent,
      Layer.scoped(
        NodeHttpClient.HttpAgent,
        Effect.acquireRelease(
          Effect.promise(() => import("./ProxyAgent.js")).pipe(Effect.map((ProxyAgent) => ({
            [NodeHttpClient.HttpAgentTypeId]: NodeHttpClient.HttpAgentTypeId,
            ...ProxyAgent.make(proxies, (request) => proxyFor(proxies, request))
          }))),
          (agent) =>
            Effect.sync(() => {
              agent.http.destroy()
              agent.https.destroy()
            })
        )
      )
    )
  )
