/**
 * Issue 10, items 5 and 6, through the real bin: the checkpoint and the upsert's guard order cursors
 * the same way, and only rows Postgres accepted move the checkpoint.
 *
 * - A `timestamp` (without time zone) cursor column across a DST change: the newer instant wins even
 *   when its wall clock is earlier (values with an offset are stored as UTC).
 * - Timestamps without an offset mean UTC everywhere: in the checkpoint's comparisons, in the lookback
 *   sent back as `since=`, and in Postgres (Ferry's sessions run with TimeZone=UTC), whatever the
 *   process's TZ and the database's own time zone.
 * - A record Postgres refuses at write time (`9999-02-30`) is quarantined and its cursor does not move
 *   the checkpoint: the next run still loads new records. Both stores, asc and unsorted, the COPY
 *   first load (on a server) and the upsert.
 */
import { appendFileSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { Duration, Effect, Either, Redacted } from "effect"
import * as Database from "../src/postgres/Database.js"
import * as Cursor from "../src/domain/Cursor.js"
import { convert } from "../src/domain/RowDecoder.js"
import { ferry, streamConfig, summaries } from "./support/cli.js"
import { closedAfterAll, json, startServer, type TestServer } from "./support/http.js"
import { embeddedDataDir, fileDatabase, serverOnly } from "./support/pg.js"

const db = fileDatabase()
const servers = closedAfterAll<TestServer>()

interface Item {
  id: string
  name: string
  updated_at: string
}

/** an instant: a timestamp without an offset is UTC (the rule under test) */
const instant = (text: string): number =>
  Date.parse(/(?:Z|[+-]\d{2}:?\d{2})$/i.test(text) || /^\d{4}-\d{2}-\d{2}$/.test(text) ? text : `${text}Z`)

/** `{ data }` pages of 3 with a Link header, `since` an inclusive filter, sorted by instant then id */
const startItems = async (items: Array<Item>) => {
  const sinces: Array<string | null> = []
  const server = await startServer((_req, res, url) => {
    const since = url.searchParams.get("since")
    const at = Number(url.searchParams.get("at") ?? 0)
    if (at === 0) sinces.push(since)
    const all = items
      .filter((r) => since === null || instant(r.updated_at) >= instant(since))
      .sort((x, y) => instant(x.updated_at) - instant(y.updated_at) || x.id.localeCompare(y.id))
    const next = new URL(url)
    next.searchParams.set("at", String(at + 3))
    json(res, { data: all.slice(at, at + 3) }, 200, at + 3 < all.length ? { link: `<${next.pathname}${next.search}>; rel="next"` } : {})
  })
  servers.push(server)
  return { ...server, items, sinces }
}

const stateCursor = async (stream: string) =>
  (await db.query<{ cursor: string }>(`SELECT cursor FROM ferry.state WHERE stream = $1`, [stream]))[0]?.cursor

const run = (dir: string, env: Record<string, string> = {}) => ferry(["run"], { cwd: dir, env: { DATABASE_URL: db.url, ...env } })

const summaryOf = (result: Awaited<ReturnType<typeof run>>) => {
  const [summary] = summaries(result)
  expect(summary!.fetched).toBe(
    summary!.inserted + summary!.updated + summary!.unchanged + summary!.quarantined + summary!.already_quarantined
  )
  return summary!
}

describe("a timestamp (without time zone) column stores the UTC wall clock", () => {
  it("converts a value with an offset to UTC, keeps the fraction, leaves UTC, offset-less values and impossible dates alone", () => {
    const cases: ReadonlyArray<readonly [string, string]> = [
      ["2024-10-27T02:10:00+01:00", "2024-10-27T01:10:00Z"],
      ["2024-10-27T02:30:00.123456+02:00", "2024-10-27T00:30:00.123456Z"],
      ["2024-10-27 02:30+0530", "2024-10-26T21:00:00Z"],
      ["2024-12-31T23:30:00-01:00", "2025-01-01T00:30:00Z"],
      ["2024-02-29T00:30:00+01:00", "2024-02-28T23:30:00Z"],
      ["2024-10-27T02:30:00", "2024-10-27T02:30:00"],
      ["2024-10-27", "2024-10-27"],
      ["2024-10-27T02:30:00.5Z", "2024-10-27T02:30:00.5Z"],
      // Postgres refuses it (quarantined at write time), rather than Date's March 1st
      ["2023-02-29T00:30:00+01:00", "2023-02-29T00:30:00+01:00"]
    ]
    for (const [value, stored] of cases) expect(convert("timestamp", value)).toEqual(Either.right(stored))
    // a timestamptz column keeps the text: Postgres keeps the instant
    expect(convert("timestamptz", "2024-10-27T02:10:00+01:00")).toEqual(Either.right("2024-10-27T02:10:00+01:00"))
  })
})

describe("Cursor: a timestamp without an offset is UTC", () => {
  it("compares, picks the greatest and subtracts the lookback as UTC, whatever the process's zone", () => {
    expect(Cursor.instantOf("2024-03-31T02:30:00")).toBe(Date.parse("2024-03-31T02:30:00Z"))
    expect(Cursor.instantOf("2024-03-31 02:30")).toBe(Date.parse("2024-03-31T02:30:00Z"))
    expect(Cursor.instantOf("2024-03-31")).toBe(Date.parse("2024-03-31T00:00:00Z"))
    expect(Cursor.compare("timestamp")("2024-03-31T02:30:00", "2024-03-31T02:00:00Z")).toBe(1)
    expect(Cursor.compare("timestamp")("2024-03-31T02:30:00", "2024-03-31T04:00:00+01:00")).toBe(-1)
    expect(Cursor.greatest("timestamp", "2024-03-31T02:30:00Z", ["2024-03-31T03:00:00", "2024-03-31T04:00:00+02:00"]))
      .toBe("2024-03-31T03:00:00")
    expect(Cursor.minusLookback("timestamp", "2024-03-31T02:30:00", Duration.minutes(5))).toBe("2024-03-31T02:25:00.000Z")
    expect(Cursor.minusLookback("timestamp", "2024-03-31", Duration.minutes(5))).toBe("2024-03-30T23:55:00.000Z")
  })
})

describe("a timestamp (without time zone) cursor column", () => {
  it("across a DST change the newer version wins, though its wall clock is earlier, and is reported updated", async () => {
    // Europe/Berlin, 2024-10-27: 02:30+02:00 (00:30 UTC) comes before 02:10+01:00 (01:10 UTC)
    const api = await startItems([{ id: "a", name: "v1", updated_at: "2024-10-27T02:30:00+02:00" }])
    const dir = streamConfig({
      name: "dst_wall",
      url: `${api.url}/items`,
      columns: "{ id: text, name: text, updated_at: timestamp }",
      incremental: `{ cursorField: updated_at, param: since, initial: "2024-01-01T00:00:00Z", order: asc }`
    })
    const first = await run(dir)
    expect(first.code).toBe(0)
    expect(summaryOf(first)).toMatchObject({ inserted: 1 })

    api.items[0] = { id: "a", name: "v2", updated_at: "2024-10-27T02:10:00+01:00" }
    const second = await run(dir)
    expect(second.code).toBe(0)
    expect(summaryOf(second)).toMatchObject({ fetched: 1, updated: 1, unchanged: 0 })
    const rows = await db.query(`SELECT id, name, updated_at::text AS updated_at FROM dst_wall`)
    // the wall clock stored is UTC's, so it orders as the instants do
    expect(rows).toEqual([{ id: "a", name: "v2", updated_at: "2024-10-27 01:10:00" }])
    expect(Date.parse((await stateCursor("dst_wall"))!)).toBe(Date.parse("2024-10-27T01:10:00Z"))
  })
})

describe("Ferry's sessions run in UTC", () => {
  it.skipIf(serverOnly)("whatever the database's zone, and after a URL's own options (which pg lets replace Ferry's)", async () => {
    await db.query(`ALTER DATABASE "${db.name}" SET timezone = 'Asia/Kolkata'`)
    const url = new URL(db.url)
    url.searchParams.set("options", "-c search_path=ferry_x")
    const rows = await Effect.runPromise(
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql.unsafe(`SELECT current_setting('TimeZone') AS tz, current_setting('search_path') AS path`)).pipe(
          Effect.provide(Database.layer({ url: Redacted.make(url.toString()) }))
        )
    )
    expect(rows).toEqual([{ tz: "UTC", path: "ferry_x" }])
  })
})

