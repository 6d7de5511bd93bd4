/**
 * Crash consistency (DESIGN.md guarantees 2, 3 and 4), through the bin: a source of 20,000 records
 * (cursor ties; a few records change between page requests) is synced by `ferry run` processes killed
 * with SIGKILL at seeded random moments, then run to completion; the target must equal the source.
 *
 * Kill points, per combination (postgres|file store × asc|unsorted source), in turn:
 * - after a random delay drawn over the expected duration of the run (measured once, uninterrupted);
 * - right after the server sent the run's k-th page (k random): Ferry fetches the next pages while the
 *   last ones are being written, so this often lands while a transaction is open;
 * - (against a server) inside a transaction for sure: as soon as pg_stat_activity shows the run's
 *   transaction writing the target table or the checkpoint (on the embedded database, whose one session
 *   cannot be watched while a transaction holds it, a page-based kill instead).
 *
 * What is guaranteed after any kill, and asserted (C = the stored checkpoint, L = the lookback):
 * - C never moves backwards from one kill to the next.
 * - C never points past committed rows: every source record whose CURRENT cursor is < C − L is in the
 *   target with its current version. Records changed later have moved to cursors >= C − L, where the
 *   next run reads them again, so nothing is claimed about them except "no version newer than the
 *   source's" (the target never holds a version the source did not have). Strictly less: records that
 *   share C are re-read (>=) by the next run, so they may be missing now. For `asc` L = 0 (every page is
 *   committed in cursor order, and a change always lands after every key already served). For
 *   `unsorted` a completed run stores the greatest cursor it saw, and a record changed during that run
 *   after it was read has a smaller cursor: only the lookback brings it back, so the source needs
 *   L >= the longest run (here 1 minute) and the guarantee is about cursors < C − L.
 * - postgres store, asc: C = the greatest cursor in the target (rows and checkpoint commit together).
 *   file store: at-least-once: C <= the greatest cursor in the target (written after the commit, so it
 *   may lag a page behind, never run ahead).
 * - `ferry.runs` holds no 'succeeded' row for a run that did not complete: a killed run's row says
 *   'running', or, when the kill landed after the run had finished, 'succeeded' with the checkpoint
 *   that is stored.
 * Then a run to completion on a quiet source: 0 missing, 0 extra, 0 stale rows, C = the source's
 * greatest cursor; and one more run writes nothing.
 *
 * Seeded: the seed is printed; FERRY_CRASH_SEED=<n> replays it.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import pg from "pg"
import { configDir, type CliResult, start, summaries } from "./support/cli.js"
import { createTestDatabase, type TestDatabase, usingServer } from "./support/pg.js"
import { prng, startTruthApi, type TruthApi } from "./support/truth-api.js"

const seed = process.env.FERRY_CRASH_SEED !== undefined && process.env.FERRY_CRASH_SEED !== ""
  ? Number(process.env.FERRY_CRASH_SEED)
  : Math.floor(Math.random() * 2 ** 31)
console.log(`crash.test: seed ${seed} (replay with FERRY_CRASH_SEED=${seed})`)

const COUNT = 20_000
const PAGE = 500
const KILLS = 6
const UPDATES_PER_PAGE = 3
const UNSORTED_LOOKBACK_MS = 60_000

let db: TestDatabase
/** one session that watches pg_stat_activity (against a server) */
let observer: pg.Client | undefined
beforeAll(async () => {
  db = await createTestDatabase()
  if (usingServer) {
    observer = new pg.Client({ connectionString: db.url })
    await observer.connect()
  }
})
afterAll(async () => {
  await observer?.end()
  await db?.drop()
})

/** Resolves once a transaction of another session has written (an xid) and is writing `table` or the checkpoint. */
const inTransaction = async (table: string, until: Promise<unknown>): Promise<boolean> => {
  let over = false
  void until.then(() => (over = true))
  while (!over) {
    const { rows } = await observer!.query(
      `SELECT 1 FROM pg_stat_activity
       WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL
         AND (query LIKE $1 OR query LIKE '%ferry.state%')`,
      [`INSERT INTO "public"."${table}"%`]
    )
    if (rows.length > 0) return true
    await new Promise((r) => setTimeout(r, 2))
  }
  return false
}

type Store = "postgres" | "file"
type Order = "asc" | "unsorted"

const configFor = (api: TruthApi, store: Store, order: Order, streams: ReadonlyArray<string>) =>
  configDir(`
database: { url: "\${DATABASE_URL}" }
${store === "file" ? "checkpoint: { store: file, path: ./state/checkpoints.json }" : ""}
streams:
${
    streams.map((name) => `
  - name: ${name}
    source:
      url: ${api.url}/records
      records: data
      pagination: ${order === "asc" ? "{ type: link }" : "{ type: cursor, nextPath: next, param: cursor }"}
      incremental:
        cursorField: updated_at
        param: since
        initial: "2000-01-01T00:00:00Z"
        order: ${order}
        ${order === "unsorted" ? `lookback: ${UNSORTED_LOOKBACK_MS} millis` : ""}
      retry: { attempts: 2, base: 10 millis, max: 1 second }
    target:
      table: ${name}
      primaryKey: [id]
      columns: { id: text, name: text, amount: numeric, version: integer, updated_at: timestamptz }
`).join("")
  }`)

