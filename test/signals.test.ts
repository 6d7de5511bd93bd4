/**
 * Signals, through the bin, deeper than test/cli.test.ts's basic SIGTERM case.
 *
 * - A signal that lands while a transaction is open lets it commit, then the run stops: exit 143
 *   (SIGTERM) or 130 (SIGINT), `ferry.runs` says interrupted. To hold a transaction open on purpose,
 *   the target table (created beforehand; Ferry accepts a table that fits) has a statement trigger that
 *   sleeps, and counts the rows it saw in a sequence (sequences ignore rollbacks): the signal is sent
 *   while the trigger sleeps in the second (or later) write, when rows are written but not committed.
 *   After the exit, exactly the rows written by then are committed: the open transaction committed
 *   whole, and nothing was written after it.
 * - A second SIGTERM exits at once: the open transaction is rolled back whole (none of its rows).
 * - A signal between transactions (runs on the embedded database too).
 * After each: the checkpoint is consistent (`asc`, postgres store: it is the greatest committed cursor,
 * every source record below it is there, none above it), and the next run converges to the source.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import pg from "pg"
import { type CliResult, ferry, start, streamConfig, summaries } from "./support/cli.js"
import { createTestDatabase, serverOnly, type TestDatabase, usingServer } from "./support/pg.js"
import { startTruthApi, type TruthApi } from "./support/truth-api.js"

const COUNT = 3000
const PAGE = 100

let db: TestDatabase
let api: TruthApi
/** a session of our own that watches Ferry's (against a server) */
let observer: pg.Client | undefined
beforeAll(async () => {
  db = await createTestDatabase()
  api = await startTruthApi({ count: COUNT, order: "asc", pagination: "link", pageSize: PAGE, seed: 143 })
  if (usingServer) {
    observer = new pg.Client({ connectionString: db.url })
    await observer.connect()
  }
})
afterAll(async () => {
  await observer?.end()
  await api?.close()
  await db?.drop()
})

const config = (table: string, store: "postgres" | "file" = "postgres") =>
  streamConfig({
    url: `${api.url}/records`,
    name: table,
    checkpoint: store === "file" ? "{ store: file, path: ./checkpoints.json }" : "{ store: postgres }",
    columns: "{ id: text, name: text, amount: numeric, version: integer, updated_at: timestamptz }"
  })

const env = () => ({ DATABASE_URL: db.url })

const count = async (table: string): Promise<number> => (await db.query(`SELECT count(*)::int AS n FROM "${table}"`))[0].n

/** asc + postgres store: the checkpoint is the greatest committed cursor; every record below it is there, none above. */
const expectConsistent = async (table: string) => {
  const [state] = await db.query(`SELECT cursor FROM ferry.state WHERE stream = $1`, [table])
  const rows = await db.query(`SELECT id, version, updated_at FROM "${table}"`)
  if (rows.length === 0) {
    expect(state?.cursor ?? null).toBeNull()
    return
  }
  const checkpoint = Date.parse(state.cursor)
  const target = new Map(rows.map((r) => [r.id as string, r]))
  expect(Math.max(...rows.map((r) => (r.updated_at as Date).getTime()))).toBe(checkpoint)
  for (const [id, r] of api.truth()) {
    const at = Date.parse(r.updated_at)
    if (at < checkpoint) expect(target.get(id)?.version, `${id} below the checkpoint`).toBe(r.version)
    if (at > checkpoint) expect(target.has(id), `${id} above the checkpoint`).toBe(false)
  }
}

const expectConverges = async (table: string) => {
  const rerun = await ferry(["run"], { cwd: config(table), env: env() })
  expect(rerun.code, rerun.stderr).toBe(0)
  const rows = await db.query(`SELECT id, version FROM "${table}"`)
  expect(rows.length).toBe(COUNT)
  const truth = api.truth()
  expect(rows.filter((r) => truth.get(r.id)?.version !== r.version)).toEqual([])
  const [state] = await db.query(`SELECT cursor FROM ferry.state WHERE stream = $1`, [table])
  expect(state.cursor).toBe(api.maxCursor())
}

const lastRun = async (table: string) =>
  (await db.query(`SELECT status, exit_code FROM ferry.runs WHERE stream = $1 ORDER BY started_at DESC LIMIT 1`, [table]))[0]

/** The target, made beforehand with a trigger that sleeps in every write and counts the rows written. */
const slowTarget = async (table: string) => {
  await db.query(`CREATE TABLE "${table}" (id text PRIMARY KEY, name text, amount numeric, version integer, updated_at timestamptz)`)
  await db.query(`CREATE SEQUENCE "${table}_written" MINVALUE 0 START 0`)
  await db.query(`
    CREATE FUNCTION "${table}_slow"() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM setval('"${table}_written"', (SELECT last_value FROM "${table}_written") + (SELECT count(*) FROM new_rows));
      PERFORM pg_sleep(0.5);
      RETURN NULL;
    END $$`)
  await db.query(`
    CREATE TRIGGER slow AFTER INSERT ON "${table}" REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION "${table}_slow"()`)
}

const written = async (table: string): Promise<number> =>
  Number((await observer!.query(`SELECT last_value FROM "${table}_written"`)).rows[0].last_value)

