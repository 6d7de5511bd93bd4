/**
 * Issue 10, item 9, through the real bin: a source that hands out new tokens while repeating the same
 * pages (A, B, A, B, …) is stopped at the first repeat with 69 naming both page numbers, after what it
 * fetched is written; a page that only overlaps an earlier one (offset pagination while records are
 * inserted) is not a repeat.
 */
import { describe, expect, it } from "@effect/vitest"
import { ferry, streamConfig, summaries } from "./support/cli.js"
import { closedAfterAll, json, startServer, type TestServer } from "./support/http.js"
import { fileDatabase } from "./support/pg.js"

const db = fileDatabase()
const servers = closedAfterAll<TestServer>()

const item = (i: number) => ({ id: `r${i}`, name: `record ${i}`, updated_at: new Date(Date.UTC(2024, 0, 1, 0, i)).toISOString() })

/** serves `pageAt(n)` for `?p=n` (n from 0) with a Link to `?p=n+1` while `pageAt` gives a page; 404 past 50 requests */
const startPages = async (pageAt: (n: number) => ReadonlyArray<unknown> | undefined) => {
  let served = 0
  const server = await startServer((_req, res, url) => {
    if (++served > 50) return json(res, { error: "the test's backstop" }, 404)
    const n = Number(url.searchParams.get("p") ?? 0)
    const next = new URL(url)
    next.searchParams.set("p", String(n + 1))
    // a fresh token each time, as a real cursor would be
    next.searchParams.set("token", Math.random().toString(36).slice(2))
    const more = pageAt(n + 1) !== undefined
    json(res, { data: pageAt(n) ?? [] }, 200, more ? { link: `<${next.pathname}${next.search}>; rel="next"` } : {})
  })
  servers.push(server)
  return Object.assign(server, { served: () => served })
}

const setup = (table: string, url: string, order: "asc" | "unsorted" = "asc") => {
  const dir = streamConfig({
    name: table,
    url: `${url}/items`,
    incremental: `{ cursorField: updated_at, param: since, initial: "2000-01-01T00:00:00Z", order: ${order} }`,
    columns: "{ id: text, name: text, updated_at: timestamptz }",
    maxInvalid: 100
  })
  return () => ferry(["run"], { cwd: dir, env: { DATABASE_URL: db.url } })
}

const ids = async (table: string) => (await db.query<{ id: string }>(`SELECT id FROM ${table} ORDER BY id`)).map((r) => r.id)
const checkpoint = async (table: string) =>
  (await db.query<{ cursor: string }>(`SELECT cursor FROM ferry.state WHERE stream = $1`, [table]))[0]?.cursor

describe("pagination that repeats earlier pages under new tokens", () => {
  for (const order of ["asc", "unsorted"] as const) {
    it(`A, B, A, B, … (order ${order}): exit 69 at the third page naming pages 3 and 1, A and B written`, async () => {
      const a = [item(0), item(1), item(2)]
      const b = [item(3), item(4), item(5)]
      // A again with its records in another order: still the same records
      const s = await startPages((n) => (n % 2 === 1 ? b : n === 0 ? a : [...a].reverse()))
      const table = `repeat_ab_${order}`
      const result = await setup(table, s.url, order)()
      expect(result.code).toBe(69)
      expect(s.served()).toBe(3)
      expect(result.stderr).not.toMatch(/\n\s+at /)
      const [summary] = summaries(result)
      expect(summary).toMatchObject({ status: "failed", exit_code: 69, pages: 2, fetched: 6, inserted: 6 })
      expect(summary!.error).toMatch(/^pagination repeats: page 3 holds the same records \(keys and cursors\) as page 1; stopping rather than loop at http:\/\/127\.0\.0\.1:\d+\/items\?.*p=2/)
      expect(await ids(table)).toEqual(["r0", "r1", "r2", "r3", "r4", "r5"])
      // asc: what was written is checkpointed; unsorted: the stream never ended, so no checkpoint
      expect(await checkpoint(table)).toBe(order === "asc" ? item(5).updated_at : undefined)
    })
  }

  it("A, B, C, B: the repeat of a page further back is caught too (page 4 = page 2)", async () => {
    const pages = [[item(0), item(1)], [item(2), item(3)], [item(4), item(5)]]
    const s = await startPages((n) => pages[n === 3 ? 1 : n % 3])
    const result = await setup("repeat_abcb", s.url)()
    expect(result.code).toBe(69)
    expect(s.served()).toBe(4)
    expect(summaries(result)[0]!.error).toMatch(/^pagination repeats: page 4 holds the same records \(keys and cursors\) as page 2;/)
    expect(await ids("repeat_abcb")).toEqual(["r0", "r1", "r2", "r3", "r4", "r5"])
  })

  it("pages of records that do not decode, repeated: exit 69 as well, each page quarantined once", async () => {
    const a = [{ name: "no id 1" }, { name: "no id 2" }]
    const b = [{ name: "no id 3" }]
    const s = await startPages((n) => (n % 2 === 0 ? a : b))
    const result = await setup("repeat_invalid", s.url)()
    expect(result.code).toBe(69)
    expect(s.served()).toBe(3)
    expect(summaries(result)[0]).toMatchObject({ pages: 2, fetched: 3, quarantined: 3 })
    expect(summaries(result)[0]!.error).toMatch(/page 3 holds the same records \(keys and cursors\) as page 1/)
  })

  it("a page that overlaps the one before (offset pagination while records are inserted) is no repeat: exit 0", async () => {
    // page 2 starts with page 1's last two records (two records inserted before it was read)
    const pages = [[item(0), item(1), item(2)], [item(1), item(2), item(3)], [item(3), item(4)]]
    const s = await startPages((n) => pages[n])
    const result = await setup("overlap_ok", s.url)()
    expect(result.code).toBe(0)
    expect(summaries(result)[0]).toMatchObject({ status: "succeeded", pages: 3, fetched: 8, inserted: 5, unchanged: 3 })
    expect(await ids("overlap_ok")).toEqual(["r0", "r1", "r2", "r3", "r4"])
  })

  it("the same keys with a newer cursor (a record changed between pages) are no repeat: exit 0", async () => {
    const changed = { ...item(1), name: "changed", updated_at: item(9).updated_at }
    const pages = [[item(0), item(1)], [item(0), changed]]
    const s = await startPages((n) => pages[n])
    const result = await setup("changed_ok", s.url)()
    expect(result.code).toBe(0)
    expect(summaries(result)[0]).toMatchObject({ pages: 2, fetched: 4 })
  })
})
