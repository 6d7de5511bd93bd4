/**
 * Issue 13, items 1–3, through the real bin (server, and embedded when run without
 * FERRY_TEST_DATABASE_URL): a column added to the config is added to the table and filled from the
 * kept record (`schema.change`, once); without a record column the log says to run --full-refresh; a
 * type change is 78 with the SQL to run and changes nothing (a dry run neither); `extra` keeps what no
 * column maps; `new_fields` and `schema.drift` name a field once, not again; the record column keeps
 * a 19-digit number exactly.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type CliResult, configDir, ferry, summaries } from "./support/cli.js"
import { startServer, type TestServer } from "./support/http.js"
import { createTestDatabase, type TestDatabase } from "./support/pg.js"

let db: TestDatabase

/** records given as JSON text (long numbers reach Ferry as written), one page */
interface RawSource extends TestServer {
  records: Record<string, Array<string>>
}

let source: RawSource

beforeAll(async () => {
  db = await createTestDatabase()
  const records: Record<string, Array<string>> = {}
  const server = await startServer((_req, res, url) => {
    res.writeHead(200, { "content-type": "application/json" })
    res.end(`{"data":[${(records[url.pathname.slice(1)] ?? []).join(",")}]}`)
  })
  source = Object.assign(server, { records })
})
afterAll(async () => {
  await source?.close()
  await db?.drop()
})

/** a stream `name` reading /name, full reads, with these target lines */
const config = (name: string, target: string, incremental = "") =>
  configDir(`
database: { url: "\${DATABASE_URL}" }
streams:
  - name: ${name}
    source:
      url: ${source.url}/${name}
      records: data
      ${incremental}
    target:
      table: ${name}
      primaryKey: [id]
${target.split("\n").map((l) => `      ${l}`).join("\n")}
    maxInvalid: 10
`)

const run = (dir: string, ...args: Array<string>) => ferry(["run", ...args], { cwd: dir, env: { DATABASE_URL: db.url } })

const expectOk = (result: CliResult) => expect(result.code, result.stderr.slice(0, 3000)).toBe(0)

const logged = (result: CliResult, msg: string) => result.logs.filter((l) => l.msg === msg)

const columnsOf = async (table: string) =>
  (await db.query(
    `SELECT column_name AS name, data_type AS type FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position`,
    [table]
  )).map((r) => `${r.name} ${r.type}`)

