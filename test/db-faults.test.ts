/**
 * Database faults, through the real bin: the server kills Ferry's sessions mid-run, a statement
 * runs past statement_timeout, a concurrent writer takes a unique value first. Each exits 74 with a
 * one-line message (no stack, no password), leaves the checkpoint consistent with the committed
 * rows, and the next run (fault removed) converges to the source.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type Api, makeRecords, startApi } from "./support/api.js"
import { type CliResult, ferry, start, streamConfig, summaries } from "./support/cli.js"
import { createTestDatabase, serverOnly, type TestDatabase } from "./support/pg.js"
import { expectNoSecrets, ferryTablesText, withPassword } from "./support/secrets.js"

const TOKEN = "dbfault-bearer-Hn43sV"
const DB_PASSWORD = "dbfault-pw-Tq92xL"
const TOTAL = 84
/**
 * Per page, for the runs that must be caught in the middle: Sync commits a batch of pages about once a
 * second (src/sync/Batches.ts batchLimits), so 12 pages at this pace commit a few times.
 */
const SLOW_PAGE_MS = 250

let db: TestDatabase
let api: Api

beforeAll(async () => {
  db = await createTestDatabase()
  // 84 records, 7 per page: 12 pages
  api = await startApi(makeRecords(TOTAL), { auth: { type: "bearer", token: TOKEN }, pageSize: 7 })
})
afterAll(async () => {
  await api?.close()
  await db?.drop()
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** `urlExtra` is appended to the database URL's query (e.g. `options=-c statement_timeout=100`) */
const setup = (table: string, urlExtra = "") => {
  const dir = streamConfig({ url: `${api.url}/link`, name: table, auth: `{ type: bearer, token: "\${API_TOKEN}" }` })
  const url = withPassword(db.url, DB_PASSWORD)
  const env = (extra: string) => ({
    DATABASE_URL: extra === "" ? url : `${url}${url.includes("?") ? "&" : "?"}${extra}`,
    API_TOKEN: TOKEN
  })
  return {
    start: () => start(["run"], { cwd: dir, env: env(urlExtra) }),
    run: () => ferry(["run"], { cwd: dir, env: env(urlExtra) }),
    /** the same stream without the URL's fault */
    clean: () => ferry(["run"], { cwd: dir, env: env("") })
  }
}

const createTarget = (table: string) =>
  db.query(`CREATE TABLE ${table} (id text PRIMARY KEY, name text, amount numeric, updated_at timestamptz)`)

const waitFor = async (what: () => Promise<boolean>, ms = 10_000) => {
  const began = Date.now()
  while (!(await what())) {
    if (Date.now() - began > ms) throw new Error("waited too long")
    await sleep(20)
  }
}

const checkpointOf = async (stream: string): Promise<string | undefined> => {
  const [present] = await db.query(`SELECT to_regclass('ferry.state') IS NOT NULL AS p`)
  if (!present.p) return undefined
  const rows = await db.query<{ cursor: string | null }>(`SELECT cursor FROM ferry.state WHERE stream = $1`, [stream])
  return rows[0]?.cursor ?? undefined
}

/** Every source record before the checkpoint is in the table, and the checkpoint is no later than the rows written. */
const expectConsistent = async (table: string, foreign: ReadonlyArray<string> = []) => {
  const rows = (await db.query<{ id: string; updated_at: Date }>(`SELECT id, updated_at FROM ${table}`))
    .filter((r) => !foreign.includes(r.id))
  const checkpoint = await checkpointOf(table)
  if (checkpoint === undefined) return rows.length
  expect(Date.parse(checkpoint)).toBe(Math.max(...rows.map((r) => r.updated_at.getTime())))
  const ids = new Set(rows.map((r) => r.id))
  expect(api.records.filter((r) => Date.parse(r.updated_at) < Date.parse(checkpoint) && !ids.has(r.id))).toEqual([])
  return rows.length
}

const expectConverged = async (table: string) => {
  const rows = await db.query(`SELECT id, name, amount::float8 AS amount, updated_at FROM ${table} ORDER BY id`)
  expect(rows.map((r) => ({ ...r, updated_at: r.updated_at.toISOString() }))).toEqual(
    api.records.map(({ amount, id, name, updated_at }) => ({ id, name, amount: Number(amount), updated_at }))
  )
  expect(await checkpointOf(table)).toBe(api.records.at(-1)!.updated_at)
}

/** exit 74, one line saying what failed, no stack trace, no password */
const expectDatabaseFailure = (result: CliResult, says: RegExp) => {
  expect(result.code).toBe(74)
  expect(result.stderr).not.toMatch(/\n\s+at /)
  expect(result.stderr).not.toContain("Error:")
  const errors = result.logs.filter((l) => l.level === "error")
  expect(errors.length).toBeGreaterThanOrEqual(1)
  const summary = summaries(result)[0]
  const message: string = summary?.error ?? errors[0]!.msg
  expect(message).toMatch(says)
  expect(message).not.toContain("\n")
  // every line of stderr is a JSON log line
  for (const line of result.stderr.split("\n").filter((l) => l !== "")) expect(line.startsWith("{")).toBe(true)
}

const noSecrets = async (...results: Array<CliResult>) =>
  expectNoSecrets([...results.flatMap((r) => [r.stdout, r.stderr]), ...(await ferryTablesText(db))], [TOKEN, DB_PASSWORD])

describe("database faults", () => {
  // The lease, not the lock's session, says whether a run may write (test/lease.test.ts): sessions killed
  // while idle are replaced by the pool and the run goes on under its lease (same epoch); a statement the
  // kill cuts is a 74. Either way what is committed is consistent, and the next run converges.
  it.skipIf(serverOnly)("the database kills Ferry's sessions mid-run: the run goes on under its lease (or 74 for a statement cut), consistent checkpoint, the next run converges", async () => {
    const table = "gone_items"
    const s = setup(table)
    api.delayMs = SLOW_PAGE_MS
    let result: CliResult
    try {
      const running = s.start()
      // once a page is committed (the checkpoint exists), kill every session of this Ferry process
      await waitFor(async () => (await checkpointOf(table)) !== undefined)
      const killed = await db.query(
        `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name LIKE 'ferry %' AND datname = $1`,
        [db.name]
      )
      expect(killed.length).toBeGreaterThan(0)
      result = await running.done
    } finally {
      api.delayMs = 0
    }
    if (result.code === 0) {
      expect(summaries(result)[0]).toMatchObject({ status: "succeeded", fetched: TOTAL })
      // nobody took the stream over: the lease kept its epoch, renewed through new sessions
      expect(await db.query(`SELECT epoch::int AS epoch FROM ferry.leases WHERE stream = $1`, [table])).toEqual([{ epoch: 1 }])
      await expectConverged(table)
    } else {
      expectDatabaseFailure(result, /terminating connection|Connection terminated/)
      expect(await expectConsistent(table)).toBeGreaterThan(0)
    }
    const again = await s.clean()
    expect(again.code).toBe(0)
    await expectConverged(table)
    await noSecrets(result, again)
  })

  it.skipIf(serverOnly)("a statement past statement_timeout (URL options): exit 74 naming the statement; the checkpoint stays before the failing row", async () => {
    const table = "slow_items"
    await createTarget(table)
    // the row r00020 (page 3) takes 300 ms to insert; the URL allows 100 ms per statement
    // (pages are not slowed: they arrive in one batch, so nothing is committed before the failure)
    await db.query(`CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.id = 'r00020' THEN PERFORM pg_sleep(0.3); END IF; RETURN NEW; END $$`)
    await db.query(`CREATE TRIGGER slow BEFORE INSERT ON ${table} FOR EACH ROW EXECUTE FUNCTION slow_row()`)
    const s = setup(table, `options=${encodeURIComponent("-c statement_timeout=100")}`)
    const result = await s.run()
    expectDatabaseFailure(result, new RegExp(`writing \\d+ row\\(s\\) to public\\.${table}: canceling statement due to statement timeout \\(SQLSTATE 57014\\)`))
    await expectConsistent(table)
    const [{ n }] = await db.query(`SELECT count(*)::int AS n FROM ${table} WHERE id >= 'r00020'`)
    expect(n).toBe(0)
    const checkpoint = await checkpointOf(table)
    if (checkpoint !== undefined) expect(Date.parse(checkpoint)).toBeLessThan(Date.parse(api.records[20]!.updated_at))
    const [run] = await db.query(`SELECT status, exit_code FROM ferry.runs WHERE stream = $1`, [table])
    expect(run).toEqual({ status: "failed", exit_code: 74 })

    await db.query(`DROP TRIGGER slow ON ${table}`)
    const again = await s.clean()
    expect(again.code).toBe(0)
    await expectConverged(table)
    await noSecrets(result, again)
  })

  it("a unique value taken first by a concurrent writer: exit 74 naming the constraint; the next run converges", async () => {
    const table = "unique_items"
    await createTarget(table)
    await db.query(`CREATE UNIQUE INDEX unique_items_name ON ${table} (name)`)
    const s = setup(table)
    api.delayMs = SLOW_PAGE_MS
    let result: CliResult
    try {
      const running = s.start()
      await waitFor(async () => (await checkpointOf(table)) !== undefined)
      // once Ferry has committed its first batch, another writer takes the name of record 80 (page 12)
      await db.query(`INSERT INTO ${table} VALUES ('other-writer', 'record 80', 0, now())`)
      result = await running.done
    } finally {
      api.delayMs = 0
    }
    expectDatabaseFailure(result, /unique_items_name.*\(SQLSTATE 23505\)/)
    const written = await expectConsistent(table, ["other-writer"])
    expect(written).toBeGreaterThan(0)
    expect(written).toBeLessThan(TOTAL)
    // the summary counts what was committed; the batch that failed is not counted as written
    expect(summaries(result)[0]).toMatchObject({ status: "failed", inserted: written, exit_code: 74 })

    await db.query(`DELETE FROM ${table} WHERE id = 'other-writer'`)
    const again = await s.clean()
    expect(again.code).toBe(0)
    await expectConverged(table)
    await noSecrets(result, again)
  })
})
