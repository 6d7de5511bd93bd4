/**
 * Issue 10, items 4 and 7, through the real bin: numbers past 2^53 stored with every digit (text,
 * numeric, bigint, jsonb, the checkpoint and the `since` sent back), a value a column cannot hold
 * quarantined with the true reason, and one key written two ways ("01" and 1, a uuid in two cases)
 * being one row, newest version wins, on the upsert and the COPY path, across runs and with --full-refresh.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type CliResult, configDir, ferry, summaries } from "./support/cli.js"
import { startServer, type TestServer } from "./support/http.js"
import { createTestDatabase, type TestDatabase } from "./support/pg.js"

let db: TestDatabase

/**
 * A source of records given as JSON text (so that long numbers reach Ferry as written), each with
 * its cursor as a BigInt: `?since=` keeps those >= it, compared exactly; `?at=` pages by `pageSize`
 * with a Link header.
 */
interface RawSource extends TestServer {
  records: Array<{ readonly text: string; readonly cursor: bigint }>
  pageSize: number
}

const startRawSource = async (): Promise<RawSource> => {
  const source = { records: [], pageSize: 1000 } as unknown as RawSource
  const server = await startServer((_req, res, url) => {
    const since = url.searchParams.get("since")
    const all = source.records.filter((r) => since === null || r.cursor >= BigInt(since))
    const at = Number(url.searchParams.get("at") ?? 0)
    const page = all.slice(at, at + source.pageSize)
    const headers: Record<string, string> = { "content-type": "application/json" }
    if (at + source.pageSize < all.length) {
      const next = new URL(url)
      next.searchParams.set("at", String(at + source.pageSize))
      headers.link = `<${next.pathname}${next.search}>; rel="next"`
    }
    res.writeHead(200, headers)
    res.end(`{"data":[${page.map((r) => r.text).join(",")}]}`)
  })
  return Object.assign(source, server)
}

let source: RawSource

beforeAll(async () => {
  db = await createTestDatabase()
  source = await startRawSource()
})
afterAll(async () => {
  await source?.close()
  await db?.drop()
})

const run = (dir: string, ...args: Array<string>) => ferry(["run", ...args], { cwd: dir, env: { DATABASE_URL: db.url } })

const expectOk = (result: CliResult) => {
  expect(result.code, result.stderr.slice(0, 3000)).toBe(0)
  for (const s of summaries(result)) expect(s.fetched).toBe(s.inserted + s.updated + s.unchanged + s.quarantined)
}

const config = (name: string, columns: string, extra = "") =>
  configDir(`
database: { url: "\${DATABASE_URL}" }
streams:
  - name: ${name}
    source:
      url: ${source.url}/${name}
      records: data
      pagination: { type: link }
      incremental: { cursorField: seq, param: since, cursorType: number }
    target:
      table: ${name}
      primaryKey: [id]
      columns: ${columns}
    maxInvalid: 10
${extra}`)

