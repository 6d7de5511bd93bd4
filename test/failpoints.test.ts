/**
 * Named failpoints (src/lib/Failpoint.ts, FERRY_FAILPOINT=<point>:<n>[:signal]), through the bin: each
 * point where a crash is most dangerous, with SIGKILL and with SIGTERM, against a source whose truth
 * is known (test/support/truth-api.ts: 3,000 records, Link pages of 100, cursor ties, a record changed
 * at every page request, 100 ms per page so that a run is three 1-second transactions).
 *
 * - after-fetch (a page's body received, not decoded), after-upsert (rows written in the batch's
 *   transaction, checkpoint not saved), before-commit (all in the transaction, COMMIT not sent),
 *   after-commit (COMMIT returned, the file checkpoint and the counts not done), retry-backoff
 *   (sleeping before a retry of a 503). The transaction points fire in the run's 2nd transaction,
 *   both checkpoint stores; after-fetch and retry-backoff do not touch the store (postgres only).
 * - SIGKILL: after the kill the checkpoint is consistent with the committed rows (never ahead, never
 *   behind where its store promises it: scripts/truth-check.mjs), `ferry.runs` still says running;
 *   after-commit with the file store leaves the file behind the rows (it is written after the commit).
 * - SIGTERM: exit 143, the run recorded as interrupted; the transaction that was open finished whole
 *   (its pages are logged as committed after the failpoint line, the table holds exactly what the
 *   summary counts) and, for a signal inside it, nothing was written after it (a SIGKILL armed at the
 *   3rd transaction never fires); the checkpoint is the greatest committed cursor, in the file store too.
 * Then, after a few more changes, a run to completion converges to the source exactly: 0 missing,
 * 0 extra, 0 stale, the checkpoint at the source's greatest cursor.
 */
import { describe, expect, it } from "@effect/vitest"
import { join } from "node:path"
import { ferry, start, streamConfig, summaries } from "./support/cli.js"
import { checkpointViolations, diff, readCheckpoint, readTarget, runRowViolations } from "./support/consistency.js"
import { type ApiRecord, makeRecords, startApi } from "./support/api.js"
import { createTestDatabase, fileDatabase, type TestDatabase, usingServer } from "./support/pg.js"
import { startTruthApi, type TruthApi } from "./support/truth-api.js"
import * as Failpoint from "../src/lib/Failpoint.js"

const COUNT = 3000
const PAGE = 100


type Store = "postgres" | "file"
type Point = Failpoint.Point

/** One stream, Link pages of the truth source, with retries enough for a source that answers 503 to 20 % of pages. */
const configFor = (api: TruthApi, table: string, store: Store) =>
  streamConfig({
    name: table,
    url: `${api.url}/records`,
    checkpoint: store === "file" ? "{ store: file, path: ./checkpoints.json }" : "{ store: postgres }",
    retry: "{ attempts: 6, base: 200 millis, max: 1 second }",
    columns: "{ id: text, name: text, amount: numeric, version: integer, updated_at: timestamptz }"
  })

/** The pass at which each point fires: the 2nd transaction; a page of it; the first retry. */
const passOf: Record<Point, number> = {
  "after-fetch": 15,
  "after-upsert": 2,
  "before-commit": 2,
  "after-commit": 2,
  "retry-backoff": 1,
  "mid-swap": 1
}

const cases: ReadonlyArray<readonly [Point, Store]> = [
  ["after-fetch", "postgres"],
  ["after-upsert", "postgres"],
  ["after-upsert", "file"],
  ["before-commit", "postgres"],
  ["before-commit", "file"],
  ["after-commit", "postgres"],
  ["after-commit", "file"],
  ["retry-backoff", "postgres"]
]

const greatest = (target: Map<string, { ms: number }>): string =>
  new Date(Math.max(...[...target.values()].map((r) => r.ms))).toISOString()

