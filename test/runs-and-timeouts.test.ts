/**
 * Issue 11, operator truth (runs found dead, bounded waits, durations), through the bin:
 * - a run killed by SIGKILL leaves its `ferry.runs` row `running`; the next run of the stream that takes
 *   the lock marks it `abandoned` (a run that fails to take the lock marks nothing), and `status` says so;
 * - `status` shows the run summary's own duration_ms;
 * - (against a server) Ferry's sessions wait a bounded time for a lock (`database.lockTimeout`: 75, naming
 *   the table and the blocking session) and for a statement (`database.statementTimeout`: 74).
 */
import { describe, expect, it } from "@effect/vitest"
import { cpSync, mkdirSync, mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Duration } from "effect"
import pg from "pg"
import { inject } from "vitest"
import * as Database from "../src/postgres/Database.js"
import { ferry, type Running, start, streamConfig, summaries } from "./support/cli.js"
import { json, startServer, type TestServer } from "./support/http.js"
import { embeddedDataDir, fileDatabase, serverOnly, usingServer } from "./support/pg.js"

const db = fileDatabase()

const record = (i: number) => ({
  id: `r${i}`,
  name: `record ${i}`,
  amount: i,
  updated_at: new Date(Date.UTC(2024, 0, 1) + i * 1000).toISOString()
})

/** Two pages of records; while `hold` is set, the second page is not answered until `release()`. */
const holdingSource = async () => {
  let held: Array<() => void> = []
  let hold = true
  let asked: () => void = () => {}
  let secondAsked = new Promise<void>((resolve) => (asked = resolve))
  const server: TestServer = await startServer(async (_req, res, url) => {
    const page = Number(url.searchParams.get("page") ?? "1")
    if (page === 2) {
      asked()
      if (hold) await new Promise<void>((resolve) => held.push(resolve))
      return json(res, { data: [3, 4].map(record) })
    }
    return json(res, { data: [1, 2].map(record) }, 200, { link: `<${server.url}/records?page=2>; rel="next"` })
  })
  return {
    server,
    /** resolves when a run has asked for the second page (its start is recorded, page one is written) */
    waitForSecondPage: () => secondAsked,
    release: () => {
      hold = false
      for (const f of held) f()
      held = []
    },
    rearm: () => {
      hold = true
      secondAsked = new Promise<void>((resolve) => (asked = resolve))
    }
  }
}

/**
 * Where the bin's runs keep their data: the test database (a server), or on the embedded pass the bin's
 * own embedded database (a copy of the suite's template: its data-directory lock is the lock), read here
 * with PGlite once no run holds it.
 */
const target = async (): Promise<{
  env: Record<string, string>
  query: (text: string, params?: ReadonlyArray<unknown>) => Promise<Array<any>>
}> => {
  if (!db.embedded) return { env: { DATABASE_URL: db.url }, query: db.query }
  return embeddedDataDir("ferry-ops-")
}

const runIdOf = (running: { logs: ReadonlyArray<Record<string, any>> }): string =>
  String(running.logs.find((l) => l.msg === "run.start")?.run_id)

const killed = async (running: Running) => {
  running.child.kill("SIGKILL")
  return running.done
}

describe("runs killed without a trace are marked abandoned by the next run that takes the lock", () => {
  it("kill -9 mid-run: its row stays 'running'; the next run marks it 'abandoned' (finished_at NULL, how it was found) and status shows it", async () => {
    const source = await holdingSource()
    try {
      const { env, query } = await target()
      const dir = streamConfig({ url: `${source.server.url}/records`, name: "killed_orders" })
      const first = start(["run"], { cwd: dir, env })
      await source.waitForSecondPage()
      const dead = await killed(first)
      expect(dead.signal).toBe("SIGKILL")
      const deadId = runIdOf(dead)
      expect(await query(`SELECT status FROM ferry.runs WHERE run_id = $1`, [deadId])).toEqual([{ status: "running" }])

      source.release()
      const second = await ferry(["run"], { cwd: dir, env })
      expect(second.code, second.stderr).toBe(0)
      const secondId = runIdOf(second)
      expect(second.logs.find((l) => l.msg === "run.abandoned")).toMatchObject({ abandoned_run_id: deadId })
      const [row] = await query(
        `SELECT status, finished_at, error, exit_code, target FROM ferry.runs WHERE run_id = $1`,
        [deadId]
      )
      expect(row).toMatchObject({ status: "abandoned", finished_at: null, exit_code: null, target: "public.killed_orders" })
      expect(row.error).toContain(`found by run ${secondId} at `)
      expect(row.error).toMatch(/killed, out of memory, or its database session lost/)
      expect(await query(`SELECT status FROM ferry.runs WHERE run_id = $1`, [secondId])).toEqual([{ status: "succeeded" }])

      const status = await ferry(["status", "--json"], { cwd: dir, env })
      expect(status.code, status.stderr).toBe(0)
      const [{ started }] = await query(`SELECT started_at AS started FROM ferry.runs WHERE run_id = $1`, [deadId])
      expect(JSON.parse(status.stdout).streams[0]).toMatchObject({
        status: "succeeded",
        abandoned_runs: 1,
        last_abandoned_at: new Date(started).toISOString()
      })
      const text = await ferry(["status"], { cwd: dir, env })
      expect(text.stdout).toContain(`killed_orders: 1 run(s) abandoned, the last one started at ${new Date(started).toISOString()}`)

      // a dry run records nothing, and so marks nothing either (tested with a fresh dead run)
      source.rearm()
      const again = start(["run"], { cwd: dir, env })
      await source.waitForSecondPage()
      const deadAgain = runIdOf(await killed(again))
      source.release()
      const dry = await ferry(["run", "--dry-run"], { cwd: dir, env })
      expect(dry.code, dry.stderr).toBe(0)
      expect(await query(`SELECT status FROM ferry.runs WHERE run_id = $1`, [deadAgain])).toEqual([{ status: "running" }])
    } finally {
      source.release()
      await source.server.close()
    }
  }, 120_000)

  it.skipIf(serverOnly)("a run that fails to take the lock (75) marks nothing: the live run's row stays 'running', then succeeds", async () => {
    const source = await holdingSource()
    try {
      const env = { DATABASE_URL: db.url }
      const dir = streamConfig({ url: `${source.server.url}/records`, name: "live_orders" })
      const live = start(["run"], { cwd: dir, env })
      await source.waitForSecondPage()
      const loser = await ferry(["run"], { cwd: dir, env })
      expect(loser.code, loser.stderr).toBe(75)
      const rows = await db.query(`SELECT status FROM ferry.runs WHERE stream = 'live_orders'`)
      expect(rows).toEqual([{ status: "running" }])
      source.release()
      const result = await live.done
      expect(result.code, result.stderr).toBe(0)
      expect(await db.query(`SELECT status FROM ferry.runs WHERE stream = 'live_orders'`)).toEqual([{ status: "succeeded" }])
    } finally {
      source.release()
      await source.server.close()
    }
  }, 60_000)
})

