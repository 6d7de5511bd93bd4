/**
 * `target.deletes` (issue 13 item 4), through the bin, on a server and on the embedded database:
 *
 * - flagged by the source, action delete: a flagged record deletes its row (`deleted` in the summary,
 *   ferry.runs and status), a flag older than the stored row's cursor deletes nothing, a flagged
 *   record never stored adds nothing (unchanged);
 * - flagged, action mark: `_deleted_at` is the run's time, kept as it was when the flag is read again
 *   (unchanged, no new row version), cleared when the record comes back;
 * - missing from a complete read, action delete: rows gone from the source are deleted (`missing`),
 *   never after a failed read, a read with an invalid record, or an empty read (unless allowEmpty);
 * - missing, action mark, incremental with fullEvery: an incremental run marks nothing; once the last
 *   complete read is older than fullEvery the run reads everything and marks what it did not see;
 * - with child tables (`target.children`): a parent row deleted (flagged or missing) takes its child rows
 *   with it, in the same transaction; a kill before that COMMIT deletes neither; `mark` keeps both;
 * - config: deletes with append, detect: missing with replace, a `_deleted_at` column: 78 naming the field.
 * Every run's counts add up: fetched = inserted + updated + unchanged + deleted + quarantined + already_quarantined.
 * Kills during a `detect: missing` run are in test/failpoints.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type Api, type ApiRecord, makeRecords, startApi } from "./support/api.js"
import { type CliResult, ferry, start, streamConfig, summaries } from "./support/cli.js"
import { fileDatabase } from "./support/pg.js"

const db = fileDatabase("ferry_deletes")
let api: Api

beforeAll(async () => {
  api = await startApi([], { pageSize: 7 })
})
afterAll(async () => {
  await api?.close()
})

const config = (table: string, deletes: string, o: { incremental?: string | null; extra?: string; maxInvalid?: number } = {}) =>
  streamConfig({
    name: table,
    url: `${api.url}/link`,
    incremental: o.incremental,
    maxInvalid: o.maxInvalid,
    extra: o.extra,
    columns: `{ id: text, name: text, amount: numeric, updated_at: timestamptz }
      deletes: ${deletes}`
  })

const run = async (dir: string, args: ReadonlyArray<string> = []): Promise<CliResult> =>
  ferry(["run", ...args], { cwd: dir, env: { DATABASE_URL: db.url } })

const only = (result: CliResult) => {
  const all = summaries(result)
  expect(all, result.stderr.slice(-2000)).toHaveLength(1)
  const s = all[0]!
  expect(s.fetched).toBe(s.inserted + s.updated + s.unchanged + s.deleted + s.quarantined + s.already_quarantined)
  return s
}

const ids = async (table: string, where = "true") =>
  (await db.query(`SELECT id FROM "${table}" WHERE ${where} ORDER BY id`)).map((r) => r.id as string)

const later = (r: ApiRecord, days: number) => new Date(Date.parse(r.updated_at) + days * 86_400_000).toISOString()

describe("deletes flagged by the source", () => {
  it("action delete: a flagged record deletes its row, never over a newer one", async () => {
    api.records = makeRecords(10).map((r, i) => (i === 3 ? { ...r, deleted: true } : r))
    const dir = config("flag_delete", "{ path: deleted, equals: true, action: delete }")
    const first = await run(dir)
    expect(first.code, first.stderr.slice(-2000)).toBe(0)
    // r00003 was never stored: nothing to delete, nothing added
    expect(only(first)).toMatchObject({ fetched: 10, inserted: 9, deleted: 0, unchanged: 1 })
    expect(await ids("flag_delete")).not.toContain("r00003")

    // r00005 is deleted at the source (a newer version, flagged); `deleted: "true"` (text) is no flag
    api.records[5] = { ...api.records[5]!, deleted: true, updated_at: later(api.records[5]!, 30) }
    api.records[6] = { ...api.records[6]!, deleted: "true", updated_at: later(api.records[6]!, 30) }
    const second = await run(dir)
    expect(second.code).toBe(0)
    expect(only(second)).toMatchObject({ deleted: 1, updated: 1 })
    expect(await ids("flag_delete")).toEqual(["r00000", "r00001", "r00002", "r00004", "r00006", "r00007", "r00008", "r00009"])
    const [recorded] = await db.query(
      `SELECT deleted::int, missing::int FROM ferry.runs WHERE stream = 'flag_delete' ORDER BY finished_at DESC LIMIT 1`
    )
    expect(recorded).toEqual({ deleted: 1, missing: 0 })
    const status = await ferry(["status", "--json"], { cwd: dir, env: { DATABASE_URL: db.url } })
    expect(JSON.parse(status.stdout).streams[0]).toMatchObject({ deleted: 1, missing: 0 })

    // a flag older than the stored row (r00007 was updated later): the row stays
    api.records[7] = { ...api.records[7]!, name: "newer", updated_at: later(api.records[7]!, 60) }
    expect((await run(dir)).code).toBe(0)
    api.records[7] = { ...api.records[7]!, deleted: true, updated_at: later(api.records[7]!, -50) }
    const old = await run(dir, ["--full-refresh"])
    expect(old.code).toBe(0)
    expect(only(old).deleted).toBe(0)
    expect(await ids("flag_delete")).toContain("r00007")
  })

  it("action mark: _deleted_at is the run's time, kept when read again, cleared when the record comes back", async () => {
    api.records = makeRecords(12).map((r, i) => (i === 2 ? { ...r, status: "gone" } : r))
    const dir = config("flag_mark", "{ path: status, equals: gone, action: mark }")
    const first = await run(dir)
    expect(first.code, first.stderr.slice(-2000)).toBe(0)
    expect(only(first)).toMatchObject({ fetched: 12, inserted: 12, deleted: 0 })
    expect(await ids("flag_mark", "_deleted_at IS NOT NULL")).toEqual(["r00002"])
    const [{ at }] = await db.query(`SELECT _deleted_at AS at FROM flag_mark WHERE id = 'r00002'`)
    const [{ started }] = await db.query(`SELECT started_at AS started FROM ferry.runs WHERE stream = 'flag_mark'`)
    expect(Math.abs(new Date(at).getTime() - new Date(started).getTime())).toBeLessThan(5000)

    // read again: the mark stays as it was, nothing rewritten
    const again = await run(dir, ["--full-refresh"])
    expect(again.code).toBe(0)
    expect(only(again)).toMatchObject({ fetched: 12, inserted: 0, updated: 0, unchanged: 12 })
    const [{ at: still }] = await db.query(`SELECT _deleted_at AS at FROM flag_mark WHERE id = 'r00002'`)
    expect(new Date(still).getTime()).toBe(new Date(at).getTime())

    // r00002 comes back, r00004 goes
    api.records[2] = { ...api.records[2]!, status: "active", updated_at: later(api.records[2]!, 10) }
    api.records[4] = { ...api.records[4]!, status: "gone", updated_at: later(api.records[4]!, 10) }
    const third = await run(dir)
    expect(third.code).toBe(0)
    expect(only(third).updated).toBe(2)
    expect(await ids("flag_mark", "_deleted_at IS NOT NULL")).toEqual(["r00004"])
  })
})

describe("deletes detected by a complete read", () => {
  it("action delete: rows gone from the source are deleted; never after a failed, invalid or empty read", async () => {
    const all = makeRecords(20)
    api.records = all.map((r) => ({ ...r }))
    const dir = config("missing_delete", "{ detect: missing, action: delete }", { incremental: null, maxInvalid: 5 })
    const first = await run(dir)
    expect(first.code, first.stderr.slice(-2000)).toBe(0)
    expect(only(first)).toMatchObject({ inserted: 20, missing: 0 })

    const kept = all.filter((_, i) => i % 7 !== 0)
    api.records = kept
    const second = await run(dir)
    expect(second.code).toBe(0)
    expect(only(second)).toMatchObject({ fetched: 17, missing: 3 })
    expect(second.logs.find((l) => l.msg === "deletes.missing")).toMatchObject({ rows: 3, action: "delete" })
    expect(await ids("missing_delete")).toEqual(api.records.map((r) => r.id))
    // the keys seen are dropped with the run
    expect(await db.query(`SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'ferry' AND tablename LIKE 'seen_%'`))
      .toEqual([{ n: 0 }])

    // a read that fails after some pages deletes nothing
    api.records = kept.slice(0, 12)
    api.fail = (url) => (url.searchParams.get("at") === "7" ? 500 : undefined)
    const failed = await run(dir).finally(() => (api.fail = undefined))
    expect(failed.code).toBe(69)
    expect(only(failed).missing).toBe(0)
    expect(await ids("missing_delete")).toHaveLength(17)

    // an invalid record: its key is not known, nothing is deleted (warning)
    api.records = [...kept.slice(0, 5), { id: "bad", name: "x", amount: "not a number", updated_at: all[0]!.updated_at }]
    const invalid = await run(dir)
    expect(invalid.code).toBe(0)
    expect(only(invalid)).toMatchObject({ quarantined: 1, missing: 0 })
    expect(invalid.logs.find((l) => l.msg === "deletes.skipped")).toMatchObject({ level: "warn" })
    expect(await ids("missing_delete")).toHaveLength(17)

    // an empty read deletes nothing
    api.records = []
    const empty = await run(dir)
    expect(empty.code).toBe(0)
    expect(only(empty).missing).toBe(0)
    expect(empty.logs.find((l) => l.msg === "deletes.skipped")?.reason).toContain("allowEmpty")
    expect(await ids("missing_delete")).toHaveLength(17)

    // ...unless allowEmpty
    const allow = config("missing_delete", "{ detect: missing, action: delete, allowEmpty: true }", { incremental: null })
    const emptied = await run(allow)
    expect(emptied.code).toBe(0)
    expect(only(emptied).missing).toBe(17)
    expect(await ids("missing_delete")).toEqual([])
  })

  it("action mark with incremental and fullEvery: only a complete read marks; a record back clears its mark", async () => {
    const all = makeRecords(15)
    api.records = all.map((r) => ({ ...r }))
    const dir = config("missing_mark", "{ detect: missing, action: mark }", { extra: "    fullEvery: 1 day" })
    const first = await run(dir)
    expect(first.code, first.stderr.slice(-2000)).toBe(0)
    expect(first.logs.some((l) => l.msg === "run.full_read")).toBe(true)
    expect(only(first)).toMatchObject({ inserted: 15, missing: 0 })

    // an incremental run (the last complete read is recent) marks nothing
    api.records = all.filter((r) => r.id !== "r00001" && r.id !== "r00009")
    const incremental = await run(dir)
    expect(incremental.code).toBe(0)
    expect(incremental.logs.some((l) => l.msg === "run.full_read")).toBe(false)
    expect(only(incremental).missing).toBe(0)
    expect(await ids("missing_mark", "_deleted_at IS NOT NULL")).toEqual([])

    // the last complete read is two days old: this run reads everything, and marks what it did not see
    await db.query(`UPDATE ferry.runs SET started_at = started_at - interval '2 days' WHERE stream = 'missing_mark'`)
    const full = await run(dir)
    expect(full.code).toBe(0)
    expect(full.logs.find((l) => l.msg === "run.full_read")?.reason).toContain("fullEvery")
    expect(only(full)).toMatchObject({ fetched: 13, missing: 2 })
    expect(await ids("missing_mark", "_deleted_at IS NOT NULL")).toEqual(["r00001", "r00009"])
    expect(await ids("missing_mark")).toHaveLength(15)

    // r00009 comes back (a newer version): its mark is cleared
    api.records.push({ ...all[9]!, updated_at: later(all[9]!, 100) })
    const back = await run(dir)
    expect(back.code).toBe(0)
    expect(await ids("missing_mark", "_deleted_at IS NOT NULL")).toEqual(["r00001"])
  })
})

/** a config whose records carry `items`, a child table `<table>_items` keyed by (parent_id, sku) */
const withChildren = (table: string, deletes: string, o: { incremental?: string | null } = {}) =>
  config(table, `${deletes}
      children: [{ path: items, table: ${table}_items, primaryKey: [sku], columns: { sku: text, qty: integer } }]`, o)

