/**
 * `target.write` (issue 13 item 5), through the bin, on a server and on the embedded database:
 *
 * - append: every version of a record is a row keyed by primary key + cursor; a re-read (the next run's
 *   boundary, a --full-refresh) adds nothing and counts it unchanged; a changed record adds a row and
 *   keeps the old one; append without `incremental` is a 78 naming `target.write`.
 * - replace: the table is the source's content after each run (rows gone from the source are gone),
 *   views on it survive the swap; a source failing mid-run, an empty read, or too many invalid records
 *   leave the old table; a table squatting the staging name is never dropped (78); replace with
 *   `incremental` is a 78 naming it. Counts add up in every run (fetched = inserted + updated +
 *   unchanged + quarantined + already_quarantined).
 * Kills (SIGKILL at the dangerous points and at random moments) are in test/failpoints.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type Api, type ApiRecord, makeRecords, startApi } from "./support/api.js"
import { type CliResult, ferry, streamConfig, summaries } from "./support/cli.js"
import { fileDatabase } from "./support/pg.js"

const db = fileDatabase("ferry_modes")
let api: Api

beforeAll(async () => {
  api = await startApi([], { pageSize: 7 })
})
afterAll(async () => {
  await api?.close()
})

const config = (table: string, write: string, incremental?: string | null, maxInvalid?: number) =>
  streamConfig({
    name: table,
    url: `${api.url}/link`,
    columns: "{ id: text, name: text, amount: numeric, updated_at: timestamptz }",
    incremental,
    maxInvalid,
    write
  })

const run = async (dir: string, args: ReadonlyArray<string> = []): Promise<CliResult> =>
  ferry(["run", ...args], { cwd: dir, env: { DATABASE_URL: db.url } })

const only = (result: CliResult) => {
  const all = summaries(result)
  expect(all, result.stderr.slice(-2000)).toHaveLength(1)
  const s = all[0]!
  // no silent drops: every fetched record is accounted for
  expect(s.fetched).toBe(s.inserted + s.updated + s.unchanged + s.quarantined + s.already_quarantined)
  return s
}

const rowsOf = async (table: string) =>
  (await db.query(`SELECT id, name, amount::text AS amount, updated_at FROM "${table}" ORDER BY id, updated_at`))
    .map((r) => ({ id: r.id, name: r.name, amount: r.amount, updated_at: new Date(r.updated_at).toISOString() }))

const expected = (records: ReadonlyArray<ApiRecord>) =>
  [...records]
    .sort((a, b) => a.id.localeCompare(b.id) || a.updated_at.localeCompare(b.updated_at))
    .map((r) => ({ id: r.id, name: r.name, amount: String(r.amount), updated_at: new Date(r.updated_at).toISOString() }))

const stagingLeft = async (table: string) =>
  (await db.query(`SELECT to_regclass($1) IS NOT NULL AS present`, [`public."${table}__ferry_staging"`]))[0]!.present

describe("write: append", () => {
  it("keeps every version keyed by id + cursor; a re-read adds nothing", async () => {
    const v1 = makeRecords(30)
    api.records = v1.map((r) => ({ ...r }))
    const dir = config("appended", "append")
    const first = await run(dir)
    expect(first.code, first.stderr.slice(-2000)).toBe(0)
    expect(only(first)).toMatchObject({ fetched: 30, inserted: 30, updated: 0, unchanged: 0 })
    const [{ pk }] = await db.query(
      `SELECT array_to_string(ARRAY(SELECT a.attname::text FROM pg_index i JOIN pg_attribute a
         ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'appended'::regclass
         AND i.indisprimary ORDER BY array_position(i.indkey::int2[], a.attnum)), ',') AS pk`
    )
    expect(pk).toBe("id,updated_at")

    // the next run re-reads the checkpoint's records (inclusive cursor): unchanged, nothing added
    const again = await run(dir)
    expect(again.code).toBe(0)
    const s2 = only(again)
    expect(s2.inserted).toBe(0)
    expect(s2.unchanged).toBe(s2.fetched)
    expect(s2.fetched).toBeGreaterThan(0)

    // two records change: two new rows, the old versions stay
    const later = new Date(Date.UTC(2025, 0, 1)).toISOString()
    api.records[3] = { ...api.records[3]!, name: "changed 3", updated_at: later }
    api.records[7] = { ...api.records[7]!, name: "changed 7", amount: 1.5, updated_at: later }
    const third = await run(dir)
    expect(third.code).toBe(0)
    expect(only(third)).toMatchObject({ inserted: 2, updated: 0 })
    expect(await rowsOf("appended")).toEqual(expected([...v1, api.records[3]!, api.records[7]!]))

    // a full refresh reads every current version again: nothing new
    const full = await run(dir, ["--full-refresh"])
    expect(full.code).toBe(0)
    expect(only(full)).toMatchObject({ fetched: 30, inserted: 0, updated: 0, unchanged: 30 })
    expect(await db.query(`SELECT count(*)::int AS n FROM appended`)).toEqual([{ n: 32 }])
  })

  it("without incremental: 78 naming target.write, nothing created", async () => {
    api.records = makeRecords(3)
    const result = await run(config("append_no_cursor", "append", null))
    expect(result.code).toBe(78)
    expect(result.stderr.trim().split("\n")).toHaveLength(1)
    expect(result.logs[0]!.msg).toContain("streams[0].target.write")
    expect(result.logs[0]!.msg).toContain("source.incremental")
    expect(api.pagesServed).toBeGreaterThanOrEqual(0)
    const [{ present }] = await db.query(`SELECT to_regclass('public.append_no_cursor') IS NOT NULL AS present`)
    expect(present).toBe(false)
  })
})

describe("write: replace", () => {
  it("the table is the source after each run; rows gone from the source are gone; views survive", async () => {
    const v1 = makeRecords(40)
    api.records = v1.map((r) => ({ ...r }))
    const dir = config("replaced", "replace", null)
    const first = await run(dir)
    expect(first.code, first.stderr.slice(-2000)).toBe(0)
    expect(only(first)).toMatchObject({ fetched: 40, inserted: 40 })
    expect(first.logs.some((l) => l.msg === "target.replaced")).toBe(true)
    expect(await rowsOf("replaced")).toEqual(expected(v1))
    expect(await stagingLeft("replaced")).toBe(false)

    // a view and a grant on the table: the swap keeps the table itself, so both survive
    await db.query(`CREATE VIEW replaced_names AS SELECT id, name FROM replaced`)
    await db.query(`COMMENT ON TABLE replaced IS 'kept'`)
    const v2 = v1.filter((_, i) => i % 4 !== 0).map((r, i) => (i % 5 === 0 ? { ...r, name: `renamed ${r.id}` } : r))
    v2.push({ id: "new-1", name: "new", amount: 7, updated_at: "2024-06-01T00:00:00.000Z" })
    api.records = v2
    const second = await run(dir)
    expect(second.code, second.stderr.slice(-2000)).toBe(0)
    expect(only(second)).toMatchObject({ fetched: v2.length, inserted: v2.length })
    expect(await rowsOf("replaced")).toEqual(expected(v2))
    expect(await db.query(`SELECT count(*)::int AS n FROM replaced_names`)).toEqual([{ n: v2.length }])
    expect(await db.query(`SELECT obj_description('replaced'::regclass, 'pg_class') AS c`)).toEqual([{ c: "kept" }])
    expect(await stagingLeft("replaced")).toBe(false)
    const runs = await db.query(`SELECT status FROM ferry.runs WHERE stream = 'replaced' ORDER BY started_at`)
    expect(runs.map((r) => r.status)).toEqual(["succeeded", "succeeded"])
    // no checkpoint: every run reads everything
    expect(await db.query(`SELECT count(*)::int AS n FROM ferry.state WHERE stream = 'replaced'`)).toEqual([{ n: 0 }])
  })

  it("a source failing mid-run leaves the old table whole; the next run replaces it", async () => {
    const v1 = makeRecords(30)
    api.records = v1
    const dir = config("replace_fails", "replace", null)
    expect((await run(dir)).code).toBe(0)
    const v2 = makeRecords(50, Date.UTC(2024, 5, 1)).map((r) => ({ ...r, name: `v2 ${r.id}` }))
    api.records = v2
    api.fail = (url) => (url.searchParams.get("at") === "21" ? 500 : undefined)
    const failed = await run(dir).finally(() => (api.fail = undefined))
    expect(failed.code).toBe(69)
    const s = only(failed)
    expect(s.inserted).toBe(21)
    expect(failed.logs.some((l) => l.msg === "target.replaced")).toBe(false)
    expect(await rowsOf("replace_fails")).toEqual(expected(v1))

    const next = await run(dir)
    expect(next.code).toBe(0)
    expect(await rowsOf("replace_fails")).toEqual(expected(v2))
    expect(await stagingLeft("replace_fails")).toBe(false)
  })

  it("an empty read keeps the table (warning target.kept); too many invalid records keep it (65)", async () => {
    const v1 = makeRecords(10)
    api.records = v1
    const dir = config("replace_kept", "replace", null)
    expect((await run(dir)).code).toBe(0)
    api.records = []
    const empty = await run(dir)
    expect(empty.code).toBe(0)
    expect(only(empty)).toMatchObject({ fetched: 0, inserted: 0 })
    expect(empty.logs.find((l) => l.msg === "target.kept")).toMatchObject({ level: "warn" })
    expect(await rowsOf("replace_kept")).toEqual(expected(v1))

    api.records = [...makeRecords(5), { id: "bad", name: "x", amount: "not a number", updated_at: "2024-01-01T00:00:00Z" }]
    const invalid = await run(dir)
    expect(invalid.code).toBe(65)
    expect(only(invalid)).toMatchObject({ fetched: 6, inserted: 5, quarantined: 1 })
    expect(await rowsOf("replace_kept")).toEqual(expected(v1))
  })

  it("a table of the staging name that Ferry did not create: 78, never dropped", async () => {
    api.records = makeRecords(5)
    await db.query(`CREATE TABLE "squat__ferry_staging" (x int)`)
    await db.query(`INSERT INTO "squat__ferry_staging" VALUES (1)`)
    const result = await run(config("squat", "replace", null))
    expect(result.code).toBe(78)
    expect(only(result).error).toContain(`DROP TABLE "public"."squat__ferry_staging";`)
    expect(await db.query(`SELECT x FROM "squat__ferry_staging"`)).toEqual([{ x: 1 }])
  })

  it("with incremental: 78 naming source.incremental", async () => {
    const result = await run(config("replace_incremental", "replace"))
    expect(result.code).toBe(78)
    expect(result.logs[0]!.msg).toContain("streams[0].source.incremental")
  })

  it("--dry-run counts a replace and changes nothing", async () => {
    api.records = makeRecords(12)
    const dir = config("replace_dry", "replace", null)
    const dry = await run(dir, ["--dry-run"])
    expect(dry.code, dry.stderr.slice(-2000)).toBe(0)
    expect(only(dry)).toMatchObject({ fetched: 12, inserted: 12 })
    expect(await db.query(`SELECT to_regclass('public.replace_dry') IS NOT NULL AS present`)).toEqual([{ present: false }])
    expect(await stagingLeft("replace_dry")).toBe(false)
  })
})
