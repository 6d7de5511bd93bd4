/**
 * Issue 14, pagination styles through the real bin, a real HTTP server on 127.0.0.1 and a real database
 * (server, or embedded without FERRY_TEST_DATABASE_URL):
 * - `type: link, nextPath`: the next page's URL in the body (JSON:API `links.next`, absolute then
 *   relative; HAL `_links.next.href`), null ends; a next URL on another origin is refused (69, no
 *   request) unless `source.allowOrigins` lists it, and then it gets no credentials;
 * - `type: cursor, nextHeader`: the token in a response header, an absent header ends.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type CliResult, configDir, ferry } from "./support/cli.js"
import { json, startServer, type TestServer } from "./support/http.js"
import { fileDatabase } from "./support/pg.js"

const TOKEN = "tok-Pg14Lk7Hd2"
const db = fileDatabase("ferry_paging")
let api: TestServer
let other: TestServer
/** where /offsite's first page points */
let offsiteNext = ""

const row = (id: number) => ({ id: String(id), name: `n${id}` })

beforeAll(async () => {
  let base = ""
  api = await startServer((_req, res, url) => {
    const page = url.searchParams.get("page")
    switch (url.pathname) {
      case "/v1/jsonapi":
        if (page === null) return json(res, { data: [row(1), row(2)], links: { next: `${base}/v1/jsonapi?page=2` } })
        if (page === "2") return json(res, { data: [row(3)], links: { next: "jsonapi?page=3" } })
        return json(res, { data: [row(4)], links: { next: null } })
      case "/hal":
        if (page === null) return json(res, { _embedded: { items: [row(1)] }, _links: { next: { href: "/hal?page=2" } } })
        return json(res, { _embedded: { items: [row(2)] }, _links: { self: { href: "/hal?page=2" } } })
      case "/header": {
        const cursor = url.searchParams.get("cursor")
        if (cursor === null) return json(res, { data: [row(1)] }, 200, { "X-Next-Cursor": "c2" })
        if (cursor === "c2") return json(res, { data: [row(2)] }, 200, { "X-Next-Cursor": "c3" })
        return json(res, { data: [row(3)] })
      }
      case "/offsite":
        return json(res, { data: [row(1)], links: { next: offsiteNext } })
    }
    json(res, { error: "no such page" }, 404)
  })
  base = api.url
  other = await startServer((_req, res) => json(res, { data: [row(9)], links: { next: null } }))
})

afterAll(async () => {
  await api?.close()
  await other?.close()
})

const run = (name: string, path: string, records: string, pagination: string, extra = ""): Promise<CliResult> =>
  ferry(["run"], {
    env: { DATABASE_URL: db.url, TOKEN },
    cwd: configDir(`
database: { url: "\${DATABASE_URL}" }
streams:
  - name: ${name}
    source:
      url: ${api.url}${path}
      auth: { type: bearer, token: "\${TOKEN}" }
      records: ${records}
      pagination: ${pagination}
      retry: { attempts: 1 }
${extra}
    target: { table: ${name}, primaryKey: [id], columns: { id: text, name: text } }
`)
  })

const ids = async (table: string) => (await db.query<{ id: string }>(`SELECT id FROM "${table}" ORDER BY id`)).map((r) => r.id)
const paths = (s: TestServer, from: number) => s.requests.slice(from).map((r) => r.url.pathname + r.url.search)

describe("type: link with nextPath (the next URL in the body)", () => {
  it("JSON:API links.next, absolute then relative to the current URL; null ends", async () => {
    const before = api.requests.length
    const result = await run("jsonapi", "/v1/jsonapi", "data", "{ type: link, nextPath: links.next }")
    expect(result.code, result.stderr).toBe(0)
    expect(await ids("jsonapi")).toEqual(["1", "2", "3", "4"])
    expect(paths(api, before)).toEqual(["/v1/jsonapi", "/v1/jsonapi?page=2", "/v1/jsonapi?page=3"])
  })

  it("HAL _links.next.href; a page without it ends", async () => {
    const before = api.requests.length
    const result = await run("hal", "/hal", "_embedded.items", "{ type: link, nextPath: _links.next.href }")
    expect(result.code, result.stderr).toBe(0)
    expect(await ids("hal")).toEqual(["1", "2"])
    expect(paths(api, before)).toEqual(["/hal", "/hal?page=2"])
  })

  it("a next URL on another origin: refused (69) without a request; with allowOrigins, fetched without the credentials", async () => {
    offsiteNext = `${other.url}/more?page=2`
    const before = other.requests.length
    const refused = await run("offsite", "/offsite", "data", "{ type: link, nextPath: links.next }")
    expect(refused.code).toBe(69)
    expect(other.requests.length).toBe(before)
    const errors = refused.logs.filter((l) => l.level === "error").map((l) => `${l.msg} ${l.error ?? ""}`).join("\n")
    expect(errors).toContain(other.url)
    expect(errors).toContain("source.allowOrigins")
    expect(refused.stderr).not.toContain(TOKEN)

    const allowed = await run("offsite", "/offsite", "data", "{ type: link, nextPath: links.next }", `      allowOrigins: [${other.url}]`)
    expect(allowed.code, allowed.stderr).toBe(0)
    expect(await ids("offsite")).toEqual(["1", "9"])
    expect(other.requests.length).toBe(before + 1)
    expect(other.requests[before]!.headers.authorization).toBeUndefined()
    expect(api.requests.at(-1)!.headers.authorization).toBe(`Bearer ${TOKEN}`)
  })
})

describe("type: cursor with nextHeader (the token in a response header)", () => {
  it("sends X-Next-Cursor back as the param; a page without the header ends", async () => {
    const before = api.requests.length
    const result = await run("by_header", "/header", "data", "{ type: cursor, nextHeader: X-Next-Cursor, param: cursor }")
    expect(result.code, result.stderr).toBe(0)
    expect(await ids("by_header")).toEqual(["1", "2", "3"])
    expect(paths(api, before)).toEqual(["/header", "/header?cursor=c2", "/header?cursor=c3"])
  })
})