/**
 * The database a TZ case writes to, its own time zone set to `zone`: on a server, the test database
 * (ALTER DATABASE ... SET timezone); without one, Ferry's real embedded path (database url empty) on a
 * data directory whose postgresql.conf sets the zone (PGlite ignores ALTER DATABASE ... SET).
 */
const zonedDatabase = async (zone: string): Promise<{
  env: Record<string, string>
  query: (text: string, params?: ReadonlyArray<unknown>) => Promise<Array<any>>
}> => {
  if (!db.embedded) {
    await db.query(`ALTER DATABASE "${db.name}" SET timezone = '${zone}'`)
    return { env: { DATABASE_URL: db.url }, query: db.query }
  }
  return embeddedDataDir("ferry-tz-", (dataDir) =>
    appendFileSync(join(dataDir, "postgresql.conf"), `\ntimezone = '${zone}'\n`))
}

describe("timestamps without an offset mean UTC, whatever the process's TZ and the database's zone", () => {
  for (const tz of ["America/New_York", "Asia/Kolkata"]) {
    it(`TZ=${tz}, the database in another zone: no record skipped, stored as UTC, since= the checkpoint less the lookback in UTC`, async () => {
      const table = `naive_${tz.replace(/\W/g, "_").toLowerCase()}`
      // the database's own zone differs from the process's and from UTC
      const target = await zonedDatabase(tz === "Asia/Kolkata" ? "America/Los_Angeles" : "Asia/Kolkata")
      const api = await startItems([
        { id: "a", name: "v1", updated_at: "2024-03-31T02:30:00" },
        { id: "b", name: "v1", updated_at: "2024-03-31T02:40:00" }
      ])
      const dir = streamConfig({
        name: table,
        url: `${api.url}/items`,
        columns: "{ id: text, name: text, updated_at: timestamptz, wall: { type: timestamp, from: updated_at } }",
        incremental: `{ cursorField: updated_at, param: since, initial: "2024-03-01T00:00:00", lookback: 5 minutes, order: unsorted }`
      })
      const env = { ...target.env, TZ: tz }
      const first = await run(dir, env)
      expect(first.code).toBe(0)
      expect(summaryOf(first)).toMatchObject({ inserted: 2 })
      expect(api.sinces[0]).toBe("2024-02-29T23:55:00.000Z")
      expect(summaries(first)[0]!.checkpoint).toBe("2024-03-31T02:40:00")

      // one hour later in UTC: after the checkpoint, though before it if it were read in the process's zone
      api.items.push({ id: "c", name: "v1", updated_at: "2024-03-31T03:40:00" })
      api.items[0] = { id: "a", name: "v2", updated_at: "2024-03-31T02:45:00" }
      const second = await run(dir, env)
      expect(second.code).toBe(0)
      expect(api.sinces[1]).toBe("2024-03-31T02:35:00.000Z")
      expect(summaryOf(second)).toMatchObject({ inserted: 1, updated: 1, unchanged: 1 })
      expect(summaries(second)[0]!.checkpoint).toBe("2024-03-31T03:40:00")

      // one query (on the embedded database, each one opens the data directory)
      const rows = await target.query(
        `SELECT id, name, to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') AS utc, wall::text AS wall,
           (SELECT cursor FROM ferry.state WHERE stream = $1) AS checkpoint
         FROM ${table} ORDER BY id`,
        [table]
      )
      expect(rows.map((r) => r.checkpoint)).toEqual(Array(3).fill("2024-03-31T03:40:00"))
      expect(rows.map(({ checkpoint: _, ...r }) => r)).toEqual([
        { id: "a", name: "v2", utc: "2024-03-31T02:45:00", wall: "2024-03-31 02:45:00" },
        { id: "b", name: "v1", utc: "2024-03-31T02:40:00", wall: "2024-03-31 02:40:00" },
        { id: "c", name: "v1", utc: "2024-03-31T03:40:00", wall: "2024-03-31 03:40:00" }
      ])
    })
  }
})