// Cases are independent (own source, database, directory) and mostly wait for the paced source: they run
// side by side, four at a time on a server, two with embedded databases (each case has its own, as
// PGlite has one session; they all run in this process, and more at once starve its event loop).
const slots = { free: usingServer ? 4 : 2, waiting: [] as Array<() => void> }
const withSlot = async <A>(f: () => Promise<A>): Promise<A> => {
  while (slots.free === 0) await new Promise<void>((resolve) => slots.waiting.push(resolve))
  slots.free--
  try {
    return await f()
  } finally {
    slots.free++
    slots.waiting.shift()?.()
  }
}

describe.concurrent("failpoints: a kill at each dangerous point, then a run to completion", () => {
  for (const signal of ["SIGKILL", "SIGTERM"] as const) {
    cases.forEach(([point, store], index) => {
      it(`${point}, ${store} checkpoint store, ${signal}`, () => withSlot(async () => {
        const table = `fp_${point.replace("-", "_")}_${store}_${signal.toLowerCase()}`
        const api = await startTruthApi({ count: COUNT, order: "asc", pagination: "link", pageSize: PAGE, seed: 1000 + index })
        const db = await createTestDatabase()
        try {
          const dir = configFor(api, table, store)
          const env = { DATABASE_URL: db.url, FERRY_LOG_LEVEL: "debug" }
          const checkpoint = () => readCheckpoint(db.query, store, table, join(dir, "checkpoints.json"))
          const n = passOf[point]
          // with SIGTERM inside a transaction, a SIGKILL armed at the next one proves that nothing is written
          // after the open one. (Not after-commit: a signal between transactions is seen when Node's event loop
          // next polls, and when the next batch is already fetched, its transaction may start first; it then
          // commits whole, and the run stops after it.)
          const guard = signal === "SIGTERM" && (point === "after-upsert" || point === "before-commit") ? `,${point}:${n + 1}` : ""
          api.delayMs = 100
          api.updatesPerPage = 1
          if (point === "retry-backoff") api.failRate = 0.2
          const result = await start(["run"], { cwd: dir, env: { ...env, FERRY_FAILPOINT: `${point}:${n}:${signal}${guard}` } }).done
          api.delayMs = 0
          api.updatesPerPage = 0
          api.failRate = 0

          // it fired where it was armed
          const fired = result.logs.findIndex((l) => l.msg === "failpoint")
          expect(fired, result.stderr.slice(-2000)).toBeGreaterThanOrEqual(0)
          expect(result.logs[fired]).toMatchObject({ point, pass: n, signal })
          const target = await readTarget(db.query, table)
          const stored = await checkpoint()

          if (signal === "SIGKILL") {
            expect(result.signal, result.stderr.slice(-2000)).toBe("SIGKILL")
            const runId = result.logs.find((l) => typeof l.run_id === "string")?.run_id
            expect((await runRowViolations(db.query, runId, table, stored)).violations).toEqual([])
            const [run] = await db.query(`SELECT status FROM ferry.runs WHERE run_id = $1`, [runId])
            expect(run?.status).toBe("running")
            if (point === "after-commit") {
              // the 2nd transaction is in; the file store has not been written for it: one transaction behind
              if (store === "file") expect(Date.parse(stored!)).toBeLessThan(Date.parse(greatest(target)))
              else expect(stored).toBe(greatest(target))
            }
          } else {
            expect(result.code, result.stderr.slice(-2000)).toBe(143)
            const [summary] = summaries(result)
            expect(summary).toMatchObject({ status: "interrupted", exit_code: 143 })
            expect(await db.query(`SELECT status, exit_code FROM ferry.runs WHERE stream = $1`, [table])).toEqual([
              { status: "interrupted", exit_code: 143 }
            ])
            // the table holds exactly what the summary counts, and the summary names the stored checkpoint
            expect(target.size).toBe(summary!.inserted)
            expect(summary!.checkpoint).toBe(stored ?? null)
            if (target.size > 0) expect(stored).toBe(greatest(target))
            if (point === "after-upsert" || point === "before-commit" || point === "after-commit") {
              // the open transaction committed whole (and its bookkeeping ran): its pages are counted after the failpoint fired
              const committedAfter = result.logs.slice(fired + 1).filter((l) => l.msg === "page")
              expect(committedAfter.length).toBeGreaterThan(0)
              expect(result.logs.filter((l) => l.msg === "failpoint")).toHaveLength(1)
            }
          }
          expect(
            checkpointViolations({
              truth: api.truth(),
              target,
              checkpoint: stored,
              previous: undefined,
              store,
              order: "asc",
              lookbackMs: 0,
              completed: false
            })
          ).toEqual([])

          // a few more changes, then a run to completion converges exactly
          api.change(25)
          const final = await ferry(["run"], { cwd: dir, env })
          expect(final.code, final.stderr.slice(-2000)).toBe(0)
          expect(diff(api.truth(), await readTarget(db.query, table))).toEqual({ missing: [], extra: [], stale: [] })
          expect(await checkpoint()).toBe(api.maxCursor())
        } finally {
          await api.close()
          await db.drop()
        }
      }))
    })
  }
})