const itemized = (records: ReadonlyArray<ApiRecord>) =>
  records.map((r, i) => ({ ...r, items: [{ sku: "a", qty: i }, { sku: "b", qty: 1 }] }))

/** the parents that have child rows, each once */
const parents = async (table: string) =>
  (await db.query(`SELECT DISTINCT parent_id FROM "${table}_items" ORDER BY parent_id`)).map((r) => r.parent_id as string)

describe("deletes with child tables", () => {
  it("flagged, action delete: the parent's child rows go with it, never over a newer one", async () => {
    api.records = itemized(makeRecords(6))
    const dir = withChildren("child_flag", "{ path: deleted, equals: true, action: delete }")
    const first = await run(dir)
    expect(first.code, first.stderr.slice(-2000)).toBe(0)
    expect(only(first)).toMatchObject({ inserted: 6 })
    expect(await db.query(`SELECT count(*)::int AS n FROM child_flag_items`)).toEqual([{ n: 12 }])

    // r00002 deleted at the source; r00004's flag is older than its stored row: both it and its items stay
    api.records[2] = { ...api.records[2]!, deleted: true, updated_at: later(api.records[2]!, 30) }
    api.records[4] = { ...api.records[4]!, deleted: true, updated_at: later(api.records[4]!, -30) }
    const second = await run(dir, ["--full-refresh"])
    expect(second.code, second.stderr.slice(-2000)).toBe(0)
    expect(only(second)).toMatchObject({ deleted: 1 })
    expect(await ids("child_flag")).toEqual(["r00000", "r00001", "r00003", "r00004", "r00005"])
    expect(await parents("child_flag")).toEqual(["r00000", "r00001", "r00003", "r00004", "r00005"])
    expect(await db.query(`SELECT count(*)::int AS n FROM child_flag_items`)).toEqual([{ n: 10 }])
  })

  it("detect: missing, action delete: the rows a complete read did not see go with their child rows", async () => {
    const all = itemized(makeRecords(10))
    api.records = all
    const dir = withChildren("child_missing", "{ detect: missing, action: delete }", { incremental: null })
    expect((await run(dir)).code).toBe(0)
    api.records = all.filter((_, i) => i % 3 !== 0)
    const second = await run(dir)
    expect(second.code, second.stderr.slice(-2000)).toBe(0)
    expect(only(second)).toMatchObject({ missing: 4 })
    const kept = api.records.map((r) => r.id)
    expect(await ids("child_missing")).toEqual(kept)
    expect(await parents("child_missing")).toEqual(kept)
  })

  it("action mark keeps the parent row and its child rows", async () => {
    const all = itemized(makeRecords(5))
    api.records = all
    const dir = withChildren("child_mark", "{ detect: missing, action: mark }", { incremental: null })
    expect((await run(dir)).code).toBe(0)
    api.records = all.slice(1)
    const second = await run(dir)
    expect(second.code).toBe(0)
    expect(only(second)).toMatchObject({ missing: 1 })
    expect(await ids("child_mark", "_deleted_at IS NOT NULL")).toEqual(["r00000"])
    expect(await parents("child_mark")).toEqual(all.map((r) => r.id))
  })

  it.each([
    ["flagged", "{ path: deleted, equals: true, action: delete }", "before-commit:1"],
    ["detect: missing", "{ detect: missing, action: delete }", "before-commit:2"]
  ])("%s: killed right before the COMMIT that deletes, neither the parent nor its children are gone", async (kind, deletes, failpoint) => {
    const table = kind === "flagged" ? "child_kill_flag" : "child_kill_missing"
    const all = itemized(makeRecords(8))
    api.records = all
    const dir = withChildren(table, deletes, { incremental: null })
    expect((await run(dir)).code).toBe(0)
    api.records = kind === "flagged"
      ? all.map((r, i) => (i === 3 ? { ...r, deleted: true, updated_at: later(r, 1) } : r))
      : all.filter((_, i) => i !== 3)
    const killed = await start(["run"], { cwd: dir, env: { DATABASE_URL: db.url, FERRY_FAILPOINT: failpoint } }).done
    expect(killed.signal, killed.stderr.slice(-1500)).toBe("SIGKILL")
    const everyone = all.map((r) => r.id)
    expect(await ids(table)).toEqual(everyone)
    expect(await parents(table)).toEqual(everyone)
    // the next run deletes both
    const again = await run(dir)
    expect(again.code, again.stderr.slice(-1500)).toBe(0)
    const kept = everyone.filter((id) => id !== "r00003")
    expect(await ids(table)).toEqual(kept)
    expect(await parents(table)).toEqual(kept)
  })
})