describe("a record Postgres refuses at write time does not move the checkpoint", () => {
  const good = (i: number): Item => ({
    id: `g${String(i).padStart(3, "0")}`,
    name: `good ${i}`,
    updated_at: new Date(Date.UTC(2024, 0, 1) + i * 60_000).toISOString()
  })
  for (const store of ["postgres", "file"] as const) {
    for (const order of ["asc", "unsorted"] as const) {
      it(`${store} store, order ${order}: the refused row is quarantined, the checkpoint is the greatest accepted cursor, the next run loads new records`, async () => {
        const table = `refused_${store}_${order}`
        // 9999-02-30: the decoder's fast path lets it through, Postgres refuses it (in COPY and in the upsert)
        const api = await startItems([
          ...Array.from({ length: 8 }, (_, i) => good(i)),
          { id: "bad1", name: "refused", updated_at: "9999-02-30T00:00:00Z" }
        ])
        const dir = streamConfig({
          name: table,
          url: `${api.url}/items`,
          columns: "{ id: text, name: text, updated_at: timestamptz }",
          incremental: `{ cursorField: updated_at, param: since, initial: "2000-01-01T00:00:00Z", order: ${order} }`,
          checkpoint: store === "file" ? "{ store: file, path: ./checkpoints.json }" : undefined,
          maxInvalid: 10
        })
        const checkpoint = async () =>
          store === "postgres"
            ? await stateCursor(table)
            : JSON.parse(readFileSync(join(dir, "checkpoints.json"), "utf8")).streams[table]?.[`public.${table}`]?.cursor

        // a first load: COPY on a server (refused, then the upsert isolates the row), the upsert on PGlite
        const first = await run(dir)
        expect(first.code).toBe(0)
        expect(summaryOf(first)).toMatchObject({ inserted: 8, quarantined: 1, checkpoint: good(7).updated_at })
        expect(await checkpoint()).toBe(good(7).updated_at)
        const quarantined = await db.query(`SELECT reason FROM ferry.quarantine WHERE stream = $1`, [table])
        expect(quarantined).toHaveLength(1)
        expect(quarantined[0]!.reason).toMatch(/out of range/)

        // new records, and another refused one, through the upsert
        api.items.push(good(8), good(9), { id: "bad2", name: "refused", updated_at: "9999-04-31T00:00:00Z" })
        const second = await run(dir)
        expect(second.code).toBe(0)
        expect(api.sinces[1]).toBe(good(7).updated_at)
        // the first refused row is read again (its cursor is past the checkpoint) and counted as already quarantined
        expect(summaryOf(second)).toMatchObject({
          inserted: 2,
          quarantined: 1,
          already_quarantined: 1,
          checkpoint: good(9).updated_at
        })
        expect(await checkpoint()).toBe(good(9).updated_at)
        const ids = await db.query<{ id: string }>(`SELECT id FROM ${table} ORDER BY id`)
        expect(ids.map((r) => r.id)).toEqual(Array.from({ length: 10 }, (_, i) => good(i).id))
        const [run2] = await db.query(`SELECT checkpoint FROM ferry.runs WHERE stream = $1 ORDER BY finished_at DESC LIMIT 1`, [table])
        expect(run2!.checkpoint).toBe(good(9).updated_at)
      })
    }
  }
})