const readCheckpoint = async (store: Store, dir: string, stream: string): Promise<string | undefined> => {
  if (store === "file") {
    const file = join(dir, "state", "checkpoints.json")
    if (!existsSync(file)) return undefined
    return JSON.parse(readFileSync(file, "utf8")).streams?.[stream]?.[`public.${stream}`]?.cursor
  }
  const [{ present }] = await db.query(`SELECT to_regclass('ferry.state') IS NOT NULL AS present`)
  if (!present) return undefined
  const rows = await db.query(`SELECT cursor FROM ferry.state WHERE stream = $1`, [stream])
  return rows[0]?.cursor ?? undefined
}

interface TargetRow {
  readonly version: number
  readonly ms: number
  readonly name: string
  readonly amount: number
}

const readTarget = async (table: string): Promise<Map<string, TargetRow>> => {
  const [{ present }] = await db.query(`SELECT to_regclass($1) IS NOT NULL AS present`, [`public.${table}`])
  if (!present) return new Map()
  const rows = await db.query(`SELECT id, name, amount::float8 AS amount, version, updated_at FROM "${table}"`)
  return new Map(rows.map((r) => [r.id, { version: r.version, ms: (r.updated_at as Date).getTime(), name: r.name, amount: r.amount }]))
}

const runIdOf = (result: CliResult): string | undefined => result.logs.find((l) => typeof l.run_id === "string")?.run_id

const msOf = (cursor: string | undefined) => (cursor === undefined ? Number.NEGATIVE_INFINITY : Date.parse(cursor))

/** The source compared to the target: ids missing, ids that should not be there, rows not at the source's version. */
const diff = (api: TruthApi, target: Map<string, TargetRow>) => {
  const truth = api.truth()
  const missing: Array<string> = []
  const stale: Array<string> = []
  for (const [id, r] of truth) {
    const row = target.get(id)
    if (row === undefined) missing.push(id)
    else if (
      row.version !== r.version || row.ms !== Date.parse(r.updated_at) || row.name !== r.name || row.amount !== r.amount
    ) stale.push(id)
  }
  const extra = [...target.keys()].filter((id) => !truth.has(id))
  return { missing, extra, stale }
}

const combos: ReadonlyArray<readonly [Store, Order]> = [["postgres", "asc"], ["postgres", "unsorted"], ["file", "asc"], [
  "file",
  "unsorted"
]]

