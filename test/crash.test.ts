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
import { join } from "node:path"
import pg from "pg"
import { configDir, type CliResult, start, summaries } from "./support/cli.js"
import { checkpointViolations, diff, msOf, readCheckpoint, readTarget, runRowViolations } from "./support/consistency.js"
import { createTestDatabase, type TestDatabase, usingServer } from "./support/pg.js"
import { prng, startTruthApi, truthStreamYaml, type TruthApi } from "./support/truth-api.js"

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
streams:${
    streams.map((name) =>
      truthStreamYaml({
        url: api.url,
        name,
        order,
        lookbackMs: UNSORTED_LOOKBACK_MS,
        retry: "{ attempts: 2, base: 10 millis, max: 1 second }"
      })
    ).join("")
  }`)

const checkpointOf = (store: Store, dir: string, stream: string): Promise<string | undefined> =>
  readCheckpoint(db.query, store, stream, join(dir, "state", "checkpoints.json"))

const targetOf = (table: string) => readTarget(db.query, table)

const runIdOf = (result: CliResult): string | undefined => result.logs.find((l) => typeof l.run_id === "string")?.run_id

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
          const before = await checkpointOf(store, dir, stream)
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

          // never backwards, never ahead of the committed rows nor behind them (scripts/truth-check.mjs)
          const checkpoint = await checkpointOf(store, dir, stream)
          const runRow = killed ? await runRowViolations(db.query, runIdOf(result), stream, checkpoint) : undefined
          // no 'succeeded' row for a run that did not complete (unless the kill landed after it finished)
          expect(runRow?.violations ?? [], point).toEqual([])
          if (runRow?.finished === true) finishedBeforeKill++
          const violations = checkpointViolations({
            truth: api.truth(),
            target: await targetOf(stream),
            checkpoint,
            previous,
            store,
            order,
            lookbackMs,
            completed: !killed || runRow?.finished === true
          })
          expect(violations, point).toEqual([])
          previous = checkpoint
          const [{ n }] = await db.query(`SELECT count(*)::int AS n FROM ferry.runs WHERE stream = $1 AND status = 'succeeded'`, [stream])
          expect(n).toBe(exitedZero + finishedBeforeKill)
        }
        expect(kills, points.join("\n")).toBe(KILLS)

        // A run to completion on a quiet source converges exactly.
        const final = await start(["run", "--stream", stream], { cwd: dir, env }).done
        expect(final.code, final.stderr.slice(-2000)).toBe(0)
        const { extra, missing, stale } = diff(api.truth(), await targetOf(stream))
        expect({ missing: missing.length, extra: extra.length, stale: stale.length }).toEqual({ missing: 0, extra: 0, stale: 0 })
        expect(await checkpointOf(store, dir, stream)).toBe(api.maxCursor())
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