describe("FERRY_FAILPOINT", () => {
  const db = fileDatabase()

  it("parses points, passes and signals; refuses anything else with a reason", () => {
    expect(Failpoint.parse("after-upsert:3")).toEqual({ armed: [{ point: "after-upsert", n: 3, signal: "SIGKILL" }] })
    expect(Failpoint.parse("after-fetch:1:SIGTERM, retry-backoff:2:SIGINT")).toEqual({
      armed: [{ point: "after-fetch", n: 1, signal: "SIGTERM" }, { point: "retry-backoff", n: 2, signal: "SIGINT" }]
    })
    for (const bad of ["after-upsert", "after-upsert:0", "after-upsert:x", "before-lunch:1", "after-commit:1:SIGHUP", "after-commit:1:SIGTERM:x", ""]) {
      expect(Failpoint.parse(bad), bad).toHaveProperty("error")
    }
  })

  it("an unreadable FERRY_FAILPOINT is a 78 naming it, before anything runs", async () => {
    const api = await startTruthApi({ count: 10, order: "asc", pagination: "link", pageSize: PAGE, seed: 78 })
    try {
      const dir = configFor(api, "fp_unreadable", "postgres")
      const result = await ferry(["run"], { cwd: dir, env: { DATABASE_URL: db.url, FERRY_FAILPOINT: "after-upsert:soon" } })
      expect(result.code).toBe(78)
      expect(result.stderr.trim().split("\n")).toHaveLength(1)
      expect(result.logs[0]).toMatchObject({ level: "error", error: "ConfigError", exit_code: 78 })
      expect(result.logs[0]!.msg).toContain("FERRY_FAILPOINT")
      expect(result.logs[0]!.msg).toContain("after-upsert:soon")
      expect(api.pagesServed()).toBe(0)
      const [{ present }] = await db.query(`SELECT to_regclass('public.fp_unreadable') IS NOT NULL AS present`)
      expect(present).toBe(false)
    } finally {
      await api.close()
    }
  })
})

/**
 * write: replace under kill -9: the table is always the old content or the new one, whole; never a mix,
 * never empty. At named points (during the load; between the swap's TRUNCATE and its INSERT; right
 * before the swap's COMMIT) and at random moments of a run; after each kill a run to completion gives
 * the new content and drops the staging table. On a server a reader polling the table during the runs
 * only ever sees one of the two contents (TRUNCATE's lock makes it wait for the swap's commit).
 */