describe("crash consistency: SIGKILL at random moments, then a run to completion", () => {
  combos.forEach(([store, order], index) => {
    it(`${store} checkpoint store, ${order} source`, async () => {
      const comboSeed = seed + index
      const random = prng(comboSeed ^ 0x5eed)
      const stream = `crash_${store}_${order}`
      const baselineStream = `${stream}_baseline`
      const api = await startTruthApi({ count: COUNT, order, pagination: order === "asc" ? "link" : "cursor", pageSize: PAGE, seed: comboSeed })
      const lookbackMs = order === "unsorted" ? UNSORTED_LOOKBACK_MS : 0
      try {
        const dir = configFor(api, store, order, [stream, baselineStream])
        const env = { DATABASE_URL: db.url }

        // One uninterrupted run (its own table) measures how long a full run takes, and its start-up.
        api.updatesPerPage = UPDATES_PER_PAGE
        const spawned = Date.now()
        const baseline = await start(["run", "--stream", baselineStream], { cwd: dir, env }).done
        const fullMs = Date.now() - spawned
        const startupMs = Math.max(0, api.lastFirstPageAt() - spawned)
        expect(baseline.code, baseline.stderr.slice(-2000)).toBe(0)
        expect(summaries(baseline)[0]!.fetched).toBeGreaterThanOrEqual(COUNT)

        const points: Array<string> = []
        let kills = 0
        let attempts = 0
        let exitedZero = 0
        let finishedBeforeKill = 0
        let previous: string | undefined
        while (kills < KILLS && attempts < KILLS * 3) {
          attempts++
          // keep work for every run: with `asc` the checkpoint advances, so the source changes records
          // (in groups that share a cursor) when little is left to read
          const before = await readCheckpoint(store, dir, stream)
          const from = before === undefined ? undefined : new Date(msOf(before) - lookbackMs).toISOString()
          while (api.countSince(from) < COUNT / 4) api.change(500)
          const remaining = api.countSince(from)

          api.updatesPerPage = UPDATES_PER_PAGE
          const basePages = api.pagesServed()
          const running = start(["run", "--stream", stream], { cwd: dir, env })
          let point: string
          let timer: NodeJS.Timeout | undefined
          const kind = (["time", "page", "transaction"] as const)[(attempts - 1) % 3]!
          if (kind === "transaction" && observer !== undefined) {
            point = "inside a transaction"
            void inTransaction(stream, running.done).then((found) => {
              if (found) running.child.kill("SIGKILL")
            })
          } else if (kind !== "time") {
            const pages = Math.ceil(remaining / PAGE)
            const k = 1 + Math.floor(random() * pages)
            api.onServed = (n) => {
              if (n - basePages === k) running.child.kill("SIGKILL")
            }
            point = `after page ${k} of ~${pages}`
          } else {
            const expected = startupMs + (fullMs - startupMs) * Math.min(1, remaining / COUNT)
            const delay = Math.floor(random() * expected)
            timer = setTimeout(() => running.child.kill("SIGKILL"), delay)
            point = `at ${delay} ms of ~${Math.round(expected)} ms`
          }
          const result = await running.done
          clearTimeout(timer)
          api.onServed = undefined
          api.updatesPerPage = 0

          const killed = result.signal === "SIGKILL"
          if (killed) kills++
          else {
            expect(result.code, result.stderr.slice(-2000)).toBe(0)
            exitedZero++
          }
          points.push(`${point}: ${killed ? "killed" : "completed first"} (${api.pagesServed() - basePages} pages served)`)

          // the checkpoint never moves backwards
          const checkpoint = await readCheckpoint(store, dir, stream)
          if (previous !== undefined) {
            expect(checkpoint, `checkpoint moved backwards ${point}`).toBeDefined()
            expect(msOf(checkpoint), `checkpoint moved backwards ${point}`).toBeGreaterThanOrEqual(msOf(previous))
          }
          previous = checkpoint

          // it never points past committed rows
          const target = await readTarget(stream)
          const truth = api.truth()
          const upTo = msOf(checkpoint) - lookbackMs
          const lost: Array<string> = []
          for (const [id, r] of truth) {
            if (Date.parse(r.updated_at) < upTo && target.get(id)?.version !== r.version) lost.push(id)
          }
          expect(lost, `records below the checkpoint ${checkpoint} missing or stale ${point}`).toEqual([])
          for (const [id, row] of target) {
            const r = truth.get(id)
            expect(r, `extra row ${id}`).toBeDefined()
            expect(row.version).toBeLessThanOrEqual(r!.version)
          }
          if (checkpoint !== undefined) {
            const maxMs = Math.max(...[...target.values()].map((r) => r.ms))
            if (store === "postgres" && order === "asc") expect(maxMs, point).toBe(msOf(checkpoint))
            else expect(maxMs, point).toBeGreaterThanOrEqual(msOf(checkpoint))
          }

          // no 'succeeded' row for a run that did not complete
          const runId = runIdOf(result)
          if (killed && runId !== undefined) {
            const [row] = await db.query(`SELECT status, checkpoint FROM ferry.runs WHERE run_id = $1 AND stream = $2`, [runId, stream])
            if (row?.status === "succeeded") {
              // the kill landed after the run had finished: its checkpoint is the stored one
              expect(row.checkpoint).toBe(checkpoint)
              finishedBeforeKill++
            } else if (row !== undefined) expect(row.status).toBe("running")
          }
          const [{ n }] = await db.query(`SELECT count(*)::int AS n FROM ferry.runs WHERE stream = $1 AND status = 'succeeded'`, [stream])
          expect(n).toBe(exitedZero + finishedBeforeKill)
        }
        expect(kills, points.join("\n")).toBe(KILLS)

        // A run to completion on a quiet source converges exactly.
        const final = await start(["run", "--stream", stream], { cwd: dir, env }).done
        expect(final.code, final.stderr.slice(-2000)).toBe(0)
        const { extra, missing, stale } = diff(api, await readTarget(stream))
        expect({ missing: missing.length, extra: extra.length, stale: stale.length }).toEqual({ missing: 0, extra: 0, stale: 0 })
        expect(await readCheckpoint(store, dir, stream)).toBe(api.maxCursor())
        // and the next run writes nothing
        const again = await start(["run", "--stream", stream], { cwd: dir, env }).done
        expect(again.code).toBe(0)
        expect(summaries(again)[0]).toMatchObject({ inserted: 0, updated: 0 })

        console.log(
          `crash.test ${store}/${order} seed ${comboSeed}: full run ${fullMs} ms (start-up ${startupMs} ms), ` +
            `${kills} kills in ${attempts} runs, ${finishedBeforeKill} landed after the run had finished:\n  ` +
            points.join("\n  ")
        )
      } finally {
        api.onServed = undefined
        await api.close()
      }
    }, 150_000)
  })
})
