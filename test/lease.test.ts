/**
 * The stream lease and its fencing epoch (issue 15 item 4), through the bin against a server (several
 * sessions): a zombie (SIGSTOP past its lease, then SIGCONT) loses its stream to the next run and
 * commits nothing after the takeover; a killed process is taken over at once (its advisory lock is
 * gone); a live owner keeps its stream (its renewals) and a second run names it; `ferry reset` never
 * lowers the epoch. And the server ends a session left idle inside a transaction (a process frozen
 * mid-transaction) after about the lease, so its row locks do not block the stream's next owner.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Duration } from "effect"
import pg from "pg"
import * as Database from "../src/postgres/Database.js"
import { ferry, type Running, start, streamConfig, summaries } from "./support/cli.js"
import { createTestDatabase, serverOnly, type TestDatabase } from "./support/pg.js"
import { startTruthApi, type TruthApi } from "./support/truth-api.js"

const COUNT = 300
const PAGE = 30

let db: TestDatabase
let api: TruthApi
beforeAll(async () => {
  db = await createTestDatabase("ferry_lease")
  api = await startTruthApi({ count: COUNT, order: "asc", pagination: "link", pageSize: PAGE, seed: 15 })
})
afterAll(async () => {
  await api?.close()
  await db?.drop()
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const config = (stream: string, lease: string) =>
  streamConfig({
    url: `${api.url}/records`,
    name: stream,
    columns: "{ id: text, name: text, amount: numeric, version: integer, updated_at: timestamptz }",
    extra: `lease: ${lease}`
  })

/** waits until `test` holds, polling (at most `ms`) */
const until = async (test: () => Promise<boolean>, ms = 20_000) => {
  const deadline = Date.now() + ms
  while (!(await test())) {
    if (Date.now() > deadline) throw new Error("timed out waiting")
    await sleep(50)
  }
}

const rowCount = async (table: string) => {
  const rows = await db.query(`SELECT count(*)::int AS n FROM "${table}"`).catch(() => [{ n: 0 }])
  return rows[0].n as number
}
const lease = async (stream: string) =>
  (await db.query(`SELECT epoch::int AS epoch, owner, expires_at > now() AS live FROM ferry.leases WHERE stream = $1`, [stream]))[0]
const versions = (table: string) => db.query(`SELECT id, xmin::text AS xmin FROM "${table}" ORDER BY id`)
const checkpoint = async (stream: string) =>
  (await db.query(`SELECT cursor FROM ferry.state WHERE stream = $1`, [stream]))[0]?.cursor as string | undefined

/** the target holds what the source holds now: every id, at its current version */
const expectSource = async (table: string) => {
  const stored = await db.query(`SELECT id, version FROM "${table}" ORDER BY id`)
  const truth = [...api.truth().values()].map((r: any) => ({ id: r.id, version: r.version }))
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  expect(stored).toEqual(truth)
}

/** starts a run and returns once it committed its first batch */
const startCommitted = async (dir: string, table: string): Promise<Running> => {
  const running = start(["run"], { cwd: dir, env: { DATABASE_URL: db.url } })
  await until(async () => (await rowCount(table)) > 0)
  return running
}

