import { beforeAll, describe, expect, it } from "@effect/vitest"
import { Cause, Chunk, Duration, Effect, Either, Exit, HashMap, Logger, Option, Redacted, Stream, Tracer } from "effect"
import type * as http from "node:http"
import type { RateLimited, SourceError } from "../src/domain/Errors.js"
import * as HttpSource from "../src/source/http/HttpSource.js"
import { nextLink, parseLinkHeader } from "../src/source/http/LinkHeader.js"
import { redactUrl } from "../src/source/http/Request.js"
import type { Page } from "../src/Source.js"
import { pagesOf } from "../src/Source.js"
import type { StreamSpec } from "../src/domain/StreamSpec.js"
import type { TestServer } from "./support/http.js"
import { json, startServer } from "./support/http.js"
import * as streams from "./support/streams.js"

const TOKEN = "s3cr3t-T0KEN-value"

/** A stream over `url` with test defaults: no pagination, fast retries. */
const streamOf = (url: string, source: streams.SourceOverrides = {}): StreamSpec =>
  streams.streamSpec({
    source: {
      url,
      timeout: Duration.seconds(5),
      retry: { attempts: 3, base: Duration.millis(2), max: Duration.seconds(2) },
      ...source
    },
    decode: () => Either.right({ key: "", cursor: undefined, values: {} })
  })

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => void | Promise<void>

const server = (handler: Handler) =>
  Effect.acquireRelease(Effect.promise(() => startServer(handler)), (s) => Effect.promise(() => s.close()))

/**
 * The suites run once per HTTP client: node:http (what `ferry` uses) and fetch (the embedding
 * default); each `describe.each` block below sets the layer before its tests.
 */
let sourceLayer = HttpSource.layerNode

const pages = (stream: StreamSpec, from: Option.Option<string> = Option.none()) =>
  Stream.runCollect(pagesOf(stream, from)).pipe(Effect.map(Chunk.toArray), Effect.provide(sourceLayer))

/** The run's typed error (the test fails if it succeeded or died). */
const failure = (stream: StreamSpec, from: Option.Option<string> = Option.none()) =>
  Effect.gen(function*() {
    const exit = yield* Effect.exit(pages(stream, from))
    if (Exit.isSuccess(exit)) return expect.fail("expected the run to fail")
    return Option.getOrThrowWith(
      Cause.failureOption(exit.cause),
      () => new Error(`not a typed failure: ${Cause.pretty(exit.cause)}`)
    ) as SourceError | RateLimited
  })

const ids = (ps: ReadonlyArray<Page>) => ps.flatMap((p) => p.records.map((r) => (r as { id: number }).id))
const param = (s: TestServer, name: string) => s.requests.map((r) => r.url.searchParams.get(name))