/** Waits until a write after the first commit is sleeping in the trigger: rows written, not committed. */
const untilSecondWriteOpen = async (table: string, done: Promise<CliResult>) => {
  let over = false
  void done.then(() => (over = true))
  while (!over) {
    const { rows } = await observer!.query(
      `SELECT (SELECT count(*)::int FROM "${table}") AS committed,
              EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'PgSleep'
                      AND pid <> pg_backend_pid()) AS sleeping`
    )
    if (rows[0].sleeping && rows[0].committed > 0) return { committed: rows[0].committed as number, written: await written(table) }
    await new Promise((r) => setTimeout(r, 5))
  }
  throw new Error(`the run ended before its second write: ${(await done).stderr.slice(-2000)}`)
}

/** No session of the killed run is left (its backend finishes the sleep, sees the client gone, rolls back). */
const untilIdle = async () => {
  for (;;) {
    const { rows } = await observer!.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`
    )
    if (rows[0].n === 0) return
    await new Promise((r) => setTimeout(r, 20))
  }
}

describe("a signal while a transaction is open", () => {
  for (const [signal, code] of [["SIGTERM", 143], ["SIGINT", 130]] as const) {
    it.skipIf(serverOnly)(`${signal}: the open transaction commits whole, nothing is written after it, exit ${code}`, async () => {
      const table = `sig_${signal.toLowerCase()}`
      await slowTarget(table)
      api.delayMs = 100 // 30 pages: 3 s of fetching, so several transactions
      try {
        const running = start(["run"], { cwd: config(table), env: env() })
        const at = await untilSecondWriteOpen(table, running.done)
        expect(at.written).toBeGreaterThan(at.committed) // rows in flight
        running.child.kill(signal)
        const result = await running.done
        expect(result.code, result.stderr.slice(-2000)).toBe(code)
        // the open transaction committed whole; nothing was written after it; the run stopped early
        expect(await count(table)).toBe(at.written)
        expect(await written(table)).toBe(at.written)
        expect(at.written).toBeLessThan(COUNT)
        expect(summaries(result)[0]).toMatchObject({ status: "interrupted", exit_code: code, inserted: at.written })
        expect(await lastRun(table)).toEqual({ status: "interrupted", exit_code: code })
        await expectConsistent(table)
        // the summary reports the checkpoint that is stored
        const [state] = await db.query(`SELECT cursor FROM ferry.state WHERE stream = $1`, [table])
        expect(summaries(result)[0]!.checkpoint).toBe(state.cursor)
      } finally {
        api.delayMs = 0
      }
      await expectConverges(table)
    })
  }

  it.skipIf(serverOnly)("SIGTERM, file checkpoint store: the committed transaction's checkpoint is written before the exit", async () => {
    const table = "sig_file"
    await slowTarget(table)
    const dir = config(table, "file")
    api.delayMs = 100
    try {
      const running = start(["run"], { cwd: dir, env: env() })
      const at = await untilSecondWriteOpen(table, running.done)
      running.child.kill("SIGTERM")
      const result = await running.done
      expect(result.code, result.stderr.slice(-2000)).toBe(143)
      expect(await count(table)).toBe(at.written)
      expect(summaries(result)[0]).toMatchObject({ status: "interrupted", inserted: at.written })
      // not a page behind: the file holds the greatest committed cursor, as the summary says
      const file = JSON.parse(readFileSync(join(dir, "checkpoints.json"), "utf8")).streams[table][`public.${table}`].cursor
      const [{ max }] = await db.query(`SELECT max(updated_at) AS max FROM "${table}"`)
      expect(Date.parse(file)).toBe((max as Date).getTime())
      expect(summaries(result)[0]!.checkpoint).toBe(file)
    } finally {
      api.delayMs = 0
    }
  })

  it.skipIf(serverOnly)("SIGTERM twice: exits at once, the open transaction rolls back whole", async () => {
    const table = "sig_twice"
    await slowTarget(table)
    api.delayMs = 100
    try {
      const running = start(["run"], { cwd: config(table), env: env() })
      const at = await untilSecondWriteOpen(table, running.done)
      running.child.kill("SIGTERM")
      await new Promise((r) => setTimeout(r, 50))
      running.child.kill("SIGTERM")
      const result = await running.done
      expect(result.code).toBe(143)
      expect(result.stderr).toContain("SIGTERM again, exiting now")
      await untilIdle()
      // none of the open transaction's rows; the checkpoint is the one committed before it
      expect(await count(table)).toBe(at.committed)
      await expectConsistent(table)
      // the run could not record its end: it is not claimed to have succeeded
      expect((await lastRun(table)).status).not.toBe("succeeded")
    } finally {
      api.delayMs = 0
    }
    await expectConverges(table)
  })
})

describe("a signal between transactions", () => {
  it("SIGINT after a few pages: exit 130, interrupted, a consistent checkpoint; the next run converges", async () => {
    const table = "sig_between"
    api.delayMs = 50
    const base = api.pagesServed()
    try {
      const running = start(["run"], { cwd: config(table), env: env() })
      api.onServed = (n) => {
        if (n - base === 8) running.child.kill("SIGINT")
      }
      const result = await running.done
      expect(result.code, result.stderr.slice(-2000)).toBe(130)
      expect(summaries(result)[0]).toMatchObject({ status: "interrupted", exit_code: 130 })
      expect(await lastRun(table)).toEqual({ status: "interrupted", exit_code: 130 })
      expect(await count(table)).toBeLessThan(COUNT)
      await expectConsistent(table)
    } finally {
      api.onServed = undefined
      api.delayMs = 0
    }
    await expectConverges(table)
  })
})