describe("deletes: config", () => {
  it.each([
    ["with write: append", "{ detect: missing, action: delete }", "write: append", "streams[0].target.deletes"],
    ["detect: missing with write: replace", "{ detect: missing, action: delete }", "write: replace", "streams[0].target.deletes"],
    ["mark with write: replace", "{ path: deleted, equals: true, action: mark }", "write: replace", "streams[0].target.deletes.action"],
    ["an unknown action", "{ path: deleted, equals: true, action: remove }", "", "streams[0].target.deletes"]
  ])("%s: 78 naming the field", async (_, deletes, write, field) => {
    api.records = makeRecords(3)
    const dir = streamConfig({
      name: "deletes_config",
      url: `${api.url}/link`,
      incremental: write === "write: replace" ? null : undefined,
      columns: `{ id: text, name: text, amount: numeric, updated_at: timestamptz }
      deletes: ${deletes}
      ${write}`
    })
    const result = await run(dir)
    expect(result.code).toBe(78)
    expect(result.stderr.trim().split("\n")).toHaveLength(1)
    expect(result.logs[0]!.msg).toContain(field)
  })

  it("mark with a _deleted_at column of its own: 78 naming it", async () => {
    const dir = streamConfig({
      name: "deletes_column",
      url: `${api.url}/link`,
      columns: `{ id: text, name: text, updated_at: timestamptz, _deleted_at: timestamptz }
      deletes: { path: deleted, equals: true, action: mark }`
    })
    const result = await run(dir)
    expect(result.code).toBe(78)
    expect(result.logs[0]!.msg).toContain("streams[0].target.columns._deleted_at")
  })
})
