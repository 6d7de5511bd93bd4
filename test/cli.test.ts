/**
 * The exit codes cron sees, from the bin run as a child process against a real API and database:
 * each documented code, with a one-line message and no stack trace for a user's mistake, and no
 * secret anywhere in the output.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import pg from "pg"
import { type Api, makeRecords, startApi } from "./support/api.js"
import { configDir, ferry, start, streamConfig, summaries } from "./support/cli.js"
import { createTestDatabase, serverOnly, type TestDatabase } from "./support/pg.js"
import { expectNoSecrets, ferryTablesText } from "./support/secrets.js"

let db: TestDatabase
let api: Api
const TOKEN = "cli-secret-token-42"

beforeAll(async () => {
  db = await createTestDatabase()
  api = await startApi(makeRecords(40), { auth: { type: "bearer", token: TOKEN } })
})
afterAll(async () => {
  await api?.close()
  await db?.drop()
})

/** A config with one stream named after its `table`; `extra` is appended to the stream. */
const config = (options: { table: string; path?: string; columns?: string; extra?: string; dbUrl?: string }) =>
  streamConfig({
    url: `${api.url}${options.path ?? "/link"}`,
    name: options.table,
    auth: `{ type: bearer, token: "\${TOKEN}" }`,
    columns: options.columns,
    extra: options.extra,
    ...(options.dbUrl === undefined ? {} : { database: `database: { url: "${options.dbUrl}" }` })
  })

const env = () => ({ DATABASE_URL: db.url, TOKEN })

/** A user's mistake: one line, no stack trace, no secret. */
const expectCleanError = (stderr: string) => {
  expect(stderr).not.toMatch(/\n\s+at /)
  expectNoSecrets([stderr], [TOKEN, "hunter2"])
}

