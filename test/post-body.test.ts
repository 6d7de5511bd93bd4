/**
 * Issue 14, item 4: POST sources with a JSON body, against a real HTTP server on 127.0.0.1 that reads
 * the body as an API would. `{cursor}` and `{next}` in the body (their JSON types), pagination
 * parameters in the body (`in: body`), the repeat guard on URL + body, a next link POSTed with the same
 * body; the templates themselves; and the config rules (exit 78 naming the field).
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Chunk, Duration, Effect, Either, Exit, Option, Schema, Stream } from "effect"
import type * as http from "node:http"
import * as Config from "../src/config/Config.js"
import type { ConfigError, SourceError } from "../src/domain/Errors.js"
import * as Json from "../src/domain/Json.js"
import * as StreamSpec from "../src/domain/StreamSpec.js"
import { fill } from "../src/domain/JsonTemplate.js"
import * as GraphQL from "../src/source/http/GraphQL.js"
import * as HttpSource from "../src/source/http/HttpSource.js"
import { pagesOf } from "../src/Source.js"
import { json, startServer } from "./support/http.js"
import * as streams from "./support/streams.js"

describe("JsonTemplate.fill", () => {
  const values = { cursor: 1700000000, next: "tok-2", none: undefined }

  it("a string that is exactly one placeholder becomes the value with its JSON type", () => {
    expect(fill({ a: "{cursor}", b: ["{next}"], c: { d: "{cursor}" } }, values)).toEqual({ a: 1700000000, b: ["tok-2"], c: { d: 1700000000 } })
    const exact = new Json.LosslessNumber("123456789012345678901")
    expect(Json.stringify(fill({ id: "{next}" }, { next: exact }))).toBe(`{"id":123456789012345678901}`)
  })

  it("inside other text the value is written as text", () => {
    expect(fill({ q: "updated > {cursor} and page {next}" }, values)).toEqual({ q: "updated > 1700000000 and page tok-2" })
  })

  it("an absent value makes its whole string null; unknown names, other values and the template are left as they are", () => {
    const template = { after: "{none}", q: "x > {none}", other: "{unknown} {}", n: 5, t: true, z: null }
    expect(fill(template, values)).toEqual({ after: null, q: null, other: "{unknown} {}", n: 5, t: true, z: null })
    expect(template.after).toBe("{none}")
  })
})

describe("GraphQL.problem: a 200 that is not a page of data", () => {
  it("errors: the first message (and how many more); data null or absent; data with no errors is fine", () => {
    expect(GraphQL.problem({ errors: [{ message: "no access" }, { message: "x" }], data: { a: [] } }))
      .toBe("the GraphQL API answered with errors: no access (and 1 more)")
    expect(GraphQL.problem({ errors: [{}] })).toBe("the GraphQL API answered with errors: an error without a message")
    expect(GraphQL.problem({ data: null })).toBe("the GraphQL response has no data")
    expect(GraphQL.problem({})).toBe("the GraphQL response has no data")
    expect(GraphQL.problem({ data: { a: [] }, errors: [] })).toBeUndefined()
  })
})

interface Seen {
  readonly method: string
  readonly path: string
  readonly contentType: string | undefined
  readonly body: any
}

/** A POST API: each request's JSON body is recorded, then answered by `answer`. */
const postServer = (answer: (body: any, res: http.ServerResponse, url: URL) => void) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const seen: Array<Seen> = []
      const server = await startServer(async (req, res, url) => {
        let text = ""
        for await (const chunk of req) text += chunk
        const body = text === "" ? undefined : JSON.parse(text)
        seen.push({ method: req.method ?? "", path: url.pathname, contentType: req.headers["content-type"], body })
        answer(body, res, url)
      })
      return { ...server, seen }
    }),
    (s) => Effect.promise(() => s.close())
  )

const streamOf = (url: string, source: streams.SourceOverrides) =>
  streams.streamSpec({
    source: { url, method: "POST", records: "data", timeout: Duration.seconds(5), ...source },
    decode: () => Either.right({ key: "", cursor: undefined, values: {} })
  })

const pages = (stream: ReturnType<typeof streamOf>, from: Option.Option<string> = Option.none()) =>
  Stream.runCollect(pagesOf(stream, from)).pipe(Effect.map(Chunk.toArray), Effect.provide(HttpSource.layerNode))

const failure = (stream: ReturnType<typeof streamOf>) =>
  Effect.map(Effect.exit(pages(stream)), (exit) => {
    if (Exit.isSuccess(exit)) return expect.fail("expected the run to fail")
    return Option.getOrThrow(Cause.failureOption(exit.cause)) as SourceError
  })

