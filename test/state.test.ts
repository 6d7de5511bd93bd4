/**
 * Issue 10, items 3 and 11, through the bin as cron runs it: a checkpoint belongs to a stream AND its
 * target table (two configs with a stream named `orders` on one database are independent in
 * ferry.state, the lock, reset and status); a checkpoint never applies to a table it did not fill; a
 * database from before Ferry's tables were migrated keeps its checkpoints; migrations run once, also
 * when processes start together; a record quarantined before is counted once (already_quarantined).
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type Api, makeRecords, startApi } from "./support/api.js"
import { ferry, start, streamConfig, summaries } from "./support/cli.js"
import { createTestDatabase, serverOnly, type TestDatabase } from "./support/pg.js"

let db: TestDatabase
let api: Api
const RECORDS = 40
const lastCursor = () => api.records.at(-1)!.updated_at
/** what an incremental run re-reads: the records at the checkpoint's cursor */
const atLast = () => api.records.filter((r) => r.updated_at === lastCursor()).length

beforeAll(async () => {
  db = await createTestDatabase("ferry_state")
  api = await startApi(makeRecords(RECORDS))
})
afterAll(async () => {
  await api?.close()
  await db?.drop()
})

const env = () => ({ DATABASE_URL: db.url })

/** a config in its own directory: stream `name` into `schema.table` */
const config = (o: { name: string; table: string; schema?: string; extra?: string; url?: string }) =>
  streamConfig({
    url: o.url ?? `${api.url}/link`,
    name: o.name,
    table: o.table,
    database: `database: { url: "\${DATABASE_URL}"${o.schema === undefined ? "" : `, schema: ${o.schema}`} }`,
    extra: o.extra
  })

const run = async (dir: string, args: ReadonlyArray<string> = []) => {
  const result = await ferry(["run", ...args], { cwd: dir, env: env() })
  const [summary] = summaries(result)
  if (summary !== undefined) {
    expect(summary.fetched).toBe(
      summary.inserted + summary.updated + summary.unchanged + summary.quarantined + (summary.already_quarantined ?? 0)
    )
  }
  return { ...result, summary: summary! }
}

const status = async (dir: string) => {
  const result = await ferry(["status", "--json"], { cwd: dir, env: env() })
  expect(result.code, result.stderr).toBe(0)
  return JSON.parse(result.stdout).streams[0] as Record<string, any>
}

const count = async (table: string) => (await db.query(`SELECT count(*)::int AS n FROM ${table}`))[0]!.n as number