describe("status shows the run summary's duration", () => {
  it("status --json's duration_ms is the run.summary's duration_ms (prepare and lock included)", async () => {
    const source = await holdingSource()
    source.release()
    try {
      const { env } = await target()
      const dir = streamConfig({ url: `${source.server.url}/records`, name: "timed_orders" })
      const run = await ferry(["run"], { cwd: dir, env })
      expect(run.code, run.stderr).toBe(0)
      const summary = summaries(run)[0]!
      const status = await ferry(["status", "--json"], { cwd: dir, env })
      expect(JSON.parse(status.stdout).streams[0].duration_ms).toBe(summary.duration_ms)
    } finally {
      await source.server.close()
    }
  }, 60_000)
})

describe("Ferry's sessions wait a bounded time for a lock and for a statement", () => {
  const blocker = async (sql: string): Promise<pg.Client> => {
    const client = new pg.Client({ connectionString: db.url, application_name: "ferry-test-blocker" })
    await client.connect()
    await client.query("BEGIN")
    await client.query(sql)
    return client
  }
  const config = (url: string, name: string, database: string) =>
    streamConfig({ url: `${url}/records`, name, database: `database: { url: "\${DATABASE_URL}", ${database} }` })

  it("the defaults, the URL's own options= where the config says nothing, the config's keys over both", async () => {
    const idle = "-c idle_in_transaction_session_timeout=30000"
    expect(Database.timeoutOptions("postgres://h/db", {})).toBe(`-c lock_timeout=60000 -c statement_timeout=900000 ${idle}`)
    expect(Database.timeoutOptions("postgres://h/db?options=-c%20lock_timeout%3D5s", {})).toBe(`-c statement_timeout=900000 ${idle}`)
    expect(Database.timeoutOptions("postgres://h/db?options=--statement_timeout%3D0", { lockTimeout: Duration.seconds(2) }))
      .toBe(`-c lock_timeout=2000 ${idle}`)
    expect(Database.timeoutOptions("postgres://h/db?options=-c%20lock_timeout%3D5s", { lockTimeout: Duration.zero }))
      .toBe(`-c lock_timeout=0 -c statement_timeout=900000 ${idle}`)
    // the lease (config `lease:`) bounds how long a session may sit idle inside a transaction
    expect(Database.timeoutOptions("postgres://h/db", { idleInTransactionTimeout: Duration.seconds(5) }))
      .toBe("-c lock_timeout=60000 -c statement_timeout=900000 -c idle_in_transaction_session_timeout=5000")
  })

  it.skipIf(serverOnly)("the session's settings: defaults, the URL's options=, the config's keys", async () => {
    const source = await holdingSource()
    try {
      const show = async (dir: string, url: string) => {
        const result = await ferry(["sql", "--json", "SELECT current_setting('lock_timeout') AS lock, current_setting('statement_timeout') AS statement"], {
          cwd: dir,
          env: { DATABASE_URL: url }
        })
        expect(result.code, result.stderr).toBe(0)
        return JSON.parse(result.stdout)[0]
      }
      const plain = streamConfig({ url: `${source.server.url}/records`, name: "settings_orders" })
      expect(await show(plain, db.url)).toEqual({ lock: "1min", statement: "15min" })
      const withOptions = `${db.url}${db.url.includes("?") ? "&" : "?"}options=${encodeURIComponent("-c lock_timeout=5s")}`
      expect(await show(plain, withOptions)).toEqual({ lock: "5s", statement: "15min" })
      const keyed = config(source.server.url, "settings_orders", "lockTimeout: 2 seconds, statementTimeout: 0")
      expect(await show(keyed, withOptions)).toEqual({ lock: "2s", statement: "0" })
    } finally {
      source.release()
      await source.server.close()
    }
  }, 60_000)

  it.skipIf(serverOnly)("another session holds a row lock: a run with lockTimeout 500 millis exits 75 within about that time, naming the table and the blocker", async () => {
    const source = await holdingSource()
    source.release()
    let holder: pg.Client | undefined
    try {
      const env = { DATABASE_URL: db.url }
      const dir = config(source.server.url, "row_locked_orders", "lockTimeout: 500 millis")
      const first = await ferry(["run"], { cwd: dir, env })
      expect(first.code, first.stderr).toBe(0)
      holder = await blocker(`SELECT * FROM public.row_locked_orders WHERE id = 'r4' FOR UPDATE`)
      const [{ pid }] = (await holder.query(`SELECT pg_backend_pid() AS pid`)).rows
      const startedAt = Date.now()
      const blocked = await ferry(["run"], { cwd: dir, env })
      const took = Date.now() - startedAt
      expect(blocked.code, blocked.stderr).toBe(75)
      expect(took).toBeLessThan(10_000)
      const summary = summaries(blocked)[0]!
      expect(summary).toMatchObject({ status: "failed", exit_code: 75 })
      expect(summary.error).toContain("public.row_locked_orders")
      expect(summary.error).toMatch(/lock timeout/)
      expect(summary.error).toContain("waited database.lockTimeout")
      expect(summary.error).toContain(`"ferry-test-blocker" (backend pid ${pid}, RowShareLock)`)
      // `ferry sql` too: a lock wait that ran out is 75, not a mistake in the statement (64)
      const update = await ferry(["sql", "UPDATE row_locked_orders SET name = name WHERE id = 'r4'"], { cwd: dir, env })
      expect(update.code, update.stderr).toBe(75)
      expect(update.stderr).toMatch(/lock timeout/)
      // its checkpoint is where it was: the next run, without the blocker, succeeds
      await holder.query("ROLLBACK")
      const next = await ferry(["run"], { cwd: dir, env })
      expect(next.code, next.stderr).toBe(0)
    } finally {
      await holder?.end()
      await source.server.close()
    }
  }, 60_000)

  it.skipIf(serverOnly)("an ACCESS EXCLUSIVE lock held past a long lockTimeout: statementTimeout 1 second ends the wait with 74, naming the statement", async () => {
    const source = await holdingSource()
    source.release()
    let holder: pg.Client | undefined
    try {
      const env = { DATABASE_URL: db.url }
      const dir = config(source.server.url, "stuck_orders", "lockTimeout: 1 minute, statementTimeout: 1 second")
      const first = await ferry(["run"], { cwd: dir, env })
      expect(first.code, first.stderr).toBe(0)
      holder = await blocker(`LOCK TABLE public.stuck_orders IN ACCESS EXCLUSIVE MODE`)
      const startedAt = Date.now()
      const stuck = await ferry(["run"], { cwd: dir, env })
      const took = Date.now() - startedAt
      expect(stuck.code, stuck.stderr).toBe(74)
      expect(took).toBeLessThan(20_000)
      const failure = stuck.logs.find((l) => l.level === "error" && /statement timeout/.test(JSON.stringify(l)))
      expect(failure, stuck.stderr).toBeDefined()
      expect(JSON.stringify(failure)).toContain("public.stuck_orders")
      expect(JSON.stringify(failure)).toContain("database.statementTimeout")
    } finally {
      await holder?.end()
      await source.server.close()
    }
  }, 60_000)
})

describe("the embedded database's lock is checked where the run took it", () => {
  // the suite's template is there on the embedded pass only
  it.skipIf(usingServer)("file checkpoint store, run from another working directory (cron's $HOME): exit 0, the checkpoint saved", async () => {
    const source = await holdingSource()
    source.release()
    try {
      const dir = streamConfig({
        url: `${source.server.url}/records`,
        name: "elsewhere_orders",
        database: "",
        checkpoint: "{ store: file, path: ./checkpoints.json }"
      })
      mkdirSync(join(dir, ".ferry"))
      cpSync(inject("pgTemplate")!, join(dir, ".ferry", "pgdata"), { recursive: true })
      const home = mkdtempSync(join(tmpdir(), "ferry-home-"))
      const result = await ferry(["run", "--config", join(dir, "ferry.config.yaml")], { cwd: home, env: { DATABASE_URL: "" } })
      expect(result.code, result.stderr).toBe(0)
      expect(readFileSync(join(dir, "checkpoints.json"), "utf8")).toContain(record(4).updated_at)
    } finally {
      await source.server.close()
    }
  }, 60_000)
})