describe("schema evolution", () => {
  it("a column added to the config is added and filled from the record column, logged once; a dry run only says so", async () => {
    source.records.evolve_fill = [
      `{"id":"a","status":"paid","amount":1.50,"customer":{"email":"a@x.io"},"at":"2024-10-27T02:10:00+01:00"}`,
      `{"id":"b","status":"open","amount":"12","customer":{"email":"b@x.io"},"at":"2024-01-01"}`,
      `{"id":"c","status":"open","amount":"not a number","customer":null}`
    ]
    const before = "columns: { id: text, status: text }\nrecord: _record"
    expectOk(await run(config("evolve_fill", before)))
    const after = config(
      "evolve_fill",
      "columns: { id: text, status: text, amount: numeric, email: { type: text, from: customer.email }, at: timestamp }\nrecord: _record"
    )

    const dry = await run(after, "--dry-run")
    expectOk(dry)
    expect(logged(dry, "schema.change").map((l) => [l.column, l.type, l.dry_run])).toEqual([
      ["amount", "numeric", true],
      ["email", "text", true],
      ["at", "timestamp without time zone".slice(0, 9), true]
    ])
    expect(await columnsOf("evolve_fill")).toEqual(["id text", "status text", "_record jsonb"])

    const second = await run(after)
    expectOk(second)
    const changes = logged(second, "schema.change")
    expect(changes.map((l) => ({ table: l.table, column: l.column, type: l.type, filled: l.filled, unfit: l.unfit }))).toEqual([
      { table: "public.evolve_fill", column: "amount", type: "numeric", filled: 2, unfit: 1 },
      { table: "public.evolve_fill", column: "email", type: "text", filled: 2, unfit: 0 },
      { table: "public.evolve_fill", column: "at", type: "timestamp", filled: 2, unfit: 0 }
    ])
    // as the decoder converts: 1.50 as a number, "12" as numeric text, the offset as UTC wall clock
    const rows = await db.query(`SELECT id, amount::text AS amount, email, at::text AS at FROM evolve_fill ORDER BY id`)
    expect(rows).toEqual([
      { id: "a", amount: "1.5", email: "a@x.io", at: "2024-10-27 01:10:00" },
      { id: "b", amount: "12", email: "b@x.io", at: "2024-01-01 00:00:00" },
      { id: "c", amount: null, email: null, at: null }
    ])
    // the run itself wrote nothing new: the filled rows are what a fresh write of the records gives
    expect(summaries(second)[0]).toMatchObject({ fetched: 3, inserted: 0, updated: 0, unchanged: 2, quarantined: 1 })

    const third = await run(after)
    expectOk(third)
    expect(logged(third, "schema.change")).toEqual([])
  })

  it("without a record column, the new column is added empty and the log says to run --full-refresh", async () => {
    source.records.evolve_norecord = [`{"id":"a","status":"paid","note":"hi","seq":1}`]
    // incremental on seq, sent as ?since= and ignored by this source: the record is re-read at the checkpoint
    const incremental = "incremental: { cursorField: seq, param: since }"
    expectOk(await run(config("evolve_norecord", "columns: { id: text, status: text, seq: bigint }", incremental)))
    source.records.evolve_norecord = []
    const after = config("evolve_norecord", "columns: { id: text, status: text, seq: bigint, note: text }", incremental)
    const second = await run(after)
    expectOk(second)
    const [change] = logged(second, "schema.change")
    expect(change).toMatchObject({ column: "note", type: "text", filled: null })
    expect(change.hint).toContain("--full-refresh")
    expect(await db.query(`SELECT note FROM evolve_norecord`)).toEqual([{ note: null }])
    source.records.evolve_norecord = [`{"id":"a","status":"paid","note":"hi","seq":1}`]
    expectOk(await run(after, "--full-refresh"))
    expect(await db.query(`SELECT note FROM evolve_norecord`)).toEqual([{ note: "hi" }])
  })

  it("a type change is 78 with the SQL to run, and changes nothing", async () => {
    source.records.evolve_type = [`{"id":"a","amount":"3"}`]
    expectOk(await run(config("evolve_type", "columns: { id: text, amount: text }")))
    const columns = await columnsOf("evolve_type")
    const changed = config("evolve_type", "columns: { id: text, amount: numeric, added: text }")
    for (const args of [[], ["--dry-run"]]) {
      const result = await run(changed, ...args)
      expect(result.code).toBe(78)
      const [summary] = summaries(result)
      expect(summary.error).toContain(`column "amount" is text, the stream needs numeric`)
      expect(summary.error).toContain(
        `ALTER TABLE "public"."evolve_type" ADD COLUMN "added" text; ` +
          `ALTER TABLE "public"."evolve_type" ALTER COLUMN "amount" TYPE numeric USING "amount"::numeric;`
      )
      expect(result.stderr).not.toMatch(/\n\s+at /) // no stack trace
      expect(await columnsOf("evolve_type")).toEqual(columns)
    }
    // the SQL it printed makes the table fit
    await db.query(`ALTER TABLE "public"."evolve_type" ADD COLUMN "added" text`)
    await db.query(`ALTER TABLE "public"."evolve_type" ALTER COLUMN "amount" TYPE numeric USING "amount"::numeric`)
    expectOk(await run(changed))
  })

  it("a changed primary key is 78 naming the constraint to drop", async () => {
    source.records.evolve_pk = [`{"id":"a","code":"x"}`]
    expectOk(await run(config("evolve_pk", "columns: { id: text, code: text }")))
    const result = await run(configDir(`
database: { url: "\${DATABASE_URL}" }
streams:
  - name: evolve_pk
    source: { url: ${source.url}/evolve_pk, records: data }
    target: { table: evolve_pk, primaryKey: [id, code], columns: { id: text, code: text } }
`))
    expect(result.code).toBe(78)
    expect(summaries(result)[0].error).toContain(
      `ALTER TABLE "public"."evolve_pk" DROP CONSTRAINT "evolve_pk_pkey", ADD PRIMARY KEY ("id", "code");`
    )
  })
})