describe("a checkpoint belongs to a stream and its target table", () => {
  it("two configs with a stream named orders into two tables in two schemas: each loads its full data; reset and status of one do not touch the other", async () => {
    await db.query(`CREATE SCHEMA IF NOT EXISTS sales`)
    const a = config({ name: "orders", table: "orders" })
    const b = config({ name: "orders", table: "orders", schema: "sales" })
    const first = await run(a)
    expect(first.code, first.stderr).toBe(0)
    expect(first.summary).toMatchObject({ fetched: RECORDS, inserted: RECORDS })
    const second = await run(b)
    expect(second.code, second.stderr).toBe(0)
    // before: B read from A's checkpoint and loaded 1 of 40, exit 0
    expect(second.summary).toMatchObject({ fetched: RECORDS, inserted: RECORDS })
    expect(await count("public.orders")).toBe(RECORDS)
    expect(await count("sales.orders")).toBe(RECORDS)
    expect(await db.query(`SELECT stream, target, cursor FROM ferry.state WHERE stream = 'orders' ORDER BY target`)).toEqual([
      { stream: "orders", target: "public.orders", cursor: lastCursor() },
      { stream: "orders", target: "sales.orders", cursor: lastCursor() }
    ])

    // status of each names its own last run
    const statusA = await status(a)
    const statusB = await status(b)
    expect(statusA).toMatchObject({ target: "public.orders", last_run: first.summary.run_id, checkpoint: lastCursor() })
    expect(statusB).toMatchObject({ target: "sales.orders", last_run: second.summary.run_id, checkpoint: lastCursor() })

    // reset A: A starts again from `initial`, B stays incremental
    const reset = await ferry(["reset", "--stream", "orders"], { cwd: a, env: env() })
    expect(reset.code, reset.stderr).toBe(0)
    expect((await status(a)).checkpoint).toBeNull()
    expect((await status(b)).checkpoint).toBe(lastCursor())
    const againA = await run(a)
    expect(againA.summary).toMatchObject({ fetched: RECORDS, unchanged: RECORDS })
    const againB = await run(b)
    expect(againB.summary).toMatchObject({ fetched: atLast(), unchanged: atLast() })
    // status of B shows B's run, not A's later one
    expect((await status(b)).last_run).toBe(againB.summary.run_id)
  })

  it.skipIf(serverOnly)("both configs can run at the same time: the lock is per target", async () => {
    await db.query(`CREATE SCHEMA IF NOT EXISTS east`)
    await db.query(`CREATE SCHEMA IF NOT EXISTS west`)
    const a = config({ name: "orders", table: "orders", schema: "east" })
    const b = config({ name: "orders", table: "orders", schema: "west" })
    api.delayMs = 100
    try {
      const runA = start(["run"], { cwd: a, env: env() })
      const runB = start(["run"], { cwd: b, env: env() })
      const [resultA, resultB] = await Promise.all([runA.done, runB.done])
      // before: one of them exited 75, the lock being the stream name's
      expect(resultA.code, resultA.stderr).toBe(0)
      expect(resultB.code, resultB.stderr).toBe(0)
    } finally {
      api.delayMs = 0
    }
    expect(await count("east.orders")).toBe(RECORDS)
    expect(await count("west.orders")).toBe(RECORDS)
  })

  it("a renamed target.table with an old checkpoint starts from initial and logs why; so does a table emptied by hand", async () => {
    const dir = config({ name: "renamed", table: "renamed_v1" })
    expect((await run(dir)).code).toBe(0)
    const file = join(dir, "ferry.config.yaml")
    const rename = (from: string, to: string) => writeFileSync(file, readFileSync(file, "utf8").replace(`table: ${from}`, `table: ${to}`))

    // the same stream into a new table, as a user renames target.table: no checkpoint of its own
    rename("renamed_v1", "renamed_v2")
    const moved = await run(dir)
    expect(moved.code, moved.stderr).toBe(0)
    // before: it read from renamed_v1's checkpoint and loaded 1 of 40 into the new table
    expect(moved.summary).toMatchObject({ fetched: RECORDS, inserted: RECORDS })
    expect(moved.logs.find((l) => l.msg === "run.start")).toMatchObject({ checkpoint: null })

    // a checkpoint from before the upgrade (keyed by the stream alone), and the table renamed again
    await db.query(`DELETE FROM ferry.state WHERE stream = 'renamed' AND target <> 'public.renamed_v1'`)
    await db.query(`UPDATE ferry.state SET target = '' WHERE stream = 'renamed'`)
    rename("renamed_v2", "renamed_v3")
    const created = await run(dir)
    expect(created.code, created.stderr).toBe(0)
    expect(created.summary).toMatchObject({ fetched: RECORDS, inserted: RECORDS })
    const ignoredNew = created.logs.find((l) => l.msg === "checkpoint.ignored")
    expect(ignoredNew).toMatchObject({ level: "warn", target: "public.renamed_v3", checkpoint: lastCursor(), legacy: true })
    expect(ignoredNew!.reason).toContain("table public.renamed_v3 was created by this run")

    // an emptied table with its own checkpoint: ignored, with the reason
    await db.query(`TRUNCATE renamed_v3`)
    const emptied = await run(dir)
    expect(emptied.code, emptied.stderr).toBe(0)
    expect(emptied.summary).toMatchObject({ fetched: RECORDS, inserted: RECORDS })
    const ignored = emptied.logs.find((l) => l.msg === "checkpoint.ignored")
    expect(ignored).toMatchObject({ level: "warn", target: "public.renamed_v3", checkpoint: lastCursor(), legacy: false })
    expect(ignored!.reason).toContain("table public.renamed_v3 is empty")
    // and the next run is incremental again
    expect((await run(dir)).summary).toMatchObject({ fetched: atLast(), unchanged: atLast() })
  })

  it("a database from before the migrations keeps its checkpoint: nothing re-syncs; a new target of the same stream name ignores it", async () => {
    const legacyDb = await createTestDatabase("ferry_state_legacy")
    const legacyEnv = { DATABASE_URL: legacyDb.url }
    try {
      const a = config({ name: "legacy_orders", table: "legacy_orders" })
      expect((await ferry(["run"], { cwd: a, env: legacyEnv })).code).toBe(0)
      // Ferry's tables as the previous release made them, holding that run's checkpoint
      await legacyDb.query(`DROP SCHEMA ferry CASCADE`)
      await legacyDb.query(`CREATE SCHEMA ferry`)
      await legacyDb.query(`CREATE TABLE ferry.state (stream text PRIMARY KEY, cursor text, updated_at timestamptz NOT NULL DEFAULT now())`)
      await legacyDb.query(`CREATE TABLE ferry.runs (run_id text NOT NULL, stream text NOT NULL, status text NOT NULL,
        started_at timestamptz, finished_at timestamptz, pages bigint, fetched bigint, inserted bigint, updated bigint,
        unchanged bigint, quarantined bigint, retries bigint, checkpoint text, error text, exit_code int,
        PRIMARY KEY (run_id, stream))`)
      await legacyDb.query(`CREATE TABLE ferry.quarantine (id bigserial PRIMARY KEY, run_id text, stream text,
        received_at timestamptz NOT NULL DEFAULT now(), reason text, record text)`)
      await legacyDb.query(`INSERT INTO ferry.state (stream, cursor) VALUES ('legacy_orders', $1)`, [lastCursor()])
      await legacyDb.query(`INSERT INTO ferry.runs (run_id, stream, status, started_at, finished_at, fetched)
        VALUES ('old-run', 'legacy_orders', 'succeeded', now(), now(), 40)`)

      // status reads the old tables (it migrates nothing)
      const before = await ferry(["status", "--json"], { cwd: a, env: legacyEnv })
      expect(before.code, before.stderr).toBe(0)
      expect(JSON.parse(before.stdout).streams[0]).toMatchObject({ checkpoint: lastCursor(), last_run: "old-run" })

      // another config's stream of that name into a new table: the legacy checkpoint is not its own
      await legacyDb.query(`CREATE SCHEMA other`)
      const b = config({ name: "legacy_orders", table: "legacy_orders", schema: "other" })
      const fresh = await ferry(["run"], { cwd: b, env: legacyEnv })
      expect(fresh.code, fresh.stderr).toBe(0)
      expect(summaries(fresh)[0]).toMatchObject({ fetched: RECORDS, inserted: RECORDS })
      expect(fresh.logs.find((l) => l.msg === "checkpoint.ignored")).toMatchObject({ legacy: true, target: "other.legacy_orders" })

      // the table it filled adopts it: incremental, nothing re-synced
      const upgraded = await ferry(["run"], { cwd: a, env: legacyEnv })
      expect(upgraded.code, upgraded.stderr).toBe(0)
      expect(summaries(upgraded)[0]).toMatchObject({ fetched: atLast(), inserted: 0, updated: 0, unchanged: atLast() })
      expect(upgraded.logs.find((l) => l.msg === "checkpoint.adopted")).toMatchObject({ target: "public.legacy_orders" })
      expect(await legacyDb.query(`SELECT target, cursor FROM ferry.state ORDER BY target`)).toEqual([
        { target: "other.legacy_orders", cursor: lastCursor() },
        { target: "public.legacy_orders", cursor: lastCursor() }
      ])
      expect(await legacyDb.query(`SELECT migration_id FROM ferry.migrations ORDER BY 1`)).toEqual([
        { migration_id: 1 },
        { migration_id: 2 },
        { migration_id: 3 },
        { migration_id: 4 },
        { migration_id: 5 },
        { migration_id: 6 },
        { migration_id: 7 },
        { migration_id: 8 },
        { migration_id: 9 }
      ])
    } finally {
      await legacyDb.drop()
    }
  })

  // several real sessions: processes sharing the one session of the embedded test database interleave
  // their statements (the embedded path's own single flight is test/overlap.test.ts)
  it.skipIf(serverOnly)("migrations run once: processes started together on a new database all succeed", async () => {
    const fresh = await createTestDatabase("ferry_state_fresh")
    try {
      const dirs = [1, 2, 3, 4].map((i) => config({ name: `together_${i}`, table: `together_${i}` }))
      const results = await Promise.all(dirs.map((dir) => start(["run"], { cwd: dir, env: { DATABASE_URL: fresh.url } }).done))
      for (const result of results) {
        expect(result.code, result.stderr).toBe(0)
        expect(summaries(result)[0]).toMatchObject({ fetched: RECORDS, inserted: RECORDS })
      }
      expect(await fresh.query(`SELECT migration_id, name FROM ferry.migrations ORDER BY 1`)).toEqual([
        { migration_id: 1, name: "ferry_tables" },
        { migration_id: 2, name: "stream_targets" },
        { migration_id: 3, name: "quarantine_hash" },
        { migration_id: 4, name: "run_duration_abandoned" },
        { migration_id: 5, name: "fields" },
        { migration_id: 6, name: "run_deletes" },
        { migration_id: 7, name: "state_parent" },
        { migration_id: 8, name: "leases" },
        { migration_id: 9, name: "runs_slice" }
      ])
    } finally {
      await fresh.drop()
    }
  })
})