describe("write: replace, killed at any point: the old table or the new one, whole", () => {
  const rows = (n: number, tag: string): Array<ApiRecord> =>
    makeRecords(n).map((r) => ({ ...r, name: `${tag} ${r.id}` }))

  const content = async (db: TestDatabase, table: string) => {
    const [{ n, tags }] = await db.query(
      `SELECT count(*)::int AS n, coalesce(string_agg(DISTINCT split_part(name, ' ', 1), ','), '') AS tags FROM "${table}"`
    )
    return `${tags}:${n}`
  }

  it("SIGKILL during the load, inside the swap, before its commit, and at random moments", async () => {
    const db = await createTestDatabase()
    const api = await startApi(rows(100, "v0"), { pageSize: 7 })
    try {
      const table = "fp_replace"
      const dir = streamConfig({ name: table, url: `${api.url}/link`, incremental: null, write: "replace" })
      const env = { DATABASE_URL: db.url }
      expect((await ferry(["run"], { cwd: dir, env })).code).toBe(0)
      let version = 0
      let old = "v0:100"
      const seen = new Set<string>()
      let polling = usingServer
      const poller = (async () => {
        while (polling) {
          seen.add(await content(db, table))
          await new Promise((r) => setTimeout(r, 5))
        }
      })()
      const killAt = [
        { failpoint: "after-upsert:1" },
        { failpoint: "mid-swap:1" },
        { failpoint: "before-commit:2" },
        // during the load, and from 0 to 40 ms after the last page was served: around the swap
        ...[150, 300].map((ms) => ({ ms })),
        ...[0, 2, 5, 10, 20, 40].map((afterLast) => ({ afterLast })),
        // as soon as the swap's commit is logged: after it, whatever the machine's load (the timed kills
        // above may all land before it on a busy machine)
        { onLog: "\"msg\":\"target.replaced\"" }
      ]
      const outcomes: Array<string> = []
      for (const kill of killAt) {
        version++
        const count = version % 2 === 0 ? 100 : 60
        const next = `v${version}:${count}`
        api.records = rows(count, `v${version}`)
        api.delayMs = 30
        const running = start(["run"], {
          cwd: dir,
          env: { ...env, ...("failpoint" in kill ? { FERRY_FAILPOINT: kill.failpoint } : {}) }
        })
        const timer = "ms" in kill ? setTimeout(() => running.child.kill("SIGKILL"), kill.ms) : undefined
        if ("onLog" in kill && kill.onLog !== undefined) {
          const marker = kill.onLog
          let logged = ""
          running.child.stderr?.on("data", (chunk: Buffer) => {
            logged += chunk.toString()
            if (logged.includes(marker)) running.child.kill("SIGKILL")
          })
        }
        if ("afterLast" in kill) {
          const pages = api.pagesServed + Math.ceil(count / 7)
          while (api.pagesServed < pages && running.child.exitCode === null) await new Promise((r) => setTimeout(r, 1))
          await new Promise((r) => setTimeout(r, kill.afterLast))
          running.child.kill("SIGKILL")
        }
        const result = await running.done
        clearTimeout(timer)
        api.delayMs = 0
        const after = await content(db, table)
        outcomes.push(after === old ? "old" : "new")
        expect([old, next], `${JSON.stringify(kill)}: ${result.stderr.slice(-1500)}`).toContain(after)
        if ("failpoint" in kill) {
          expect(result.signal, result.stderr.slice(-1500)).toBe("SIGKILL")
          expect(after).toBe(old)
        }
        const done = await ferry(["run"], { cwd: dir, env })
        expect(done.code, done.stderr.slice(-1500)).toBe(0)
        expect(await content(db, table)).toBe(next)
        const [{ staging }] = await db.query(`SELECT to_regclass('public.fp_replace__ferry_staging') IS NOT NULL AS staging`)
        expect(staging).toBe(false)
        old = next
      }
      polling = false
      await poller
      // the kills landed on both sides of the swap
      expect(outcomes).toContain("old")
      expect(outcomes).toContain("new")
      if (usingServer) {
        // every content a reader saw was one whole version
        for (const s of seen) expect(s, [...seen].join(" ")).toMatch(/^v\d+:(100|60)$/)
      }
    } finally {
      await api.close()
      await db.drop()
    }
  }, 120_000)
})