describe("nothing dropped silently", () => {
  it("extra keeps the fields no column maps, the rest of a partly mapped object too", async () => {
    source.records.extra_keep = [
      `{"id":"a","status":"paid","customer":{"email":"a@x.io","name":"Ann"},"coupon":"X1","n":12345678901234567890}`,
      `{"id":"b","status":"open","customer":{"email":"b@x.io"}}`
    ]
    const dir = config("extra_keep", "columns: { id: text, status: text, email: { type: text, from: customer.email } }\nextra: _extra")
    expectOk(await run(dir))
    const rows = await db.query(`SELECT id, _extra::text AS extra FROM extra_keep ORDER BY id`)
    expect(rows).toEqual([
      { id: "a", extra: `{"n": 12345678901234567890, "coupon": "X1", "customer": {"name": "Ann"}}` },
      { id: "b", extra: null }
    ])
  })

  it("new_fields and schema.drift name a field the first time it is seen, not again", async () => {
    source.records.drift = [`{"id":"a","status":"paid","meta":{"tags":["x"],"by":"me"}}`]
    const dir = config("drift", "columns: { id: text, status: text }")
    const first = await run(dir)
    expectOk(first)
    expect(summaries(first)[0].new_fields).toEqual(["meta"])
    expect(logged(first, "schema.drift").map((l) => l.new_fields)).toEqual([["meta"]])

    const second = await run(dir)
    expectOk(second)
    expect(summaries(second)[0].new_fields).toEqual([])
    expect(logged(second, "schema.drift")).toEqual([])

    source.records.drift = [`{"id":"a","status":"paid","meta":{"tags":["x"],"by":"me","via":"api"},"coupon":"X"}`]
    const dry = await run(dir, "--dry-run")
    expectOk(dry)
    expect(summaries(dry)[0].new_fields).toEqual(["coupon", "meta.via"])
    const third = await run(dir)
    expectOk(third)
    expect(summaries(third)[0].new_fields).toEqual(["coupon", "meta.via"])
    expect((await run(dir)).logs.filter((l) => l.msg === "schema.drift")).toEqual([])
    const stored = await db.query(`SELECT path FROM ferry.fields WHERE stream = 'drift' ORDER BY path`)
    expect(stored.map((r) => r.path)).toEqual(["coupon", "meta", "meta.by", "meta.tags", "meta.via"])
  })
})

describe("the raw record", () => {
  it("record: _record keeps a 19-digit number exactly, beside typed columns", async () => {
    source.records.raw_keep = [`{"id":"a","big":1234567890123456789,"nested":{"n":-9876543210987654321.5}}`]
    expectOk(await run(config("raw_keep", "columns: { id: text }\nrecord: _record")))
    const [row] = await db.query(`SELECT _record->>'big' AS big, _record#>>'{nested,n}' AS n FROM raw_keep`)
    expect(row).toEqual({ big: "1234567890123456789", n: "-9876543210987654321.5" })
  })

  it("without columns the record column is still `record`, and a table an earlier release made keeps working", async () => {
    source.records.raw_default = [`{"id":"a","v":1}`]
    // the table as an earlier release created it
    await db.query(`CREATE TABLE public.raw_default (id text, record jsonb, PRIMARY KEY (id))`)
    const dir = config("raw_default", "")
    const first = await run(dir)
    expectOk(first)
    expect(logged(first, "schema.change")).toEqual([])
    expect(await db.query(`SELECT record::text AS record FROM raw_default`)).toEqual([{ record: `{"v": 1, "id": "a"}` }])
  })
})