describe.skipIf(serverOnly)("the stream lease", () => {
  it("a zombie (stopped past its lease) loses the stream: the next run takes over, the zombie's next commit is refused with 75", async () => {
    const stream = "zombie"
    const dir = config(stream, "2 seconds")
    api.delayMs = 400
    const a = await startCommitted(dir, stream)
    try {
      expect(await lease(stream)).toMatchObject({ epoch: 1, live: true })
      a.child.kill("SIGSTOP")
      // A's session lives on (its advisory lock too); its lease runs out
      await until(async () => (await lease(stream)).live === false, 10_000)
      api.delayMs = 20
      api.updatesPerPage = 1
      const b = await ferry(["run"], { cwd: dir, env: { DATABASE_URL: db.url } })
      api.updatesPerPage = 0
      expect(b.code, b.stderr).toBe(0)
      expect(b.logs.find((l) => l.msg === "lease.takeover")).toMatchObject({ epoch: "2" })
      expect(summaries(b)[0]).toMatchObject({ status: "succeeded" })
      expect(await lease(stream)).toMatchObject({ epoch: 2, live: false })
      const after = await versions(stream)
      const saved = await checkpoint(stream)

      a.child.kill("SIGCONT")
      const zombie = await a.done
      expect(zombie.code, zombie.stderr).toBe(75)
      expect(zombie.stderr).toContain(`stream ${stream} (public.${stream}): its lease (epoch 1) was taken over by`)
      expect(zombie.stderr).toContain("(epoch 2); stopping rather than writing for a stream another process owns")
      // nothing committed after the takeover: no row version, no checkpoint, no epoch of its own
      expect(await versions(stream)).toEqual(after)
      expect(await checkpoint(stream)).toBe(saved)
      expect((await lease(stream)).epoch).toBe(2)
      await expectSource(stream)
      const runs = await db.query(`SELECT run_id, status, exit_code FROM ferry.runs WHERE stream = $1 ORDER BY started_at`, [stream])
      expect(runs.map((r) => r.exit_code)).toEqual([75, 0])
    } finally {
      a.child.kill("SIGCONT")
      a.child.kill("SIGKILL")
      api.delayMs = 0
    }
  }, 60_000)

  it("a killed process is taken over at once, not after its lease (its advisory lock went with its session)", async () => {
    const stream = "killed"
    const dir = config(stream, "1 hour")
    api.delayMs = 300
    const a = await startCommitted(dir, stream)
    a.child.kill("SIGKILL")
    await a.done
    api.delayMs = 0
    const began = Date.now()
    const b = await ferry(["run"], { cwd: dir, env: { DATABASE_URL: db.url } })
    expect(b.code, b.stderr).toBe(0)
    expect(Date.now() - began).toBeLessThan(30_000)
    expect(b.logs.find((l) => l.msg === "lease.takeover")).toBeUndefined()
    expect(await lease(stream)).toMatchObject({ epoch: 2, live: false })
    await expectSource(stream)
  }, 60_000)

  it("a live owner keeps its stream past the lease (renewed): a second run exits 75 naming it; reset raises the epoch, never lowers it", async () => {
    const stream = "live"
    const dir = config(stream, "2 seconds")
    api.delayMs = 1000
    const a = await startCommitted(dir, stream)
    try {
      await sleep(3000) // longer than the lease: only its renewals keep it
      const status = await ferry(["status", "--json"], { cwd: dir, env: { DATABASE_URL: db.url } })
      expect(status.code, status.stderr).toBe(0)
      const shown = JSON.parse(status.stdout).streams[0].lease
      expect(shown).toMatchObject({ epoch: "1" })
      expect(shown.owner).toContain(`pid ${a.child.pid}`)
      expect(Date.parse(shown.until)).toBeGreaterThan(Date.now())
      const b = await ferry(["run"], { cwd: dir, env: { DATABASE_URL: db.url } })
      expect(b.code, b.stderr).toBe(75)
      expect(b.stderr).toContain(`stream ${stream} is being synced by another run into public.${stream}`)
      expect(b.stderr).toMatch(new RegExp(`pid ${a.child.pid}, run [^,]+, lease epoch 1 until \\d{4}-`))
      api.delayMs = 0
      expect((await a.done).code).toBe(0)
    } finally {
      a.child.kill("SIGKILL")
      api.delayMs = 0
    }
    expect(await lease(stream)).toMatchObject({ epoch: 1, live: false })
    // released: status shows no lease
    const after = await ferry(["status", "--json"], { cwd: dir, env: { DATABASE_URL: db.url } })
    expect(JSON.parse(after.stdout).streams[0].lease).toBeUndefined()
    const reset = await ferry(["reset", "--stream", stream], { cwd: dir, env: { DATABASE_URL: db.url } })
    expect(reset.code, reset.stderr).toBe(0)
    expect(await checkpoint(stream)).toBeUndefined()
    expect(await lease(stream)).toMatchObject({ epoch: 2, live: false })
    expect((await ferry(["run"], { cwd: dir, env: { DATABASE_URL: db.url } })).code).toBe(0)
    expect((await lease(stream)).epoch).toBe(3)
  }, 60_000)

  it("the server ends a session idle inside a transaction past the timeout: its row locks go, its transaction rolls back", async () => {
    await db.query(`CREATE TABLE frozen (id int PRIMARY KEY, v int)`)
    await db.query(`INSERT INTO frozen VALUES (1, 0)`)
    const options = Database.timeoutOptions(db.url, { idleInTransactionTimeout: Duration.seconds(1) })
    const zombie = new pg.Client({ connectionString: db.url, options })
    const taker = new pg.Client({ connectionString: db.url, options })
    zombie.on("error", () => {})
    await zombie.connect()
    await taker.connect()
    try {
      await zombie.query(`BEGIN`)
      await zombie.query(`UPDATE frozen SET v = 1 WHERE id = 1`)
      // the zombie stops here, its transaction open; the taker waits for its row lock, then gets it
      const began = Date.now()
      await taker.query(`UPDATE frozen SET v = 2 WHERE id = 1`)
      expect(Date.now() - began).toBeGreaterThan(500)
      expect(Date.now() - began).toBeLessThan(10_000)
      await expect(zombie.query(`COMMIT`)).rejects.toThrow()
      expect(await db.query(`SELECT v FROM frozen`)).toEqual([{ v: 2 }])
    } finally {
      await taker.end()
      await zombie.end().catch(() => {})
    }
  })
})
