/**
 * End to end through the `ferry` bin as a child process: a real HTTP API on 127.0.0.1 and a real
 * PostgreSQL database. Every pagination style and auth type syncs all records, the second run
 * writes nothing, and a changed record is updated.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type Api, type ApiAuth, type ApiRecord, makeRecords, startApi } from "./support/api.js"
import { configDir, ferry, streamConfig, summaries } from "./support/cli.js"
import { createTestDatabase, type TestDatabase } from "./support/pg.js"
import { basicForm, expectNoSecrets, ferryTablesText } from "./support/secrets.js"

let db: TestDatabase
let api: Api

beforeAll(async () => {
  db = await createTestDatabase()
  api = await startApi(makeRecords(50))
})
afterAll(async () => {
  await api?.close()
  await db?.drop()
})

const cases: ReadonlyArray<{
  readonly style: string
  readonly path: string
  readonly pagination: string
  readonly records?: string
  readonly auth: ApiAuth
  readonly authYaml: string
}> = [
  {
    style: "link",
    path: "/link",
    pagination: "{ type: link }",
    records: "data",
    auth: { type: "bearer", token: "tok-bearer-123" },
    authYaml: "{ type: bearer, token: ${API_SECRET} }"
  },
  {
    style: "cursor (token in body)",
    path: "/token",
    pagination: "{ type: cursor, nextPath: meta.next, param: cursor }",
    records: "items",
    auth: { type: "basic", username: "ferry", password: "pw-basic-456" },
    authYaml: "{ type: basic, username: ferry, password: ${API_SECRET} }"
  },
  {
    style: "cursor (from last record)",
    path: "/after",
    pagination: "{ type: cursor, fromRecord: id, param: starting_after, hasMorePath: has_more }",
    records: "data",
    auth: { type: "header", name: "X-Api-Key", value: "key-header-789" },
    authYaml: "{ type: header, name: X-Api-Key, value: ${API_SECRET} }"
  },
  {
    style: "offset",
    path: "/offset",
    pagination: "{ type: offset, offsetParam: offset, limitParam: limit, limit: 6 }",
    auth: { type: "query", name: "api_key", value: "key-query-abc" },
    authYaml: "{ type: query, name: api_key, value: ${API_SECRET} }"
  },
  {
    style: "page",
    path: "/page",
    pagination: "{ type: page, pageParam: page, sizeParam: per_page, size: 8, firstPage: 1 }",
    records: "results",
    auth: { type: "bearer", token: "tok-page-def" },
    authYaml: "{ type: bearer, token: ${API_SECRET} }"
  },
  {
    style: "none",
    path: "/none",
    pagination: "{ type: none }",
    auth: { type: "header", name: "Authorization", value: "Token tok-none-ghi" },
    authYaml: "{ type: header, name: Authorization, value: ${API_SECRET} }"
  }
]

const secretOf = (auth: ApiAuth) =>
  auth.type === "bearer" ? auth.token : auth.type === "basic" ? auth.password : auth.value

describe("ferry run, end to end", () => {
  cases.forEach((c, i) => {
    it(`${c.style} pagination with ${c.auth.type} auth: full load, no-op rerun, incremental update`, async () => {
      api.auth = c.auth
      const table = `items_${i}`
      const dir = configDir(`
database: { url: "\${DATABASE_URL}" }
streams:
  - name: s${i}
    source:
      url: ${api.url}${c.path}
      auth: ${c.authYaml}
      ${c.records ? `records: ${c.records}` : ""}
      pagination: ${c.pagination}
      incremental: { cursorField: updated_at, param: since, initial: "2000-01-01T00:00:00Z", order: asc }
      retry: { attempts: 2, base: 10 millis, max: 1 second }
    target:
      table: ${table}
      primaryKey: [id]
      columns: { id: text, name: text, amount: numeric, updated_at: timestamptz }
`)
      const env = { DATABASE_URL: db.url, API_SECRET: secretOf(c.auth) }
      const first = await ferry(["run"], { cwd: dir, env })
      expect(first.stderr).not.toContain(secretOf(c.auth))
      expect(first.code).toBe(0)
      const [s1] = summaries(first)
      expect(s1).toMatchObject({ status: "succeeded", fetched: 50, inserted: 50, updated: 0, quarantined: 0 })
      const rows = await db.query(`SELECT id, name, amount::text AS amount FROM ${table} ORDER BY id`)
      expect(rows.length).toBe(50)
      expect(rows[7]).toEqual({ id: "r00007", name: "record 7", amount: String(api.records[7]!.amount) })

      // Nothing changed: the rerun re-reads the boundary (ties on the checkpoint) and writes nothing.
      const second = await ferry(["run"], { cwd: dir, env })
      expect(second.code).toBe(0)
      const [s2] = summaries(second)
      expect(s2).toMatchObject({ inserted: 0, updated: 0 })
      expect(s2!.fetched).toBeGreaterThan(0) // the records at the checkpoint's cursor
      expect(s2!.fetched).toBeLessThan(50)

      // One record changes: exactly it is updated.
      const saved = api.records[3]!
      api.records[3] = { ...saved, name: "renamed", updated_at: "2030-01-01T00:00:00.000Z" }
      try {
        const third = await ferry(["run"], { cwd: dir, env })
        expect(third.code).toBe(0)
        const secrets = c.auth.type === "basic" ? [secretOf(c.auth), basicForm(c.auth.username, c.auth.password)] : [secretOf(c.auth)]
        expectNoSecrets(
          [first, second, third].flatMap((r) => [r.stdout, r.stderr]).concat(await ferryTablesText(db)),
          secrets
        )
        expect(summaries(third)[0]).toMatchObject({ updated: 1, inserted: 0 })
        const [row] = await db.query(`SELECT name FROM ${table} WHERE id = 'r00003'`)
        expect(row).toEqual({ name: "renamed" })
      } finally {
        api.records[3] = saved
      }
    })
  })
})

/**
 * A first load goes in by COPY on a server (PgSink's bulk path). When COPY refuses a batch, nothing of
 * it is kept and its pages are parsed again from their bodies and written by the upsert: the outcome
 * is the same as without COPY. (On the embedded database there is no COPY; the outcome must not differ.)
 */