describe("an unsorted stream's final checkpoint commits with its last batch", () => {
  // the checkpoint of a stream that is not `order: asc` moves only once its read is complete; when the read
  // ends within a batch, that batch's transaction carries it (a child stream paid a second commit per parent
  // row). The file store saves after the commit, as it always has: only the postgres store shows it.
  const item = (i: number): Item => ({
    id: `i${String(i).padStart(3, "0")}`,
    name: `item ${i}`,
    updated_at: new Date(Date.UTC(2024, 0, 1) + i * 60_000).toISOString()
  })
  it("killed right after the one batch's commit, the rows and the checkpoint are both there", async () => {
    const table = "final_with_batch"
    const api = await startItems(Array.from({ length: 8 }, (_, i) => item(i)))
    const dir = streamConfig({
      name: table,
      url: `${api.url}/items`,
      columns: "{ id: text, name: text, updated_at: timestamptz }",
      incremental: `{ cursorField: updated_at, param: since, initial: "2000-01-01T00:00:00Z", order: unsorted }`
    })
    // three pages, one batch: SIGKILL at the first pass after a batch's commit
    const killed = await run(dir, { FERRY_FAILPOINT: "after-commit:1:SIGKILL" })
    expect(killed.signal ?? killed.code, killed.stderr).toBe("SIGKILL")
    expect((await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`))[0]!.n).toBe(8)
    expect(await stateCursor(table)).toBe(item(7).updated_at)
    // and the next run starts from it
    const next = await run(dir)
    expect(next.code).toBe(0)
    expect(api.sinces.at(-1)).toBe(item(7).updated_at)
    expect(summaryOf(next)).toMatchObject({ inserted: 0, checkpoint: item(7).updated_at })
  })
})