const ids = (ps: ReadonlyArray<{ records: ReadonlyArray<unknown> }>) => ps.flatMap((p) => p.records.map((r) => (r as { id: number }).id))

describe("POST with a JSON body", () => {
  it.scopedLive("{cursor}: a number cursor is sent as a number, a timestamp as text; a full read sends null", () =>
    Effect.gen(function*() {
      const s = yield* postServer((_body, res) => json(res, { data: [{ id: 1 }] }))
      const body = { filter: { updated_after: "{cursor}", text: "since {cursor}" }, size: 50 }
      const numeric = streamOf(`${s.url}/search`, { body, incremental: streams.incremental({ cursorField: "u" }) })
      yield* pages(numeric, Option.some("1700000000"))
      yield* pages(numeric, Option.none())
      const iso = streamOf(`${s.url}/search`, { body, incremental: streams.incremental({ cursorField: "u", cursorType: "timestamp" }) })
      yield* pages(iso, Option.some("2024-05-01T00:00:00Z"))
      expect(s.seen.map((r) => [r.method, r.contentType, r.body])).toEqual([
        ["POST", "application/json", { filter: { updated_after: 1700000000, text: "since 1700000000" }, size: 50 }],
        ["POST", "application/json", { filter: { updated_after: null, text: null }, size: 50 }],
        ["POST", "application/json", { filter: { updated_after: "2024-05-01T00:00:00Z", text: "since 2024-05-01T00:00:00Z" }, size: 50 }]
      ])
    }))

  it.scopedLive("{end}: the read's upper bound in the body, in the cursor's form; without one, null", () =>
    Effect.gen(function*() {
      const s = yield* postServer((_body, res) => json(res, { data: [{ id: 1 }] }))
      const body = { range: { after: "{cursor}", before: "{end}" } }
      const iso = streamOf(`${s.url}/search`, { body, incremental: streams.incremental({ cursorField: "u", cursorType: "timestamp" }) })
      yield* Stream.runDrain(pagesOf(iso, Option.some("2024-05-01T00:00:00Z"), Option.some("2024-06-01T00:00:00Z"))).pipe(
        Effect.provide(HttpSource.layerNode)
      )
      yield* pages(iso, Option.some("2024-05-01T00:00:00Z"))
      expect(s.seen.map((r) => r.body)).toEqual([
        { range: { after: "2024-05-01T00:00:00Z", before: "2024-06-01T00:00:00Z" } },
        { range: { after: "2024-05-01T00:00:00Z", before: null } }
      ])
    }))

  it.scopedLive("cursor pagination in: body: the token (a number stays a number) at the body's top level, one URL throughout", () =>
    Effect.gen(function*() {
      const s = yield* postServer((body, res) => {
        const after = body.after ?? 0
        json(res, { data: [{ id: after + 1 }], meta: { next: after < 2 ? after + 1 : null } })
      })
      const result = yield* pages(streamOf(`${s.url}/search`, {
        body: { kind: "orders", echo: "{next}" },
        pagination: { type: "cursor", param: "after", nextPath: "meta.next", in: "body" }
      }))
      expect(ids(result)).toEqual([1, 2, 3])
      expect(s.seen.map((r) => r.body)).toEqual([
        { kind: "orders", echo: null },
        { kind: "orders", echo: 1, after: 1 },
        { kind: "orders", echo: 2, after: 2 }
      ])
      expect(new Set(s.seen.map((r) => r.path))).toEqual(new Set(["/search"]))
    }))

  it.scopedLive("offset in: body, with no body written: offset and limit are the body", () =>
    Effect.gen(function*() {
      const all = [1, 2, 3, 4, 5].map((id) => ({ id }))
      const s = yield* postServer((body, res) => json(res, { data: all.slice(body.offset, body.offset + body.limit) }))
      const result = yield* pages(streamOf(`${s.url}/search`, { pagination: { type: "offset", limit: 2, in: "body" } }))
      expect(ids(result)).toEqual([1, 2, 3, 4, 5])
      expect(s.seen.map((r) => r.body)).toEqual([{ offset: 0, limit: 2 }, { offset: 2, limit: 2 }, { offset: 4, limit: 2 }])
    }))

  it.scopedLive("page in: query with {next} in the body: the page number, as a number, in the URL and the body", () =>
    Effect.gen(function*() {
      const s = yield* postServer((_body, res, url) => json(res, { data: url.searchParams.get("page") === "2" ? [{ id: 2 }] : [{ id: 1 }, { id: 0 }] }))
      yield* pages(streamOf(`${s.url}/search`, { body: { paging: { n: "{next}" } }, pagination: { type: "page", size: 2 } }))
      expect(s.seen.map((r) => r.body)).toEqual([{ paging: { n: 1 } }, { paging: { n: 2 } }])
    }))

  it.scopedLive("a token sent twice is a loop even on one URL: the body is part of the request", () =>
    Effect.gen(function*() {
      const s = yield* postServer((body, res) => json(res, { data: [{ id: body?.after ?? 0 }], meta: { next: "same" } }))
      const error = yield* failure(streamOf(`${s.url}/search`, {
        pagination: { type: "cursor", param: "after", nextPath: "meta.next", in: "body" }
      }))
      expect(error.reason).toContain("pagination repeats")
      // the first request, then the token once: its second request is never sent
      expect(s.seen.map((r) => r.body)).toEqual([undefined, { after: "same" }])
    }))

  it.scopedLive("a next link is POSTed with the same body", () =>
    Effect.gen(function*() {
      const s = yield* postServer((_body, res, url) =>
        json(res, url.pathname === "/search" ? { data: [{ id: 1 }], links: { next: "/search/2" } } : { data: [{ id: 2 }], links: {} }))
      const result = yield* pages(streamOf(`${s.url}/search`, { body: { q: "x" }, pagination: { type: "link", nextPath: "links.next" } }))
      expect(ids(result)).toEqual([1, 2])
      expect(s.seen.map((r) => [r.method, r.path, r.body])).toEqual([["POST", "/search", { q: "x" }], ["POST", "/search/2", { q: "x" }]])
    }))
})