describe("numbers past 2^53 keep every digit", () => {
  const ids = ["1234567890123456789", "1234567890123456788", "1234567890123456787"]
  const payload = (id: string) => `{"id":${id},"big":1e400,"frac":12345678.123456789,"small":0.1}`

  it("three records with ids differing past digit 16 are three rows, exact in text, numeric, bigint and jsonb", async () => {
    source.records = ids.map((id, i) => ({
      text: `{"id":${id},"seq":${i + 1},"payload":${payload(id)}}`,
      cursor: BigInt(i + 1)
    }))
    source.pageSize = 1000
    const dir = config(
      "exact_ids",
      "{ id: bigint, as_text: { type: text, from: id }, as_numeric: { type: numeric, from: id }, seq: bigint, payload: jsonb }"
    )
    const first = await run(dir)
    expectOk(first)
    expect(summaries(first)[0]).toMatchObject({ fetched: 3, inserted: 3, quarantined: 0 })
    const rows = await db.query(
      `SELECT id::text AS id, as_text, as_numeric::text AS as_numeric, payload->>'id' AS payload_id,
              payload::text AS payload FROM exact_ids ORDER BY id DESC`
    )
    expect(rows.map((r) => [r.id, r.as_text, r.as_numeric, r.payload_id])).toEqual(ids.map((id) => [id, id, id, id]))
    expect(rows[0].payload).toBe(
      `{"id": 1234567890123456789, "big": 1${"0".repeat(400)}, "frac": 12345678.123456789, "small": 0.1}`
    )

    // the same again: nothing changed, nothing written (the stored values compare equal, digit for digit)
    const second = await run(dir, "--full-refresh")
    expectOk(second)
    expect(summaries(second)[0]).toMatchObject({ fetched: 3, inserted: 0, updated: 0, unchanged: 3 })

    // an update through the upsert path keeps them too
    source.records[0] = { text: source.records[0]!.text.replace("\"seq\":1", "\"seq\":4"), cursor: 4n }
    source.records[0] = { ...source.records[0]!, text: source.records[0]!.text.replace("\"small\":0.1", "\"small\":98765432109876543210") }
    const third = await run(dir, "--full-refresh")
    expectOk(third)
    expect(summaries(third)[0]).toMatchObject({ updated: 1, unchanged: 2 })
    const [updated] = await db.query(`SELECT payload->>'small' AS small FROM exact_ids WHERE id = 1234567890123456789`)
    expect(updated.small).toBe("98765432109876543210")
  })

  it("without columns, the default record jsonb keeps every digit", async () => {
    source.records = ids.map((id, i) => ({ text: `{"id":${id},"seq":${i + 1},"n":-${id}.5}`, cursor: BigInt(i + 1) }))
    const dir = configDir(`
database: { url: "\${DATABASE_URL}" }
streams:
  - name: default_shape
    source:
      url: ${source.url}/default_shape
      records: data
      pagination: { type: link }
      incremental: { cursorField: seq, param: since, initial: "0" }
    target: { table: default_shape, primaryKey: [id] }
`)
    const result = await run(dir)
    expectOk(result)
    const rows = await db.query(`SELECT id, seq::text AS seq, record->>'id' AS rid, record->>'n' AS n FROM default_shape ORDER BY id DESC`)
    expect(rows.map((r) => [r.id, r.rid, r.n])).toEqual(ids.map((id) => [id, id, `-${id}.5`]))
  })

  it("a bigint cursor past 2^53 is checkpointed and sent back as `since` with every digit", async () => {
    const seqs = ["9007199254740993", "9007199254740995", "9223372036854775807"]
    source.records = seqs.map((seq, i) => ({ text: `{"id":${i + 1},"seq":${seq}}`, cursor: BigInt(seq) }))
    const dir = config("big_cursor", "{ id: integer, seq: bigint }")
    const first = await run(dir)
    expectOk(first)
    expect(summaries(first)[0]).toMatchObject({ fetched: 3, inserted: 3, checkpoint: "9223372036854775807" })
    const [state] = await db.query(`SELECT cursor FROM ferry.state WHERE stream = 'big_cursor'`)
    expect(state.cursor).toBe("9223372036854775807")

    const before = source.requests.length
    const second = await run(dir)
    expectOk(second)
    // >= the checkpoint: the last record again (absorbed), not all three (a rounded since would be 9223372036854775808)
    expect(summaries(second)[0]).toMatchObject({ fetched: 1, unchanged: 1 })
    const sent = source.requests.slice(before).filter((r) => r.url.pathname === "/big_cursor")
    expect(sent.map((r) => r.url.searchParams.get("since"))).toEqual(["9223372036854775807"])
  })

  it("a value a column cannot hold is quarantined with the true reason and its exact text", async () => {
    const texts = [
      `{"id":1,"seq":1,"qty":1234567890123456789,"ratio":1}`,
      `{"id":2,"seq":2,"qty":7,"ratio":1e400}`,
      `{"id":3,"seq":3,"qty":-1e400,"ratio":1}`,
      `{"id":4,"seq":4,"qty":7,"ratio":12345678901234567890}`
    ]
    source.records = texts.map((text, i) => ({ text, cursor: BigInt(i + 1) }))
    const dir = config("out_of_range", "{ id: integer, seq: bigint, qty: integer, ratio: double precision }")
    const result = await run(dir)
    expectOk(result)
    expect(summaries(result)[0]).toMatchObject({ fetched: 4, inserted: 1, quarantined: 3 })
    const quarantined = await db.query(`SELECT reason, record FROM ferry.quarantine WHERE stream = 'out_of_range' ORDER BY record`)
    expect(quarantined).toEqual([
      { reason: "qty: 1234567890123456789 is out of range for integer", record: texts[0] },
      { reason: "ratio: 1e400 is out of range for double precision", record: texts[1] },
      { reason: "qty: -1e400 is out of range for integer", record: texts[2] }
    ])
    // a double precision column is lossy by nature: the nearest double
    const [row] = await db.query(`SELECT ratio FROM out_of_range`)
    expect(row.ratio).toBe(12345678901234567000)
  })
})

