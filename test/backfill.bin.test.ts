/**
 * Bounded backfills (issue 14 item 7) through the bin, on the real database: `incremental.end` (a
 * value, `now - 1 hour`, epoch form) sent as `until`, against a server that honours it and one that
 * ignores it; `ferry run --from/--to` writes the slice's rows and leaves `ferry.state` untouched;
 * wrong flags exit 64 and a wrong `end` 78, each in one line naming what is wrong.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ferry, streamConfig, summaries } from "./support/cli.js"
import { json, startServer, type TestServer } from "./support/http.js"
import { fileDatabase } from "./support/pg.js"

const db = fileDatabase("ferry_backfill")
let api: TestServer

const at = (day: number) => `2024-01-${String(day).padStart(2, "0")}T00:00:00Z`
const records = [1, 5, 10, 15, 20, 25].map((day) => ({ id: `r${day}`, name: `day ${day}`, updated_at: at(day), created: Date.parse(at(day)) / 1000 }))

beforeAll(async () => {
  // /honours and /ignores filter by `since` (>=); only /honours by `until` (<=); /epoch reads both as Unix seconds
  api = await startServer((_req, res, url) => {
    const since = url.searchParams.get("since")
    const until = url.searchParams.get("until")
    const epoch = url.pathname === "/epoch"
    const value = (r: (typeof records)[number]) => (epoch ? r.created : Date.parse(r.updated_at))
    const bound = (text: string) => (epoch ? Number(text) : Date.parse(text))
    if ([since, until].some((t) => t !== null && Number.isNaN(bound(t)))) return json(res, { error: "bad bound" }, 400)
    const data = records.filter((r) =>
      (since === null || value(r) >= bound(since)) && (until === null || url.pathname === "/ignores" || value(r) <= bound(until))
    )
    json(res, { data })
  })
})
afterAll(async () => {
  await api?.close()
})

const config = (name: string, path: string, incremental: string, extra = "") =>
  streamConfig({
    name,
    url: `${api.url}${path}`,
    incremental: `{ cursorField: ${path === "/epoch" ? "created" : "updated_at"}, param: since, endParam: until, ` +
      `initial: "2024-01-01T00:00:00Z", ${incremental} }`,
    columns: path === "/epoch" ? "{ id: text, name: text, created: { type: timestamptz, format: unix } }" : undefined,
    extra
  })

const run = (dir: string, args: ReadonlyArray<string> = [], env: Record<string, string> = {}) =>
  ferry(["run", ...args], { cwd: dir, env: { DATABASE_URL: db.url, ...env } })
const last = (name: string) => api.requests.filter((r) => r.url.pathname === name).at(-1)!.url.searchParams
const ids = async (table: string) => (await db.query(`SELECT id FROM ${table} ORDER BY id`)).map((r) => r.id)
const state = async (stream: string) => (await db.query(`SELECT cursor FROM ferry.state WHERE stream = $1`, [stream]))[0]?.cursor

describe("incremental.end", () => {
  it("a value: sent as until; the API honours it; the checkpoint is the greatest cursor read", async () => {
    const dir = config("honours", "/honours", `end: "${at(12)}"`)
    const result = await run(dir)
    expect(result.code, result.stderr).toBe(0)
    expect(last("/honours").get("until")).toBe(at(12))
    expect(await ids("honours")).toEqual(["r1", "r10", "r5"])
    expect(await state("honours")).toBe(at(10))
  })

  it("an API that ignores it: every record is written, the checkpoint stops at the end", async () => {
    const dir = config("ignores", "/ignores", `end: "${at(12)}"`)
    const result = await run(dir)
    expect(result.code, result.stderr).toBe(0)
    expect(await ids("ignores")).toHaveLength(6)
    expect(await state("ignores")).toBe(at(12))
    // the next run starts from the end again, and the rows past it are re-read unchanged
    const second = await run(dir)
    expect(last("/ignores").get("since")).toBe(at(12))
    expect(summaries(second)[0]).toMatchObject({ fetched: 3, unchanged: 3 })
  })

  it("now - 1 hour: the run's start less an hour, whole seconds, in UTC whatever the machine's zone", async () => {
    const dir = config("relative", "/honours", `end: "now - 1 hour"`)
    const before = Math.floor(Date.now() / 1000) * 1000
    const result = await run(dir, [], { TZ: "America/St_Johns" })
    const after = Date.now()
    expect(result.code, result.stderr).toBe(0)
    const until = last("/honours").get("until")!
    expect(until).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/)
    expect(Date.parse(until)).toBeGreaterThanOrEqual(before - 3_600_000)
    expect(Date.parse(until)).toBeLessThanOrEqual(after - 3_600_000)
    expect(result.logs.find((l) => l.msg === "run.start")).toMatchObject({ end: until, slice: false })
  })

  it("format: unix: the end is sent as Unix seconds, a given ISO value converted", async () => {
    const dir = config("epoch", "/epoch", `format: unix, end: "${at(12)}"`)
    const result = await run(dir)
    expect(result.code, result.stderr).toBe(0)
    expect(last("/epoch").get("until")).toBe(String(Date.parse(at(12)) / 1000))
    expect(last("/epoch").get("since")).toBe(String(Date.parse(at(1)) / 1000))
    expect(await ids("epoch")).toEqual(["r1", "r10", "r5"])
    expect(await state("epoch")).toBe(String(Date.parse(at(10)) / 1000))
  })

  it("a value that is no timestamp is a 78 naming the field; so is an end with fullEvery", async () => {
    const bad = await run(config("bad_end", "/honours", `end: "last tuesday"`))
    expect(bad.code).toBe(78)
    expect(bad.stderr).toMatch(/streams\[0\]\.source\.incremental\.end: expected an ISO 8601 timestamp/)
    expect(bad.stderr).not.toMatch(/\n\s+at /)
    const deletes = await run(config("end_deletes", "/honours", `end: "now - 1 hour"`, "    fullEvery: 1 day"))
    expect(deletes.code).toBe(78)
    expect(deletes.stderr).toMatch(/source\.incremental\.end: a read with an end is never complete/)
  })
})

describe("ferry run --from/--to", () => {
  it("reads the slice, writes its rows, records the run, and leaves ferry.state as it was", async () => {
    const dir = config("sliced", "/honours", `order: asc`)
    const first = await run(dir, ["--to", at(3)])
    expect(first.code, first.stderr).toBe(0)
    // no checkpoint was stored by a slice, not even on a first run
    expect(await db.query(`SELECT * FROM ferry.state WHERE stream = 'sliced'`)).toEqual([])
    expect(await ids("sliced")).toEqual(["r1"])
    await run(dir) // a normal run stores a checkpoint
    const stored = await db.query(`SELECT * FROM ferry.state WHERE stream = 'sliced'`)
    expect(stored[0].cursor).toBe(at(25))
    await db.query(`DELETE FROM sliced WHERE id IN ('r5', 'r10')`)

    const slice = await run(dir, ["--from", "2024-01-05", "--to", "2024-01-10T00:00:00Z"])
    expect(slice.code, slice.stderr).toBe(0)
    expect(last("/honours").get("since")).toBe("2024-01-05")
    expect(last("/honours").get("until")).toBe("2024-01-10T00:00:00Z")
    expect(await ids("sliced")).toEqual(["r1", "r10", "r15", "r20", "r25", "r5"])
    expect(await db.query(`SELECT * FROM ferry.state WHERE stream = 'sliced'`)).toEqual(stored)
    const [summary] = summaries(slice)
    expect(summary).toMatchObject({ inserted: 2, checkpoint: null, slice: { from: "2024-01-05", to: "2024-01-10T00:00:00Z" } })
    const runs = await db.query(`SELECT inserted::int AS inserted, status FROM ferry.runs WHERE stream = 'sliced' AND run_id = $1`, [summary.run_id])
    expect(runs).toEqual([{ inserted: 2, status: "succeeded" }])
  })

  it("wrong flags exit 64 in one line naming the flag", async () => {
    const dir = config("flags", "/honours", `order: asc`)
    const cases: Array<[ReadonlyArray<string>, RegExp]> = [
      [["--from", "01/02/2024"], /--from "01\/02\/2024" for stream flags: expected an ISO 8601 timestamp/],
      [["--from", "2024-02-01", "--to", "2024-01-01"], /--from 2024-02-01 is after --to 2024-01-01 \(stream flags\)/],
      [["--from", "2024-01-01", "--full-refresh"], /--from\/--to read a slice and leave the checkpoint alone; --full-refresh/],
      [["--to", "now - a while"], /--to "now - a while" for stream flags: expected a cursor value, or now - <duration>/]
    ]
    for (const [args, message] of cases) {
      const result = await run(dir, args)
      expect(result.code, args.join(" ")).toBe(64)
      const errors = result.logs.filter((l) => l.level === "error")
      expect(errors).toHaveLength(1)
      expect(errors[0].msg).toMatch(message)
      expect(result.stderr).not.toMatch(/\n\s+at /)
    }
    const plain = streamConfig({ name: "plain", url: `${api.url}/honours`, incremental: null })
    const notIncremental = await run(plain, ["--from", "2024-01-01"])
    expect(notIncremental.code).toBe(64)
    expect(notIncremental.stderr).toMatch(/stream plain has no source.incremental/)
    expect(await db.query(`SELECT count(*)::int AS n FROM ferry.runs WHERE stream IN ('flags', 'plain')`)).toEqual([{ n: 0 }])
  })
})