const config = (source: string) => `
streams:
  - name: orders
    source:
      url: https://api.example.com/graphql
${source.trim().split("\n").map((line) => `      ${line}`).join("\n")}
    target: { table: orders, primaryKey: [id] }
`

const configError = (source: string) =>
  Effect.flip(Config.parse(config(source), "/tmp/ferry.config.yaml", {})) as Effect.Effect<ConfigError>

describe("config rules for POST and GraphQL (78, naming the field)", () => {
  const cases: ReadonlyArray<readonly [string, string, string, string]> = [
    ["graphql with a body", `records: data.orders\ngraphql: { query: "{ orders { id } }" }\nbody: { a: 1 }`, "streams[0].source.body", "remove body"],
    ["graphql with method: GET", `records: data.orders\nmethod: GET\ngraphql: { query: "{ orders { id } }" }`, "streams[0].source.method", "POST"],
    ["graphql without records", `graphql: { query: "{ orders { id } }" }`, "streams[0].source.records", "data.orders.nodes"],
    ["a body with GET", `body: { a: 1 }`, "streams[0].source.body", "method: POST only"],
    ["in: variables without graphql", `method: POST\npagination: { type: offset, in: variables }`, "streams[0].source.pagination.in", "graphql"],
    ["in: body with graphql", `records: data.o\ngraphql: { query: "{ o { id } }" }\npagination: { type: offset, in: body }`, "streams[0].source.pagination.in", "in: variables"],
    ["in: body with GET", `pagination: { type: page, in: body }`, "streams[0].source.pagination.in", "method: POST"],
    ["in: body with a list body", `method: POST\nbody: [1]\npagination: { type: offset, in: body }`, "streams[0].source.body", "mapping"],
    ["a bad placement", `method: POST\npagination: { type: offset, in: header }`, "streams[0].source.pagination.in", "query, body, variables"],
    ["a method other than GET or POST", `method: PUT`, "streams[0].source.method", "GET, POST"]
  ]
  for (const [name, source, path, says] of cases) {
    it.effect(name, () =>
      Effect.map(configError(source), (error) => {
        expect(error.path).toBe(path)
        expect(error.reason).toContain(says)
      }))
  }

  it.effect("graphql implies POST; variables default to {}; the rest of the source is as for GET", () =>
    Effect.map(Config.parse(config(`records: data.orders.nodes\ngraphql: { query: "{ orders { nodes { id } } }" }`), "/tmp/f.yaml", {}), (c) => {
      expect(c.streams[0]!.source).toMatchObject({ method: "POST", graphql: { query: "{ orders { nodes { id } } }", variables: {} } })
    }))

  it("StreamSpec.make applies the same rules", () => {
    const options = {
      name: "orders",
      schema: Schema.Struct({ id: Schema.String }),
      source: { url: "https://api.example.com/graphql", records: "data.orders", graphql: { query: "{ orders { id } }" } },
      target: { table: "orders", primaryKey: ["id" as const] }
    }
    expect(StreamSpec.make(options).source.method).toBe("POST")
    expect(() => StreamSpec.make({ ...options, source: { ...options.source, body: {} } })).toThrow("source.body: graphql sends")
  })
})