describe("first load: the bulk path and its fallbacks", () => {
  const run = async (name: string, records: Array<ApiRecord>, columns?: string) => {
    const own = await startApi(records)
    try {
      const dir = streamConfig({ url: `${own.url}/link`, name, columns })
      const result = await ferry(["run"], { cwd: dir, env: { DATABASE_URL: db.url, FERRY_LOG_LEVEL: "debug" } })
      return { result, summary: summaries(result)[0] }
    } finally {
      await own.close()
    }
  }

  it("a key repeated on a later page (changed meanwhile): the newest version is kept, counted once", async () => {
    const records = makeRecords(30)
    records.push({ ...records[2]!, name: "changed later", updated_at: "2030-01-01T00:00:00.000Z" })
    const { result, summary } = await run("bulk_repeat", records)
    expect(result.code).toBe(0)
    expect(summary).toMatchObject({ fetched: 31, inserted: 30, updated: 0, unchanged: 1, quarantined: 0 })
    expect(await db.query(`SELECT count(*)::int AS n FROM bulk_repeat`)).toEqual([{ n: 30 }])
    expect(await db.query(`SELECT name FROM bulk_repeat WHERE id = 'r00002'`)).toEqual([{ name: "changed later" }])
    // on a server the COPY was tried and refused, then the upsert took over
    if (!db.embedded) expect(result.logs.some((l) => l.msg === "sink.bulk_off")).toBe(true)
  })

  it("a value Postgres refuses: that record is quarantined as received, every other one is inserted", async () => {
    const records = makeRecords(30).map((r, i) => ({ ...r, day: i === 11 ? "2024-02-30" : "2024-02-28" }))
    const { result, summary } = await run(
      "bulk_refused",
      records,
      "{ id: text, name: text, amount: numeric, day: date, updated_at: timestamptz }"
    )
    expect(result.code).toBe(65)
    expect(summary).toMatchObject({ fetched: 30, inserted: 29, quarantined: 1 })
    const [q] = await db.query(`SELECT reason, record FROM ferry.quarantine WHERE stream = 'bulk_refused'`)
    expect(JSON.parse(q.record)).toEqual(records[11])
    expect(q.reason).toMatch(/2024-02-30/)
    expect(await db.query(`SELECT count(*)::int AS n FROM bulk_refused`)).toEqual([{ n: 29 }])
  })
})