describe.each([
  ["node:http", HttpSource.layerNode],
  ["fetch", HttpSource.layerFetch]
] as const)("HttpSource over %s", (_, layer) => {
  beforeAll(() => {
    sourceLayer = layer
  })

  describe("records", () => {
    it.scopedLive("a top-level array is the page; bytes, url and retries are reported", () =>
      Effect.gen(function*() {
        const body = JSON.stringify([{ id: 1 }, { id: 2 }])
        const s = yield* server((_req, res) => {
          res.writeHead(200, { "content-type": "application/json" })
          res.end(body)
        })
        const result = yield* pages(streamOf(`${s.url}/items`))
        const [{ reparse, ...page }] = result
        expect(result).toHaveLength(1)
        expect(page).toEqual({ records: [{ id: 1 }, { id: 2 }], url: `${s.url}/items`, retries: 0, bytes: body.length })
        // the kept body parses again to equal, fresh records, without another request
        const again = reparse!()
        expect(again).toEqual(page.records)
        expect(again).not.toBe(page.records)
        expect(s.requests.length).toBe(1)
      }))

    it.scopedLive("records at a dotted path", () =>
      Effect.gen(function*() {
        const s = yield* server((_req, res) => json(res, { result: { data: [{ id: 7 }] } }))
        const result = yield* pages(streamOf(`${s.url}/items`, { records: "result.data" }))
        expect(ids(result)).toEqual([7])
      }))

    it.scopedLive("an HTML body is a SourceError with the status and the URL, without the token", () =>
      Effect.gen(function*() {
        const s = yield* server((_req, res) => {
          res.writeHead(200, { "content-type": "text/html" })
          res.end("<html>login</html>")
        })
        const error = yield* failure(
          streamOf(`${s.url}/items`, { auth: { type: "query", name: "api_key", value: Redacted.make(TOKEN) } })
        )
        expect(error._tag).toBe("SourceError")
        expect(error.exitCode).toBe(69)
        expect(error.message).toContain("response is not JSON (text/html)")
        expect(error.message).toContain("HTTP 200")
        expect(error.message).toContain(`${s.url}/items?api_key=***`)
        expect(error.message).not.toContain(TOKEN)
        expect(s.requests[0]!.url.searchParams.get("api_key")).toBe(TOKEN)
      }))

    it.scopedLive("no array at the records path is a SourceError naming the path", () =>
      Effect.gen(function*() {
        const s = yield* server((_req, res) => json(res, { data: { id: 1 } }))
        const error = yield* failure(streamOf(`${s.url}/items`, { records: "data" }))
        expect(error.message).toBe(`no array at "data" in the response (HTTP 200) at ${s.url}/items`)
      }))

    it.scopedLive("an object body without a records path is a SourceError", () =>
      Effect.gen(function*() {
        const s = yield* server((_req, res) => json(res, { data: [] }))
        const error = yield* failure(streamOf(`${s.url}/items`))
        expect(error._tag).toBe("SourceError")
        expect(error.message).toContain("not an array")
      }))
  })

  describe("pagination", () => {
    const items = Array.from({ length: 5 }, (_, i) => ({ id: i + 1 }))

    it.scopedLive("link: follows relative and absolute next links, parses several links with quoted params", () =>
      Effect.gen(function*() {
        let base = ""
        const s = yield* server((_req, res, url) => {
          const page = Number(url.searchParams.get("page") ?? "1")
          const links: Record<number, string> = {
            1: `<${base}/items?page=0>; rel="prev first"; title="a, b; c", </items?page=2>; rel="next"`,
            2: `<${base}/items?page=3>; REL=next, <${base}/items?page=1>; rel=first`,
            3: `<${base}/items?page=1>; rel="first"`
          }
          json(res, [{ id: page }], 200, { link: links[page]! })
        })
        base = s.url
        const result = yield* pages(streamOf(`${s.url}/items`, { pagination: { type: "link" } }))
        expect(ids(result)).toEqual([1, 2, 3])
        expect(param(s, "page")).toEqual([null, "2", "3"])
        expect(result.map((p) => p.url)).toEqual([`${s.url}/items`, `${s.url}/items?page=2`, `${s.url}/items?page=3`])
      }))

    it.scopedLive("link: a relative next link resolves against the request URL's directory", () =>
      Effect.gen(function*() {
        const s = yield* server((_req, res, url) => {
          if (url.searchParams.get("after") === null) json(res, [{ id: 1 }], 200, { link: `<items?after=1>; rel="next"` })
          else json(res, [{ id: 2 }])
        })
        const result = yield* pages(streamOf(`${s.url}/v1/items`, { pagination: { type: "link" } }))
        expect(ids(result)).toEqual([1, 2])
        expect(s.requests.map((r) => r.url.pathname + r.url.search)).toEqual(["/v1/items", "/v1/items?after=1"])
      }))

    for (const [label, last] of [["null", null], ["empty string", ""], ["missing", undefined]] as const) {
      it.scopedLive(`link nextPath: follows JSON:API links.next (absolute, or a link object) and a relative HAL href; a ${label} link ends`, () =>
        Effect.gen(function*() {
          let base = ""
          const s = yield* server((_req, res, url) => {
            const page = url.searchParams.get("page")
            if (page === null) json(res, { data: [{ id: 1 }], links: { next: `${base}/v1/items?page=2` } })
            else if (page === "2") json(res, { data: [{ id: 2 }], links: { next: { href: "items?page=3" } } })
            else json(res, { data: [{ id: 3 }], links: last === undefined ? {} : { next: last } })
          })
          base = s.url
          const result = yield* pages(
            streamOf(`${s.url}/v1/items`, { records: "data", pagination: { type: "link", nextPath: "links.next" } })
          )
          expect(ids(result)).toEqual([1, 2, 3])
          expect(s.requests.map((r) => r.url.pathname + r.url.search)).toEqual(["/v1/items", "/v1/items?page=2", "/v1/items?page=3"])
        }))
    }

    it.scopedLive("link nextPath: HAL _links.next.href, relative to the current URL; the Link header is not read", () =>
      Effect.gen(function*() {
        const s = yield* server((_req, res, url) => {
          const link = { link: `</elsewhere>; rel="next"` }
          if (url.searchParams.get("p") === null) json(res, { _embedded: [{ id: 1 }], _links: { next: { href: "/items?p=2" } } }, 200, link)
          else json(res, { _embedded: [{ id: 2 }], _links: { self: { href: "/items?p=2" } } }, 200, link)
        })
        const result = yield* pages(
          streamOf(`${s.url}/items`, { records: "_embedded", pagination: { type: "link", nextPath: "_links.next.href" } })
        )
        expect(ids(result)).toEqual([1, 2])
        expect(param(s, "p")).toEqual([null, "2"])
      }))

    it.scopedLive("link nextPath: a next link that is not a string is a SourceError naming the path", () =>
      Effect.gen(function*() {
        const s = yield* server((_req, res) => json(res, { data: [{ id: 1 }], next: 42 }))
        const error = yield* failure(streamOf(`${s.url}/items`, { records: "data", pagination: { type: "link", nextPath: "next" } }))
        expect(error._tag).toBe("SourceError")
        expect(error.message).toContain(`the next-page link at "next" is not a string`)
        expect(s.requests.length).toBe(1)
      }))

    it.scopedLive("link nextPath: a next URL on another origin is refused, not requested", () =>
      Effect.gen(function*() {
        const s = yield* server((_req, res) => json(res, { data: [{ id: 1 }], next: "http://another.invalid/items?p=2" }))
        const error = yield* failure(streamOf(`${s.url}/items`, { records: "data", pagination: { type: "link", nextPath: "next" } }))
        expect(error._tag).toBe("SourceError")
        expect(error.message).toContain("the next page is on another origin (http://another.invalid")
        expect(s.requests.length).toBe(1)
      }))

    it.scopedLive("link nextPath: the same next URL twice is a SourceError (pagination repeats)", () =>
      Effect.gen(function*() {
        const s = yield* server((_req, res) => json(res, { data: [{ id: 1 }], next: "/items?page=2" }))
        const error = yield* failure(streamOf(`${s.url}/items`, { records: "data", pagination: { type: "link", nextPath: "next" } }))
        expect(error.message).toBe(`pagination repeats: the server sent the same next page twice at ${s.url}/items?page=2`)
        expect(s.requests.length).toBe(2)
      }))

    for (const [label, last] of [["missing", undefined], ["empty", ""]] as const) {
      it.scopedLive(`cursor nextHeader: sends the header's token back, a ${label} header ends`, () =>
        Effect.gen(function*() {
          const s = yield* server((_req, res, url) => {
            const cursor = url.searchParams.get("cursor")
            if (cursor === null) json(res, [{ id: 1 }], 200, { "x-next-cursor": "t/1 =" })
            else if (cursor === "t/1 =") json(res, [{ id: 2 }], 200, { "X-Next-Cursor": "t2" })
            else json(res, [{ id: 3 }], 200, last === undefined ? {} : { "x-next-cursor": last })
          })
          const result = yield* pages(
            streamOf(`${s.url}/items?cursor_ok=1`, { pagination: { type: "cursor", param: "cursor", nextHeader: "X-Next-Cursor" } })
          )
          expect(ids(result)).toEqual([1, 2, 3])
          expect(param(s, "cursor")).toEqual([null, "t/1 =", "t2"])
          expect(param(s, "cursor_ok")).toEqual(["1", "1", "1"])
        }))
    }

    it.scopedLive("cursor nextHeader: the same token twice is a SourceError (pagination repeats)", () =>
      Effect.gen(function*() {
        const s = yield* server((_req, res) => json(res, [{ id: 1 }], 200, { "x-next": "same" }))
        const error = yield* failure(streamOf(`${s.url}/items`, { pagination: { type: "cursor", param: "c", nextHeader: "X-Next" } }))
        expect(error.message).toBe(`pagination repeats: the server sent the same next page twice at ${s.url}/items?c=same`)
        expect(s.requests.length).toBe(2)
      }))

    for (const [label, last] of [["null", { next: null }], ["empty string", { next: "" }], ["missing", {}]] as const) {
      it.scopedLive(`cursor nextPath: sends the token back, a ${label} token ends`, () =>
        Effect.gen(function*() {
          const s = yield* server((_req, res, url) => {
            const cursor = url.searchParams.get("cursor")
            if (cursor === null) json(res, { data: [{ id: 1 }], meta: { next: "t1" } })
            else if (cursor === "t1") json(res, { data: [{ id: 2 }], meta: { next: "t2" } })
            else json(res, { data: [{ id: 3 }], meta: last })
          })
          const result = yield* pages(
            streamOf(`${s.url}/items`, {
              records: "data",
              pagination: { type: "cursor", param: "cursor", nextPath: "meta.next" }
            })
          )
          expect(ids(result)).toEqual([1, 2, 3])
          expect(param(s, "cursor")).toEqual([null, "t1", "t2"])
        }))
    }

    it.scopedLive("cursor fromRecord with hasMorePath: last record's field, while has_more is true", () =>
      Effect.gen(function*() {
        const s = yield* server((_req, res, url) => {
          const after = Number(url.searchParams.get("starting_after") ?? "0")
          const data = items.filter((i) => i.id > after).slice(0, 2)
          json(res, { data, has_more: after + 2 < items.length })
        })
        const result = yield* pages(
          streamOf(`${s.url}/items`, {
            records: "data",
            pagination: { type: "cursor", param: "starting_after", fromRecord: "id", hasMorePath: "has_more" }
          })
        )
        expect(ids(result)).toEqual([1, 2, 3, 4, 5])
        expect(param(s, "starting_after")).toEqual([null, "2", "4"])
      }))

    it.scopedLive("cursor fromRecord without hasMorePath: continues until an empty page", () =>
      Effect.gen(function*() {
        const s = yield* server((_req, res, url) => {
          const after = Number(url.searchParams.get("after") ?? "0")
          json(res, items.filter((i) => i.id > after).slice(0, 2))
        })
        const result = yield* pages(
          streamOf(`${s.url}/items`, { pagination: { type: "cursor", param: "after", fromRecord: "id" } })
        )
        expect(ids(result)).toEqual([1, 2, 3, 4, 5])
        expect(param(s, "after")).toEqual([null, "2", "4", "5"])
      }))

    it.scopedLive("offset: offset/limit params, ends on a short page", () =>
      Effect.gen(function*() {
        const s = yield* server((_req, res, url) => {
          const offset = Number(url.searchParams.get("offset"))
          const limit = Number(url.searchParams.get("limit"))
          json(res, { data: items.slice(offset, offset + limit) })
        })
        const result = yield* pages(
          streamOf(`${s.url}/items`, {
            records: "data",
            pagination: { type: "offset", offsetParam: "offset", limitParam: "limit", limit: 2 }
          })
        )
        expect(ids(result)).toEqual([1, 2, 3, 4, 5])
        expect(param(s, "offset")).toEqual(["0", "2", "4"])
        expect(param(s, "limit")).toEqual(["2", "2", "2"])
      }))

    it.scopedLive("offset: ends on an empty page when the total is a multiple of the limit", () =>
      Effect.gen(function*() {
        const s = yield* server((_req, res, url) => {
          const offset = Number(url.searchParams.get("skip"))
          json(res, items.slice(0, 4).slice(offset, offset + 2))
        })
        const result = yield* pages(
          streamOf(`${s.url}/items`, { pagination: { type: "offset", offsetParam: "skip", limitParam: "take", limit: 2 } })
        )
        expect(ids(result)).toEqual([1, 2, 3, 4])
        expect(param(s, "skip")).toEqual(["0", "2", "4"])
      }))

    it.scopedLive("page: page/size params from firstPage, ends on a short page", () =>
      Effect.gen(function*() {
        const s = yield* server((_req, res, url) => {
          const page = Number(url.searchParams.get("page"))
          const size = Number(url.searchParams.get("per_page"))
          json(res, items.slice(page * size, page * size + size))
        })
        const result = yield* pages(
          streamOf(`${s.url}/items`, {
            pagination: { type: "page", pageParam: "page", sizeParam: "per_page", size: 2, firstPage: 0 }
          })
        )
        expect(ids(result)).toEqual([1, 2, 3, 4, 5])
        expect(param(s, "page")).toEqual(["0", "1", "2"])
        expect(param(s, "per_page")).toEqual(["2", "2", "2"])
      }))

    it.scopedLive("none: one request even when the body has a next link", () =>
      Effect.gen(function*() {
        const s = yield* server((_req, res) => json(res, [{ id: 1 }], 200, { link: `</items?page=2>; rel="next"` }))
        const result = yield* pages(streamOf(`${s.url}/items`))
        expect(ids(result)).toEqual([1])
        expect(s.requests.length).toBe(1)
      }))

    it.scopedLive("a repeated next page is a SourceError naming the URL", () =>
      Effect.gen(function*() {
        const s = yield* server((_req, res) => json(res, [{ id: 1 }], 200, { link: `</items?page=2>; rel="next"` }))
        const error = yield* failure(streamOf(`${s.url}/items`, { pagination: { type: "link" } }))
        expect(error._tag).toBe("SourceError")
        expect(error.message).toBe(
          `pagination repeats: the server sent the same next page twice at ${s.url}/items?page=2`
        )
        expect(s.requests.length).toBe(2)
      }))

    it.scopedLive("one empty page with a next token is followed", () =>
      Effect.gen(function*() {
        const s = yield* server((_req, res, url) => {
          const c = url.searchParams.get("c")
          if (c === null) json(res, { data: [{ id: 1 }], next: "a" })
          else if (c === "a") json(res, { data: [], next: "b" })
          else json(res, { data: [{ id: 2 }], next: null })
        })
        const result = yield* pages(
          streamOf(`${s.url}/items`, { records: "data", pagination: { type: "cursor", param: "c", nextPath: "next" } })
        )
        expect(ids(result)).toEqual([1, 2])
        expect(param(s, "c")).toEqual([null, "a", "b"])
      }))

    it.scopedLive("two empty pages in a row with a next token is a SourceError", () =>
      Effect.gen(function*() {
        let n = 0
        const s = yield* server((_req, res) => json(res, { data: [], next: `t${++n}` }))
        const error = yield* failure(
          streamOf(`${s.url}/items`, { records: "data", pagination: { type: "cursor", param: "c", nextPath: "next" } })
        )
        expect(error._tag).toBe("SourceError")
        expect(error.message).toContain("two empty pages in a row")
        expect(error.message).toContain(`${s.url}/items?c=t1`)
        expect(s.requests.length).toBe(2)
      }))
  })

  describe("request", () => {
    it.scopedLive("fixed params and headers are sent; userinfo in the URL becomes basic auth and leaves the URL", () =>
      Effect.gen(function*() {
        const s = yield* server((_req, res) => json(res, []))
        const withUser = s.url.replace("http://", "http://alice:pw%40x@")
        const result = yield* pages(
          streamOf(`${withUser}/items`, { params: { status: "any" }, headers: { "x-tenant": "acme" } })
        )
        const seen = s.requests[0]!
        expect(seen.url.searchParams.get("status")).toBe("any")
        expect(seen.headers["x-tenant"]).toBe("acme")
        expect(seen.headers["authorization"]).toBe(`Basic ${Buffer.from("alice:pw@x").toString("base64")}`)
        expect(result[0]!.url).toBe(`${s.url}/items?status=any`)
      }))

    const auths = [
      {
        label: "bearer",
        auth: { type: "bearer", token: Redacted.make(TOKEN) },
        check: (r: TestServer["requests"][number]) => expect(r.headers["authorization"]).toBe(`Bearer ${TOKEN}`)
      },
      {
        label: "basic",
        auth: { type: "basic", username: "bob", password: Redacted.make(TOKEN) },
        check: (r: TestServer["requests"][number]) =>
          expect(r.headers["authorization"]).toBe(`Basic ${Buffer.from(`bob:${TOKEN}`).toString("base64")}`)
      },
      {
        label: "header",
        auth: { type: "header", name: "X-Api-Key", value: Redacted.make(TOKEN) },
        check: (r: TestServer["requests"][number]) => expect(r.headers["x-api-key"]).toBe(TOKEN)
      },
      {
        label: "query",
        auth: { type: "query", name: "key", value: Redacted.make(TOKEN) },
        check: (r: TestServer["requests"][number]) => expect(r.url.searchParams.get("key")).toBe(TOKEN)
      }
    ] as const

    for (const { auth, check, label } of auths) {
      it.scopedLive(`${label} auth reaches the server and never the error message`, () =>
        Effect.gen(function*() {
          const s = yield* server((_req, res, url) => {
            // echo the secret back in the next link, as some APIs do
            if (url.searchParams.get("page") === null) {
              json(res, [{ id: 1 }], 200, { link: `</items?page=2&key=${TOKEN}&token=${TOKEN}>; rel="next"` })
            } else json(res, { error: "unauthorized" }, 401)
          })
          const error = yield* failure(streamOf(`${s.url}/items`, { auth, pagination: { type: "link" } }))
          expect(s.requests.length).toBe(2)
          for (const r of s.requests) check(r)
          expect(error._tag).toBe("SourceError")
          expect(error.message).toContain("HTTP 401")
          expect(error.message).toContain(`${s.url}/items?page=2&key=***&token=***`)
          expect(error.message).not.toContain(TOKEN)
          expect(JSON.stringify(error)).not.toContain(TOKEN)
        }))
    }

    it.scopedLive("no secret reaches a trace span (custom auth header, fixed headers, query auth)", () =>
      Effect.gen(function*() {
        const s = yield* server((_req, res) => json(res, []))
        const native = yield* Effect.tracer
        const spans: Array<Tracer.Span> = []
        const recording = Tracer.make({
          span: (...args) => {
            const span = native.span(...args)
            spans.push(span)
            return span
          },
          context: (f, fiber) => native.context(f, fiber)
        })
        const traced = (stream: StreamSpec) => pages(stream).pipe(Effect.withTracer(recording))
        yield* traced(streamOf(`${s.url}/items`, {
          auth: { type: "header", name: "X-Custom-Key", value: Redacted.make(TOKEN) },
          headers: { "x-static-secret": `static-${TOKEN}` }
        }))
        yield* traced(streamOf(`${s.url}/items`, { auth: { type: "query", name: "k", value: Redacted.make(TOKEN) } }))
        yield* traced(streamOf(`${s.url}/plain`))
        expect(s.requests[0]!.headers["x-custom-key"]).toBe(TOKEN)
        expect(s.requests[1]!.url.searchParams.get("k")).toBe(TOKEN)
        const attributes = spans.map((span) => Object.fromEntries(span.attributes))
        // the requests without a secret in the URL are still traced
        expect(attributes.map((a) => a["url.full"]).filter((u) => u !== undefined)).toEqual([
          `${s.url}/items`,
          `${s.url}/plain`
        ])
        expect(JSON.stringify(attributes, (_k, v) => (Redacted.isRedacted(v) ? "<redacted>" : v))).not.toContain(TOKEN)
      }))

    it.scopedLive("incremental: `from` is sent as the param", () =>
      Effect.gen(function*() {
        const s = yield* server((_req, res) => json(res, []))
        const incremental = {
          cursorField: "updated_at",
          cursorType: "timestamp",
          param: "updated_since",
          lookback: Duration.zero,
          order: "unsorted"
        } as const
        yield* pages(streamOf(`${s.url}/items`, { incremental }), Option.some("2024-05-01T00:00:00Z"))
        yield* pages(streamOf(`${s.url}/items`, { incremental }), Option.none())
        expect(param(s, "updated_since")).toEqual(["2024-05-01T00:00:00Z", null])
      }))

    it.scopedLive("incremental: `from` is sent through the params templates", () =>
      Effect.gen(function*() {
        const s = yield* server((_req, res) => json(res, []))
        const incremental = {
          cursorField: "updated_at",
          cursorType: "timestamp",
          params: { updated_at: "gte.{cursor}", order: "updated_at.asc" },
          lookback: Duration.zero,
          order: "asc"
        } as const
        yield* pages(streamOf(`${s.url}/items`, { incremental }), Option.some("2024-05-01T00:00:00Z"))
        expect(param(s, "updated_at")).toEqual(["gte.2024-05-01T00:00:00Z"])
        expect(param(s, "order")).toEqual(["updated_at.asc"])
      }))
  })

  describe("retries", () => {
    it.scopedLive("503 twice then 200: the page counts 2 retries, each logged once", () =>
      Effect.gen(function*() {
        const s = yield* server((_req, res) => {
          if (s.requests.length <= 2) json(res, { error: "busy" }, 503)
          else json(res, [{ id: 1 }])
        })
        const logs: Array<{ message: unknown; annotations: Record<string, unknown> }> = []
        const logger = Logger.make(({ annotations, message }) => {
          logs.push({ message, annotations: Object.fromEntries(HashMap.toEntries(annotations)) })
        })
        const result = yield* pages(
          streamOf(`${s.url}/items`, { auth: { type: "query", name: "api_key", value: Redacted.make(TOKEN) } })
        ).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
        expect(s.requests.length).toBe(3)
        expect(result.map((p) => [ids([p]), p.retries])).toEqual([[[1], 2]])
        const retries = logs.filter((l) => JSON.stringify(l.message) === JSON.stringify(["http.retry"]))
        expect(retries.map((l) => [l.annotations["status"], l.annotations["attempt"]])).toEqual([[503, 1], [503, 2]])
        for (const l of retries) {
          expect(l.annotations["url"]).toBe(`${s.url}/items?api_key=***`)
          expect(typeof l.annotations["delay_ms"]).toBe("number")
        }
        expect(JSON.stringify(logs)).not.toContain(TOKEN)
      }))

    it.scopedLive("429 with Retry-After: 0, then success", () =>
      Effect.gen(function*() {
        const s = yield* server((_req, res) => {
          if (s.requests.length === 1) json(res, {}, 429, { "retry-after": "0" })
          else json(res, [{ id: 1 }])
        })
        const result = yield* pages(streamOf(`${s.url}/items`))
        expect(result.map((p) => p.retries)).toEqual([1])
        expect(s.requests.length).toBe(2)
      }))

    it.scopedLive("404 is not retried", () =>
      Effect.gen(function*() {
        const s = yield* server((_req, res) => json(res, { error: "nope" }, 404))
        const error = yield* failure(streamOf(`${s.url}/missing`))
        expect(s.requests.length).toBe(1)
        expect(error._tag).toBe("SourceError")
        expect(error.message).toContain("HTTP 404")
        expect(error.message).toContain(`${s.url}/missing`)
      }))

    it.scopedLive("429 for ever -> RateLimited (75) after all attempts", () =>
      Effect.gen(function*() {
        const s = yield* server((_req, res) => json(res, {}, 429))
        const error = yield* failure(streamOf(`${s.url}/items`))
        expect(error._tag).toBe("RateLimited")
        expect(error.exitCode).toBe(75)
        expect(error.message).toContain("HTTP 429")
        expect(s.requests.length).toBe(3)
      }))

    it.scopedLive("503 for ever -> SourceError (69) with the last status", () =>
      Effect.gen(function*() {
        const s = yield* server((_req, res) => json(res, {}, 503))
        const error = yield* failure(streamOf(`${s.url}/items`))
        expect(error._tag).toBe("SourceError")
        expect(error.message).toContain("HTTP 503")
        expect(s.requests.length).toBe(3)
      }))

    it.scopedLive("a refused connection is retried, then a SourceError with the connection error", () =>
      Effect.gen(function*() {
        const closed = yield* Effect.promise(() => startServer((_req, res) => json(res, [])))
        yield* Effect.promise(() => closed.close())
        const error = yield* failure(streamOf(`${closed.url}/items`))
        expect(error._tag).toBe("SourceError")
        expect(error.message).toContain("connection failed")
        expect(error.message).toContain("ECONNREFUSED")
        expect(error.message).toContain("gave up after 3 attempt(s)")
      }))

    it.scopedLive("a body that stalls halfway times out, is retried, then fails", () =>
      Effect.gen(function*() {
        const s = yield* server((_req, res) => {
          res.writeHead(200, { "content-type": "application/json" })
          res.write(`[{"id":1},`) // and never the rest
        })
        const error = yield* failure(
          streamOf(`${s.url}/items`, {
            timeout: Duration.millis(200),
            retry: { attempts: 2, base: Duration.millis(2), max: Duration.seconds(1) }
          })
        )
        expect(s.requests.length).toBe(2)
        expect(error._tag).toBe("SourceError")
        expect(error.message).toContain("timed out after 200ms")
        expect(error.message).toContain("gave up after 2 attempt(s)")
      }))
  })
})