/**
 * deletes: { detect: missing } under kill -9: a killed run deletes nothing the source still has. Each
 * round the source drops some records and adds others; the run is killed at a named point (in the
 * batch's transaction, right before the COMMIT of the deletes' transaction: `before-commit:2`, after
 * the batch's commit) or at a random moment. After the kill every row the table held before the run
 * whose record the source still has is there; the keys a killed run left in schema ferry are reset by
 * the next run, which converges: the table is exactly the source, and no table of keys is left.
 */
describe("deletes: { detect: missing }, killed at any point: nothing the source still has is deleted", () => {
  it("SIGKILL in the batch, before the deletes' commit, after the commit, and at random moments", async () => {
    const db = await createTestDatabase()
    const all = makeRecords(120)
    const api = await startApi(all.slice(0, 100), { pageSize: 7 })
    try {
      const table = "fp_missing"
      const dir = streamConfig({
        name: table,
        url: `${api.url}/link`,
        incremental: null,
        columns: `{ id: text, name: text, amount: numeric, updated_at: timestamptz }
      deletes: { detect: missing, action: delete }`
      })
      const env = { DATABASE_URL: db.url }
      const ids = async () => new Set((await db.query(`SELECT id FROM "${table}"`)).map((r) => r.id as string))
      const seenTables = async () =>
        (await db.query(`SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'ferry' AND tablename LIKE 'seen_%'`))[0]!.n
      expect((await ferry(["run"], { cwd: dir, env })).code).toBe(0)
      const killAt = [
        { failpoint: "after-upsert:1" },
        { failpoint: "before-commit:2" },
        { failpoint: "after-commit:1" },
        ...[100, 250, 400].map((ms) => ({ ms })),
        ...[0, 5, 20].map((afterLast) => ({ afterLast }))
      ]
      let round = 0
      for (const kill of killAt) {
        round++
        // a different fifth of the records is gone each round
        api.records = all.filter((_, i) => (i + round) % 5 !== 0)
        const source = new Set(api.records.map((r) => r.id))
        const before = await ids()
        // named points: unpaced, the run is one batch's transaction and then the deletes' one
        api.delayMs = "failpoint" in kill ? 0 : 20
        const running = start(["run"], {
          cwd: dir,
          env: { ...env, ...("failpoint" in kill ? { FERRY_FAILPOINT: kill.failpoint } : {}) }
        })
        const timer = "ms" in kill ? setTimeout(() => running.child.kill("SIGKILL"), kill.ms) : undefined
        if ("afterLast" in kill) {
          const pages = api.pagesServed + Math.ceil(api.records.length / 7)
          while (api.pagesServed < pages && running.child.exitCode === null) await new Promise((r) => setTimeout(r, 1))
          await new Promise((r) => setTimeout(r, kill.afterLast))
          running.child.kill("SIGKILL")
        }
        const result = await running.done
        clearTimeout(timer)
        api.delayMs = 0
        if ("failpoint" in kill) expect(result.signal, result.stderr.slice(-1500)).toBe("SIGKILL")
        const after = await ids()
        for (const id of before) {
          if (source.has(id)) expect(after.has(id), `${JSON.stringify(kill)}: ${id} deleted`).toBe(true)
        }
        // a kill before the deletes' commit deleted nothing at all
        if ("failpoint" in kill) for (const id of before) expect(after.has(id), JSON.stringify(kill)).toBe(true)
        const done = await ferry(["run"], { cwd: dir, env })
        expect(done.code, done.stderr.slice(-1500)).toBe(0)
        expect([...(await ids())].sort()).toEqual([...source].sort())
        expect(await seenTables()).toBe(0)
      }
    } finally {
      await api.close()
      await db.drop()
    }
  }, 120_000)
})
