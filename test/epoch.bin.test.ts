/**
 * Epoch times (issue 14 item 5) through the bin, on a server and on the embedded database: an API
 * whose records carry Unix seconds and which filters by `?since=<unix seconds>`. The column stores the
 * instant; a value that is no epoch number is quarantined naming its field; the checkpoint is kept in
 * seconds and a second run sends it back as seconds less the lookback, reading only newer records.
 * A `format` on a non-timestamp column is a 78 naming the field.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ferry, streamConfig, summaries } from "./support/cli.js"
import { json, startServer, type TestServer } from "./support/http.js"
import { fileDatabase } from "./support/pg.js"

const db = fileDatabase("ferry_epoch")
let api: TestServer
const records: Array<{ id: string; name: string; created: unknown }> = []

beforeAll(async () => {
  api = await startServer((_req, res, url) => {
    const since = url.searchParams.get("since")
    // the API compares numbers: a since that is not one (an ISO string) is a 400, as real APIs do
    if (since !== null && !/^-?\d+(\.\d+)?$/.test(since)) return json(res, { error: "since must be unix seconds" }, 400)
    json(res, { data: records.filter((r) => since === null || typeof r.created !== "number" || r.created >= Number(since)) })
  })
})
afterAll(async () => {
  await api?.close()
})

const config = (columns: string, lookback = "60 seconds") =>
  streamConfig({
    name: "events",
    url: `${api.url}/events`,
    columns,
    incremental: `{ cursorField: created, param: since, format: unix, initial: "2023-01-01T00:00:00Z", lookback: ${lookback} }`,
    maxInvalid: 5
  })

const run = (dir: string) => ferry(["run"], { cwd: dir, env: { DATABASE_URL: db.url } })

describe("format: unix", () => {
  it("stores instants, quarantines non-numbers, and sends the checkpoint back as seconds less the lookback", async () => {
    records.push(
      { id: "a", name: "first", created: 1700000000 },
      { id: "b", name: "second", created: "1700000100" },
      { id: "c", name: "garbage", created: "2023-11-14T22:13:20Z" }
    )
    const dir = config("{ id: text, name: text, created: { type: timestamptz, format: unix } }")
    const first = await run(dir)
    expect(first.code, first.stderr).toBe(0)
    expect(api.requests.at(-1)!.url.searchParams.get("since")).toBe(String(1672531200 - 60))
    const rows = await db.query(`SELECT id, to_char(created AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') AS created FROM events ORDER BY id`)
    expect(rows).toEqual([{ id: "a", created: "2023-11-14T22:13:20" }, { id: "b", created: "2023-11-14T22:15:00" }])
    const reasons = (await db.query(`SELECT reason FROM ferry.quarantine WHERE stream = 'events'`)).map((r) => r.reason)
    expect(reasons).toEqual([expect.stringMatching(/^created: expected Unix seconds/)])
    const [state] = await db.query(`SELECT cursor FROM ferry.state WHERE stream = 'events'`)
    expect(state.cursor).toBe("1700000100")

    records.splice(2, 1) // the source fixed its bad record
    records.push({ id: "d", name: "third", created: 1700000200 })
    const second = await run(dir)
    expect(second.code, second.stderr).toBe(0)
    expect(api.requests.at(-1)!.url.searchParams.get("since")).toBe("1700000040")
    const [summary] = summaries(second)
    // b re-read by the lookback (unchanged), d new; a not read at all
    expect(summary.fetched).toBe(2)
    expect((await db.query(`SELECT id FROM events ORDER BY id`)).map((r) => r.id)).toEqual(["a", "b", "d"])
    expect((await db.query(`SELECT cursor FROM ferry.state WHERE stream = 'events'`))[0].cursor).toBe("1700000200")
  })

  it("refuses format on a column that is no timestamp or date, naming the field (78)", async () => {
    const result = await run(config("{ id: text, name: { type: text, format: unix }, created: { type: timestamptz, format: unix } }"))
    expect(result.code).toBe(78)
    expect(result.stderr).toMatch(/target\.columns\.name\.format: format is for timestamptz, timestamp and date columns, not text/)
  })

  it("refuses an epoch cursor whose column reads ISO (78)", async () => {
    const result = await run(config("{ id: text, name: text, created: timestamptz }"))
    expect(result.code).toBe(78)
    expect(result.stderr).toMatch(/source\.incremental\.format: the cursor is unix but its column created reads iso/)
  })
})