describe("Link header and URL redaction (pure)", () => {
  it("parses several links, quoted params with commas and semicolons, rel lists", () => {
    const header = `<https://a.example/x?p=1>; rel="prev"; title="a, b; \\"c\\"", <https://a.example/x?p=3>; rel="last next"`
    expect(parseLinkHeader(header)).toEqual([
      { target: "https://a.example/x?p=1", params: { rel: "prev", title: `a, b; "c"` } },
      { target: "https://a.example/x?p=3", params: { rel: "last next" } }
    ])
    expect(nextLink(header, new URL("https://a.example/x"))).toEqual(Option.some(new URL("https://a.example/x?p=3")))
    expect(nextLink(`<https://a.example/x?p=1>; rel="prev"`, new URL("https://a.example/x"))).toEqual(Option.none())
    expect(nextLink(`<../y?p=2>; rel=next`, new URL("https://a.example/v1/x"))).toEqual(
      Option.some(new URL("https://a.example/y?p=2"))
    )
  })

  it("redacts userinfo, the query auth, secret-named params and secret values", () => {
    const auth = { type: "bearer", token: Redacted.make(TOKEN) } as const
    expect(redactUrl(`https://u:p@api.example.com/v1?a=1&access_token=zzz&other=${TOKEN}`, auth)).toBe(
      "https://api.example.com/v1?a=1&access_token=***&other=***"
    )
    expect(redactUrl(`https://api.example.com/bot${TOKEN}/items`, auth)).toBe("https://api.example.com/bot***/items")
    const query = { type: "query", name: "sessionid", value: Redacted.make("abc") } as const
    expect(redactUrl("https://api.example.com/v1?sessionid=abc&page=2", query)).toBe(
      "https://api.example.com/v1?sessionid=***&page=2"
    )
    expect(redactUrl("https://api.example.com/v1?page=2", undefined)).toBe("https://api.example.com/v1?page=2")
  })

  it.scopedLive("a next token that is neither a string nor a number is a SourceError, after the page", () =>
    Effect.gen(function*() {
      const s = yield* server((_req, res) => json(res, { data: [{ id: 1 }], next: { deep: true } }))
      const stream = streamOf(`${s.url}/items`, { records: "data", pagination: { type: "cursor", param: "c", nextPath: "next" } })
      const collected: Array<Page> = []
      const exit = yield* Stream.runForEach(pagesOf(stream, Option.none()), (p) => Effect.sync(() => collected.push(p))).pipe(
        Effect.provide(sourceLayer),
        Effect.exit
      )
      expect(ids(collected)).toEqual([1])
      expect(Exit.isFailure(exit) && Option.getOrUndefined(Cause.failureOption(exit.cause))?.message).toContain(
        `the next-page token at "next" is not a string or a number`
      )
    }))
})