describe("a failing migration", () => {
  it("is a DatabaseError (74) naming the migration and Postgres' reason, one line, and leaves nothing half-done", async () => {
    const broken = await createTestDatabase("ferry_state_broken")
    try {
      // a ferry.state no release made: migration 2 cannot add its column
      await broken.query(`CREATE SCHEMA ferry`)
      await broken.query(`CREATE TABLE ferry.state (stream text PRIMARY KEY, cursor text, target text)`)
      const result = await ferry(["run"], { cwd: config({ name: "broken", table: "broken" }), env: { DATABASE_URL: broken.url } })
      expect(result.code).toBe(74)
      expect(summaries(result)[0]!.error).toMatch(
        /^migrating Ferry's tables in schema ferry \(Migration "2_stream_targets" failed\): column "target" of relation "state" already exists/
      )
      expect(result.stderr).not.toMatch(/\n\s+at /)
      // rolled back whole: no migration recorded, no table made
      expect(await broken.query(`SELECT to_regclass('ferry.migrations') AS m, to_regclass('ferry.runs') AS r`)).toEqual([{ m: null, r: null }])
    } finally {
      await broken.drop()
    }
  })
})

describe("a record quarantined before is counted once", () => {
  it("a persistently invalid record: the second and third runs exit 0 with maxInvalid 0, already_quarantined 1, one quarantine row", async () => {
    const records = makeRecords(10)
    // invalid, and at the last cursor: every run re-reads it
    records.push({ id: "bad", name: "bad", amount: "lots", updated_at: records.at(-1)!.updated_at })
    const invalidApi = await startApi(records)
    try {
      const dir = config({ name: "invalid_orders", table: "invalid_orders", url: `${invalidApi.url}/link`, extra: "    maxInvalid: 0" })
      const first = await run(dir)
      expect(first.code).toBe(65)
      expect(first.summary).toMatchObject({ quarantined: 1 })
      for (const _ of [2, 3]) {
        const again = await run(dir)
        // before: exit 65 on every run, one more quarantine row each time
        expect(again.code, again.stderr).toBe(0)
        expect(again.summary).toMatchObject({ status: "succeeded", quarantined: 0, already_quarantined: 1 })
        const [row] = await db.query(`SELECT quarantined::int, already_quarantined::int FROM ferry.runs WHERE run_id = $1`, [
          again.summary.run_id
        ])
        expect(row).toEqual({ quarantined: 0, already_quarantined: 1 })
      }
      expect(first.summary.already_quarantined).toBe(0)
      const quarantine = await db.query(`SELECT target, record FROM ferry.quarantine WHERE stream = 'invalid_orders'`)
      expect(quarantine).toHaveLength(1)
      expect(quarantine[0]).toMatchObject({ target: "public.invalid_orders" })
      expect(JSON.parse(quarantine[0]!.record)).toMatchObject({ id: "bad", amount: "lots" })
      expect(await status(dir)).toMatchObject({ quarantined: 0, already_quarantined: 1 })

      // the pretty summary says it too
      const pretty = await ferry(["run"], { cwd: dir, env: { ...env(), FERRY_LOG_FORMAT: "pretty" } })
      expect(pretty.code).toBe(0)
      expect(pretty.stderr).toContain("0 quarantined + 1 already quarantined")

      // the same record in another config's stream of that name (another table) is that stream's own
      const other = config({ name: "invalid_orders", table: "invalid_orders_2", url: `${invalidApi.url}/link`, extra: "    maxInvalid: 0" })
      const elsewhere = await run(other)
      expect(elsewhere.code).toBe(65)
      expect(elsewhere.summary).toMatchObject({ quarantined: 1, already_quarantined: 0 })
    } finally {
      await invalidApi.close()
    }
  })
})

describe("the file checkpoint store on the embedded database", () => {
  it("runs and resumes under the data directory's lock (what excludes there), keyed by target", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "ferry-state-pgdata-"))
    try {
      const dir = streamConfig({
        url: `${api.url}/link`,
        name: "embedded_orders",
        database: "",
        checkpoint: "{ store: file, path: ./checkpoints.json }"
      })
      const embeddedEnv = { FERRY_DATA_DIR: dataDir }
      const first = await ferry(["run"], { cwd: dir, env: embeddedEnv })
      expect(first.code, first.stderr).toBe(0)
      expect(summaries(first)[0]).toMatchObject({ fetched: RECORDS, inserted: RECORDS })
      const file = JSON.parse(readFileSync(join(dir, "checkpoints.json"), "utf8"))
      expect(file).toMatchObject({ version: 2, streams: { embedded_orders: { "public.embedded_orders": { cursor: lastCursor() } } } })
      const second = await ferry(["run"], { cwd: dir, env: embeddedEnv })
      expect(second.code, second.stderr).toBe(0)
      expect(summaries(second)[0]).toMatchObject({ fetched: atLast(), unchanged: atLast() })
    } finally {
      rmSync(dataDir, { recursive: true, force: true })
    }
  })
})