describe("one key written two ways is one row, the newest version wins", () => {
  const upper = "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"
  const lower = upper.toLowerCase()

  const check = async (name: string, columns: string, key: (i: number) => string) => {
    // 1 and "01" (or upper and lower case) in one page, then in two pages of one batch (COPY falls
    // back to the upsert on the server), then across runs, then --full-refresh
    source.records = [
      { text: `{"id":${key(0)},"seq":1,"v":"old"}`, cursor: 1n },
      { text: `{"id":${key(1)},"seq":2,"v":"new"}`, cursor: 2n },
      { text: `{"id":${key(2)},"seq":3,"v":"other"}`, cursor: 3n }
    ]
    const dir = config(name, columns)
    for (const pageSize of [1000, 1]) {
      source.pageSize = pageSize
      await db.query(`DROP TABLE IF EXISTS ${name}; DELETE FROM ferry.state WHERE stream = '${name}'`).catch(() => undefined)
      const first = await run(dir)
      expectOk(first)
      expect(summaries(first)[0]).toMatchObject({ fetched: 3, inserted: 2, quarantined: 0 })
      expect(await db.query(`SELECT id::text AS id, v FROM ${name} ORDER BY seq`)).toEqual([
        { id: expect.any(String), v: "new" },
        { id: expect.any(String), v: "other" }
      ])
    }
    // the table holds the key in one form; a later run brings the other: an update, not an error
    source.records.push({ text: `{"id":${key(0)},"seq":4,"v":"newest"}`, cursor: 4n })
    const later = await run(dir)
    expectOk(later)
    expect(summaries(later)[0]).toMatchObject({ updated: 1, quarantined: 0 })
    const refresh = await run(dir, "--full-refresh")
    expectOk(refresh)
    expect(summaries(refresh)[0]).toMatchObject({ fetched: 4, inserted: 0, updated: 0, quarantined: 0 })
    expect((await db.query(`SELECT v FROM ${name} ORDER BY seq`)).map((r) => r.v)).toEqual(["other", "newest"])
    expect(await db.query(`SELECT count(*)::int AS n FROM ferry.quarantine WHERE stream = '${name}'`)).toEqual([{ n: 0 }])
  }

  it("bigint keys 1 and \"+01\"", () =>
    check("bigint_keys", "{ id: bigint, seq: bigint, v: text }", (i) => ["1", "\"+01\"", "2"][i]!))

  it("a uuid in upper and lower case", () =>
    check("uuid_keys", "{ id: uuid, seq: bigint, v: text }", (i) => [`"${upper}"`, `"{${lower}}"`, `"${lower.replace("a0", "b0")}"`][i]!))

  it("numeric keys 1 and 1.00", () =>
    check("numeric_keys", "{ id: numeric, seq: bigint, v: text }", (i) => ["1", "\"1.00\"", "1.5"][i]!))

  it("timestamptz keys: one instant at two offsets", () =>
    check(
      "instant_keys",
      "{ id: timestamptz, seq: bigint, v: text }",
      (i) => ["\"2024-03-31T01:30:00Z\"", "\"2024-03-31T03:30:00+02:00\"", "\"2024-03-31T01:30:00.000001Z\""][i]!
    ))
})
