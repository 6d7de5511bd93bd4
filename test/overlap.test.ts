/**
 * Single flight (DESIGN.md guarantee 6), through the bin: `ferry run` processes started together on
 * the same stream. Exactly one syncs (exit 0); the others exit 75 while the winner is still running
 * (the source is slowed so the winner runs for seconds: each loser's exit comes before the winner's
 * `run.summary` line), having fetched nothing and recorded no run; nothing is written twice, and the
 * next run writes nothing (no row gets a new version).
 *
 * - Against a server: the stream's advisory lock (two, then five processes). Needs real sessions.
 * - The embedded database: the lock on the data directory, taken before PGlite opens it; the losers
 *   name the directory and the holder's pid, and a later run finds the directory intact. Its first
 *   start runs initdb (seconds, ~850 MB), so this is one scenario of five processes.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type CliResult, ferry, start, streamConfig, summaries } from "./support/cli.js"
import { createTestDatabase, serverOnly, type TestDatabase } from "./support/pg.js"
import { startTruthApi, type TruthApi } from "./support/truth-api.js"

const COUNT = 300
const PAGE = 30

let db: TestDatabase
let api: TruthApi
beforeAll(async () => {
  db = await createTestDatabase()
  api = await startTruthApi({ count: COUNT, order: "asc", pagination: "link", pageSize: PAGE, seed: 75 })
})
afterAll(async () => {
  await api?.close()
  await db?.drop()
})

const config = (stream: string, database: string) =>
  streamConfig({
    url: `${api.url}/records`,
    name: stream,
    database,
    columns: "{ id: text, name: text, amount: numeric, version: integer, updated_at: timestamptz }"
  })

interface Contender {
  readonly result: CliResult
  readonly pid: number | undefined
  /** when the process exited */
  readonly exitedAt: number
  /** when its `run.summary` line arrived, if it wrote one */
  readonly summaryAt: number | undefined
}

/** Starts `n` runs at once (no await between the spawns) and waits for all of them. */
const race = (n: number, cwd: string, env: Record<string, string>): Promise<Array<Contender>> =>
  Promise.all(Array.from({ length: n }, () => {
    const running = start(["run"], { cwd, env })
    let exitedAt = 0
    let summaryAt: number | undefined
    let seen = ""
    running.child.stderr!.on("data", (d) => {
      seen += d
      if (summaryAt === undefined && seen.includes(`"msg":"run.summary"`)) summaryAt = Date.now()
    })
    running.child.on("exit", () => (exitedAt = Date.now()))
    return running.done.then((result) => ({ result, pid: running.child.pid, exitedAt, summaryAt }))
  }))

/** One winner that synced everything; losers that exited 75 before the winner's summary. */
const expectOneWinner = (contenders: Array<Contender>) => {
  const codes = contenders.map((c) => c.result.code).sort()
  expect(codes, contenders.map((c) => c.result.stderr).join("\n")).toEqual([0, ...Array(contenders.length - 1).fill(75)])
  const winner = contenders.find((c) => c.result.code === 0)!
  const losers = contenders.filter((c) => c.result.code !== 0)
  expect(summaries(winner.result)[0]).toMatchObject({ status: "succeeded", fetched: COUNT, inserted: COUNT })
  expect(winner.summaryAt).toBeDefined()
  for (const loser of losers) {
    // it gave up while the winner was still fetching, not after waiting for it
    expect(loser.exitedAt).toBeLessThan(winner.summaryAt!)
    expect(loser.result.stderr).toMatch(/pid \d+/)
    expect(loser.result.stderr).toContain("try again later")
    // it fetched nothing (when it logs a summary, that summary says so)
    for (const summary of summaries(loser.result)) expect(summary).toMatchObject({ status: "failed", pages: 0, fetched: 0, exit_code: 75 })
  }
  return { winner, losers }
}

describe("single flight: processes started together on one stream", () => {
  for (const n of [2, 5]) {
    it.skipIf(serverOnly)(`${n} processes against a server: one syncs, the others exit 75 at once`, async () => {
      const stream = `overlap_${n}`
      const dir = config(stream, `database: { url: "\${DATABASE_URL}" }`)
      const env = { DATABASE_URL: db.url }
      api.delayMs = 250 // 10 pages: the winner runs for 2.5 s at least
      const before = api.pagesServed()
      let contenders: Array<Contender>
      try {
        contenders = await race(n, dir, env)
      } finally {
        api.delayMs = 0
      }
      const { losers } = expectOneWinner(contenders)
      for (const loser of losers) expect(loser.result.stderr).toContain(`stream ${stream} is being synced by another run`)
      // only the winner fetched: one run's pages
      expect(api.pagesServed() - before).toBe(COUNT / PAGE)

      // one row per id, one recorded run
      const [{ rows, ids }] = await db.query(`SELECT count(*)::int AS rows, count(DISTINCT id)::int AS ids FROM "${stream}"`)
      expect({ rows, ids }).toEqual({ rows: COUNT, ids: COUNT })
      const runs = await db.query(`SELECT status FROM ferry.runs WHERE stream = $1`, [stream])
      expect(runs).toEqual([{ status: "succeeded" }])

      // the next run is a no-op: no row gets a new version
      const versions = await db.query(`SELECT id, xmin::text AS xmin FROM "${stream}" ORDER BY id`)
      const again = await ferry(["run"], { cwd: dir, env })
      expect(again.code).toBe(0)
      expect(summaries(again)[0]).toMatchObject({ inserted: 0, updated: 0 })
      expect(await db.query(`SELECT id, xmin::text AS xmin FROM "${stream}" ORDER BY id`)).toEqual(versions)
    })
  }

  it("5 processes on the embedded database: one syncs, the others exit 75 naming the data directory; it stays intact", async () => {
    const stream = "overlap_embedded"
    const dir = config(stream, "")
    const dataRoot = mkdtempSync(join(tmpdir(), "ferry-overlap-data-"))
    const dataDir = join(dataRoot, "pgdata")
    const env = { FERRY_DATA_DIR: dataDir }
    try {
      api.delayMs = 100 // after initdb, 10 pages: the winner runs for a second more at least
      let contenders: Array<Contender>
      try {
        contenders = await race(5, dir, env)
      } finally {
        api.delayMs = 0
      }
      const { losers, winner } = expectOneWinner(contenders)
      for (const loser of losers) {
        expect(loser.result.stderr).toContain(`the data directory ${dataDir} is in use`)
        // the holder's pid; or, if the loser read the lock file in the microseconds between the winner's
        // O_EXCL create and its write, the message that says it could not read it
        expect(loser.result.stderr).toMatch(new RegExp(`in use by pid ${winner.pid} |its lock file \\S+ cannot be read`))
      }

      // a later run opens the same directory: nothing new, everything there once
      const again = await ferry(["run"], { cwd: dir, env })
      expect(again.code, again.stderr).toBe(0)
      expect(summaries(again)[0]).toMatchObject({ status: "succeeded", inserted: 0, updated: 0 })
      const count = await ferry(
        ["sql", "--json", `select count(*)::int as n, count(distinct id)::int as ids from ${stream}`],
        { cwd: dir, env }
      )
      expect(count.code, count.stderr).toBe(0)
      expect(JSON.parse(count.stdout)).toEqual([{ n: COUNT, ids: COUNT }])
    } finally {
      rmSync(dataRoot, { recursive: true, force: true })
    }
  }, 120_000)
})