describe("exit codes", () => {
  it("0: synced; the process exits by itself; status --json reports the run", async () => {
    const dir = config({ table: "ok_items" })
    const result = await ferry(["run"], { cwd: dir, env: env() })
    expect(result.code).toBe(0)
    expectCleanError(result.stderr)
    const lines = result.logs
    expect(lines.every((l) => typeof l.run_id === "string" && "stream" in l)).toBe(true)
    expect(lines.filter((l) => l.msg !== "run.summary").every((l) => typeof l.ts === "string")).toBe(true)
    const [summary] = summaries(result)
    expect(summary!.fetched).toBe(summary!.inserted + summary!.updated + summary!.unchanged + summary!.quarantined)
    // no line printed twice
    expect(new Set(result.stderr.split("\n")).size).toBe(result.stderr.split("\n").length)

    const status = await ferry(["status", "--json"], { cwd: dir, env: env() })
    expect(status.code).toBe(0)
    const parsed = JSON.parse(status.stdout)
    expect(parsed.streams[0]).toMatchObject({
      stream: "ok_items",
      status: "succeeded",
      fetched: 40,
      inserted: 40,
      checkpoint: api.records.at(-1)!.updated_at
    })
    const [run] = await db.query(`SELECT status, fetched, exit_code FROM ferry.runs WHERE stream = 'ok_items'`)
    expect(run).toEqual({ status: "succeeded", fetched: "40", exit_code: 0 })
  })

  it("--version prints package.json's version; --help prints the usage; both exit 0", async () => {
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, "..", "package.json"), "utf8"))
    const version = await ferry(["--version"])
    expect(version).toMatchObject({ code: 0, stdout: `ferry ${pkg.version}\n` })
    const help = await ferry(["--help"])
    expect(help.code).toBe(0)
    expect(help.stdout).toContain("Usage: ferry <command> [options]")
  })

  it("64: unknown command, unknown flag, unknown stream, a flag the command does not take", async () => {
    const dir = config({ table: "usage_items" })
    for (const args of [["frobnicate"], ["run", "--bogus"], ["run", "--stream", "nope"], ["status", "--dry-run"], ["reset"]]) {
      const result = await ferry(args, { cwd: dir, env: env() })
      expect(result.code, args.join(" ")).toBe(64)
      expectCleanError(result.stderr)
    }
    // a person at a terminal (pretty) also gets the usage; a log gets one line
    const pretty = await ferry(["frobnicate"], { cwd: dir, env: { ...env(), FERRY_LOG_FORMAT: "pretty" } })
    expect(pretty.code).toBe(64)
    expect(pretty.stderr).toContain(`ferry: unknown command "frobnicate"`)
    expect(pretty.stderr).toContain("Usage: ferry <command> [options]")
    const unknown = await ferry(["run", "--stream", "nope"], { cwd: dir, env: env() })
    expect(unknown.logs.map((l) => l.msg)).toContain(`unknown stream "nope"; the config has usage_items`)
  })

  it("78: invalid config names the field; a missing variable names the variable", async () => {
    const bad = configDir(`streams: [{ name: x, source: { url: "http://127.0.0.1:1", pagination: { type: sideways } }, target: { table: t, primaryKey: [id] } }]`)
    const result = await ferry(["run"], { cwd: bad, env: env() })
    expect(result.code).toBe(78)
    expect(result.stderr).toContain("streams[0].source.pagination.type")
    expectCleanError(result.stderr)
    // one line, and even this line, before any stream starts, carries run_id and stream
    expect(result.logs).toHaveLength(1)
    expect(result.logs[0]).toMatchObject({ level: "error", stream: null, exit_code: 78 })
    expect(typeof result.logs[0]!.run_id).toBe("string")

    const missing = await ferry(["run"], { cwd: config({ table: "t78" }), env: { DATABASE_URL: db.url } })
    expect(missing.code).toBe(78)
    expect(missing.stderr).toContain("TOKEN")
    expectCleanError(missing.stderr)
  })

  it("78: a target table that exists with incompatible columns", async () => {
    await db.query(`CREATE TABLE mismatch_items (id integer PRIMARY KEY, name text)`)
    const result = await ferry(["run"], { cwd: config({ table: "mismatch_items" }), env: env() })
    expect(result.code).toBe(78)
    expect(result.stderr).toMatch(/mismatch_items/)
    expect(result.stderr).toMatch(/amount/)
    expectCleanError(result.stderr)
  })

  it("69: the source answers 404, or is not there at all", async () => {
    const notFound = await ferry(["run"], { cwd: config({ table: "nf_items", path: "/missing" }), env: env() })
    expect(notFound.code).toBe(69)
    expect(notFound.stderr).toContain("404")
    expectCleanError(notFound.stderr)

    const down = configDir(readFileSync(join(config({ table: "down_items" }), "ferry.config.yaml"), "utf8")
      .replace(api.url, "http://127.0.0.1:1"))
    const refused = await ferry(["run"], { cwd: down, env: env() })
    expect(refused.code).toBe(69)
    expectCleanError(refused.stderr)
  })

  it("65: invalid records over maxInvalid are quarantined and the valid ones committed", async () => {
    const saved = api.records
    api.records = makeRecords(10).map((r, i) => (i % 4 === 0 ? { ...r, amount: "lots" } : r))
    try {
      const result = await ferry(["run"], { cwd: config({ table: "bad_items", extra: "    maxInvalid: 1" }), env: env() })
      expect(result.code).toBe(65)
      expect(summaries(result)[0]).toMatchObject({ fetched: 10, inserted: 7, quarantined: 3 })
      const [{ n }] = await db.query(`SELECT count(*)::int AS n FROM bad_items`)
      expect(n).toBe(7)
      const quarantined = await db.query(`SELECT reason, record FROM ferry.quarantine WHERE stream = 'bad_items' ORDER BY id`)
      expect(quarantined.length).toBe(3)
      expect(quarantined[0].reason).toContain("amount")
      expect(JSON.parse(quarantined[0].record).amount).toBe("lots")
    } finally {
      api.records = saved
    }
  })

  it("74: the database is unreachable; the message names the host, never the password", async () => {
    const dir = config({ table: "t74", dbUrl: "postgres://ferry:hunter2@127.0.0.1:1/nowhere" })
    const result = await ferry(["run"], { cwd: dir, env: env() })
    expect(result.code).toBe(74)
    expect(result.stderr).toContain("127.0.0.1:1")
    expectCleanError(result.stderr)
  })

  // two sessions are needed for an advisory lock to exclude (the embedded path: test/overlap.test.ts)
  it.skipIf(serverOnly)("75: another process holds the stream's lock; it exits at once naming the holder", async () => {
    const dir = config({ table: "lock_items" })
    api.delayMs = 150
    let release = () => {}
    try {
      const before = api.pagesServed
      const first = start(["run"], { cwd: dir, env: env() })
      // wait until the first run has started fetching (it holds the lock by then), then hold its next
      // page until the second run is over: on a slow machine a second start can outlast the whole run
      const began = Date.now()
      while (api.pagesServed === before && Date.now() - began < 10_000) await new Promise((r) => setTimeout(r, 20))
      api.gate = new Promise<void>((resolve) => (release = resolve))
      const served = api.pagesServed - before
      const second = await ferry(["run"], { cwd: dir, env: env() })
      release()
      api.gate = undefined
      expect(second.code).toBe(75)
      expect(second.stderr).toContain("ferry")
      expect(second.stderr).toMatch(/pid \d+/)
      expectCleanError(second.stderr)
      const firstResult = await first.done
      expect(firstResult.code).toBe(0)
      // the second run fetched nothing
      expect(served).toBeGreaterThan(0)
    } finally {
      release()
      api.gate = undefined
      api.delayMs = 0
    }
    const [{ n }] = await db.query(`SELECT count(*)::int AS n FROM lock_items`)
    expect(n).toBe(40)
  })

  it("75: the source keeps rate-limiting past the retry budget", async () => {
    api.fail = () => 429
    try {
      const result = await ferry(["run"], { cwd: config({ table: "rl_items" }), env: env() })
      expect(result.code).toBe(75)
      // attempts: 2, so one retry before giving up; the summary counts it
      expect(summaries(result)[0]).toMatchObject({ status: "failed", retries: 1, exit_code: 75 })
      expectCleanError(result.stderr)
    } finally {
      api.fail = undefined
    }
  })

  it("143: SIGTERM stops after the current transaction; the next run converges", async () => {
    const dir = config({ table: "term_items" })
    api.delayMs = 100
    const running = start(["run"], { cwd: dir, env: env() })
    const began = Date.now()
    while (api.pagesServed < 1_000_000 && Date.now() - began < 10_000) {
      const [{ n }] = await db.query(`SELECT count(*)::int AS n FROM ferry.runs WHERE stream = 'term_items' AND status = 'running'`)
        .catch(() => [{ n: 0 }])
      if (n > 0) break
      await new Promise((r) => setTimeout(r, 20))
    }
    await new Promise((r) => setTimeout(r, 250))
    running.child.kill("SIGTERM")
    const result = await running.done
    api.delayMs = 0
    expect(result.code).toBe(143)
    const [run] = await db.query(`SELECT status FROM ferry.runs WHERE stream = 'term_items' ORDER BY started_at DESC LIMIT 1`)
    expect(run.status).toBe("interrupted")
    const rerun = await ferry(["run"], { cwd: dir, env: env() })
    expect(rerun.code).toBe(0)
    const [{ n }] = await db.query(`SELECT count(*)::int AS n FROM term_items`)
    expect(n).toBe(40)
  })

  it("--dry-run fetches and validates but writes nothing; --full-refresh re-reads everything", async () => {
    const dir = config({ table: "dry_items" })
    const dry = await ferry(["run", "--dry-run"], { cwd: dir, env: env() })
    expect(dry.code).toBe(0)
    expect(summaries(dry)[0]).toMatchObject({ fetched: 40, inserted: 40, dry_run: true })
    const [{ present }] = await db.query(`SELECT to_regclass('public.dry_items') IS NOT NULL AS present`)
    expect(present).toBe(false)

    expect((await ferry(["run"], { cwd: dir, env: env() })).code).toBe(0)
    const full = await ferry(["run", "--full-refresh"], { cwd: dir, env: env() })
    expect(full.code).toBe(0)
    expect(summaries(full)[0]).toMatchObject({ fetched: 40, inserted: 0, updated: 0, unchanged: 40 })
  })

  it("reset forgets the checkpoint; the file checkpoint store keeps it in its file", async () => {
    const dir = config({
      table: "file_items",
      extra: ""
    })
    const yaml = readFileSync(join(dir, "ferry.config.yaml"), "utf8").replace(
      "streams:",
      "checkpoint: { store: file, path: ./state/checkpoints.json }\nstreams:"
    )
    const fileDir = configDir(yaml)
    expect((await ferry(["run"], { cwd: fileDir, env: env() })).code).toBe(0)
    const file = join(fileDir, "state", "checkpoints.json")
    expect(existsSync(file)).toBe(true)
    // stream -> target table -> checkpoint
    expect(JSON.parse(readFileSync(file, "utf8")).streams.file_items["public.file_items"].cursor).toBe(api.records.at(-1)!.updated_at)
    const reset = await ferry(["reset", "--stream", "file_items"], { cwd: fileDir, env: env() })
    expect(reset.code).toBe(0)
    expect(JSON.parse(readFileSync(file, "utf8")).streams.file_items).toBeUndefined()
    const again = await ferry(["run"], { cwd: fileDir, env: env() })
    expect(summaries(again)[0]).toMatchObject({ fetched: 40, unchanged: 40 })
  })

  it.skipIf(serverOnly)("the advisory lock is held by the run's own session (pg_locks shows it while running)", async () => {
    const dir = config({ table: "advisory_items" })
    api.delayMs = 100
    const running = start(["run"], { cwd: dir, env: env() })
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    let seen = false
    const began = Date.now()
    while (!seen && Date.now() - began < 10_000) {
      const { rows } = await client.query(
        `SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' AND a.application_name LIKE 'ferry %'`
      )
      seen = rows.length > 0
      if (!seen) await new Promise((r) => setTimeout(r, 20))
    }
    await client.end()
    api.delayMs = 0
    expect(seen).toBe(true)
    expect((await running.done).code).toBe(0)
  })

  // last: every run above (failed ones included) is recorded by now
  it("no secret reached ferry.runs, ferry.quarantine or ferry.state", async () => {
    const texts = await ferryTablesText(db)
    expect(texts.length).toBeGreaterThan(10)
    expectNoSecrets(texts, [TOKEN, "hunter2"])
  })
})
