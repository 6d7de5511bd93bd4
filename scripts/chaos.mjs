#!/usr/bin/env node
/**
 * Chaos: seeded random `kill -9`s over real runs of the `ferry` bin, then a clean run, then the target
 * compared to the source's truth. The proof of DESIGN.md guarantee 2 ("killing the process at any
 * moment and running again converges to the source exactly") that the suite runs in short form
 * (test/chaos.test.ts) and a person runs in long form:
 *
 *   npm run chaos -- --kills 200 [--seed S] [--records 6000] [--page 200] [--verbose]
 *
 * Database: a new database on the server in FERRY_TEST_DATABASE_URL or DATABASE_URL (created and
 * dropped here), else embedded Postgres: one PGlite per stream in temp directories, served over the
 * wire protocol as test/support/pg.ts does (PGlite has one session, so streams sharing one would
 * wait for each other). Needs the bin built (`npm run build`; the tests build it).
 *
 * Four streams, each with its own local truth source (scripts/truth-source.mjs): the postgres and the
 * file checkpoint store × an `asc` source (Link pagination) and an `unsorted` one (body cursor, 60 s
 * lookback). Records change between runs and during them (`updatesPerPage`: every page request
 * changes a few records first), and 5 % of page requests answer 503 (so retries, and the
 * `retry-backoff` failpoint, happen). The four streams run side by side, each one run after another
 * (a quarter of the kills each). Each run is killed with SIGKILL:
 * - after a random delay within the stream's measured run time, or
 * - right after the source sent its k-th page (k random), or
 * - by a random failpoint (FERRY_FAILPOINT=<point>:<n>, src/lib/Failpoint.ts): after-fetch, after-upsert,
 *   before-commit, after-commit or retry-backoff, at a random pass n.
 * A kill "landed" when the process died of SIGKILL; one sent after it had exited (or a failpoint the
 * run never reached n times) does not count, and that run must have exited 0.
 *
 * After EVERY run, with C the stored checkpoint, L the lookback (0 for `asc`), T the target, S the
 * source's truth at that moment (the code: scripts/truth-check.mjs):
 * - C never moves backwards;
 * - C is never AHEAD of a committed row: every record of S whose cursor is strictly before C - L is in
 *   T at its current version (nothing the next run will not read again is missing or stale), and C is
 *   at most the greatest cursor in T;
 * - C is never BEHIND a committed row where its store promises it: with the postgres store and `asc`
 *   C equals the greatest cursor in T (rows and checkpoint commit together); after a run that exited
 *   0, C equals the greatest cursor in T for every store and order (the file store may lag one
 *   transaction after a kill: it is written after the commit; `unsorted` advances only at the end);
 * - T has no id S lacks and no version newer than S's;
 * - `ferry.runs` says 'succeeded' for a killed run only if it had finished, with C as its checkpoint.
 * Then, on a quiet source, one run to completion per stream: exit 0, 0 missing, 0 extra, 0 stale
 * (every column at S's version), C = S's greatest cursor; and one more run writes nothing.
 *
 * Prints the seed, the kills that landed, and one verdict line; exits 0 only when every check held
 * and all the kills landed, 1 otherwise (2: bad arguments or setup). The same seed gives the same
 * sources, changes and kill choices; when a kill lands depends on timing, so a failure names the run.
 */
import { spawn } from "node:child_process"
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import pg from "pg"
import { checkpointViolations, diff, msOf, readCheckpoint, readTarget, runRowViolations } from "./truth-check.mjs"
import { prng, startTruthApi, truthStreamYaml } from "./truth-source.mjs"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const bin = join(root, "bin", "ferry.mjs")

const usage = "usage: npm run chaos -- [--kills N] [--seed S] [--records N] [--page N] [--verbose]"
const fail = (message) => {
  process.stderr.write(`chaos: ${message}\n${usage}\n`)
  process.exit(2)
}
let parsed
try {
  parsed = parseArgs({
    options: {
      kills: { type: "string", default: "40" },
      seed: { type: "string" },
      records: { type: "string", default: "6000" },
      page: { type: "string", default: "200" },
      verbose: { type: "boolean", default: false },
      help: { type: "boolean", default: false }
    }
  }).values
} catch (e) {
  fail(e.message)
}
if (parsed.help) {
  process.stdout.write(`${usage}\n`)
  process.exit(0)
}
const whole = (name, text, min) => {
  if (!/^\d+$/.test(text) || Number(text) < min) fail(`--${name} must be a whole number >= ${min}, got "${text}"`)
  return Number(text)
}
const KILLS = whole("kills", parsed.kills, 1)
const SEED = parsed.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : whole("seed", parsed.seed, 0)
const RECORDS = whole("records", parsed.records, 100)
const PAGE = whole("page", parsed.page, 1)
const VERBOSE = parsed.verbose
if (!existsSync(join(root, "dist", "ferry-cli.js"))) fail("dist/ferry-cli.js is missing: run `npm run build` first")

/** between-page delay of the source: runs span several 1-second batches (several transactions) */
const PAGE_DELAY_MS = 40
const UPDATES_PER_PAGE = 2
const FAIL_RATE = 0.05
const UNSORTED_LOOKBACK_MS = 60_000
const POINTS = ["after-fetch", "after-upsert", "before-commit", "after-commit", "retry-backoff"]

const started = Date.now()
const log = (line) => process.stdout.write(`${line}\n`)
const debug = (line) => VERBOSE && log(`  ${line}`)
log(`chaos: seed ${SEED} (replay: npm run chaos -- --kills ${KILLS} --seed ${SEED}), ${RECORDS} records per source`)

// ---------------------------------------------------------------------------------------------
// the database: a new one on the server, or an embedded one

const serverUrl = process.env.FERRY_TEST_DATABASE_URL || process.env.DATABASE_URL || undefined

const openDatabase = async () => {
  if (serverUrl !== undefined) {
    const name = `ferry_chaos_${SEED}_${Date.now().toString(36)}`
    const admin = async (text) => {
      const client = new pg.Client({ connectionString: serverUrl, connectionTimeoutMillis: 5000 })
      await client.connect()
      try {
        await client.query(text)
      } finally {
        await client.end()
      }
    }
    await admin(`CREATE DATABASE "${name}"`)
    const url = new URL(serverUrl)
    url.pathname = `/${name}`
    return { url: url.toString(), embedded: false, close: () => admin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`) }
  }
  // embedded: one PGlite per stream (each has ONE session: runs on one instance go one at a time),
  // copies of one initialised data directory
  const [{ PGlite }, { PGLiteSocketServer }] = await Promise.all([
    import("@electric-sql/pglite"),
    import("@electric-sql/pglite-socket")
  ])
  const template = mkdtempSync(join(tmpdir(), "ferry-chaos-pg-"))
  await (await PGlite.create(template)).close()
  const open = async () => {
    const dir = mkdtempSync(join(tmpdir(), "ferry-chaos-pg-"))
    cpSync(template, dir, { recursive: true })
    const db = await PGlite.create(dir)
    const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections: 8 })
    await server.start()
    return {
      url: `postgres://postgres@${server.getServerConn()}/postgres`,
      close: async () => {
        await server.stop()
        await db.close()
        rmSync(dir, { recursive: true, force: true })
      }
    }
  }
  const instances = []
  for (let i = 0; i < 4; i++) instances.push(await open())
  rmSync(template, { recursive: true, force: true })
  return {
    url: (i) => instances[i].url,
    embedded: true,
    close: () => Promise.all(instances.map((d) => d.close()))
  }
}

const db = await openDatabase()
/** the database of stream i: the one database on a server, its own PGlite when embedded */
const urlOf = (i) => (typeof db.url === "function" ? db.url(i) : db.url)
const queryOn = (url) => async (text, params) => {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 })
  await client.connect()
  try {
    return (await client.query(text, params)).rows
  } finally {
    await client.end()
  }
}

// ---------------------------------------------------------------------------------------------
// one stream per store × order, each with its own source

const configYaml = (api, name, store, order) => `
database: { url: "\${DATABASE_URL}" }
${store === "file" ? "checkpoint: { store: file, path: ./checkpoints.json }" : ""}
streams:${truthStreamYaml({ url: api.url, name, order, lookbackMs: UNSORTED_LOOKBACK_MS, retry: "{ attempts: 6, base: 20 millis, max: 200 millis }" })}`

const makeCombo = async (store, order, index) => {
  const seed = SEED + index
  const api = await startTruthApi({ count: RECORDS, order, pagination: order === "asc" ? "link" : "cursor", pageSize: PAGE, seed })
  const name = `chaos_${store}_${order}`
  const dir = mkdtempSync(join(tmpdir(), "ferry-chaos-"))
  writeFileSync(join(dir, "ferry.config.yaml"), configYaml(api, name, store, order))
  return {
    store,
    order,
    name,
    url: urlOf(index),
    query: queryOn(urlOf(index)),
    api,
    dir,
    random: prng(seed ^ 0xc4a05),
    lookbackMs: order === "unsorted" ? UNSORTED_LOOKBACK_MS : 0,
    previous: undefined,
    /** a run's duration, spawn to exit, measured on the runs that completed */
    expectedMs: 2500,
    runs: 0,
    landed: 0,
    byKind: {},
    violations: []
  }
}

const combos = []
for (const [store, order] of [["postgres", "asc"], ["postgres", "unsorted"], ["file", "asc"], ["file", "unsorted"]]) {
  combos.push(await makeCombo(store, order, combos.length))
}

/** the bin's processes still running: killed if the script is interrupted */
const children = new Set()
const cleanUp = async () => {
  for (const child of children) child.kill("SIGKILL")
  for (const c of combos) {
    await c.api.close()
    rmSync(c.dir, { recursive: true, force: true })
  }
  await db.close()
}
// Ctrl-C: leave no process, database or directory behind
for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]]) {
  process.once(signal, () => {
    log(`chaos: ${signal}, cleaning up`)
    // the checks in flight fail as their database goes away: not worth a stack trace now
    process.on("uncaughtException", () => {})
    process.on("unhandledRejection", () => {})
    cleanUp().finally(() => process.exit(code))
  })
}

const runFerry = (combo, args, env = {}) => {
  const child = spawn(process.execPath, [bin, ...args], {
    cwd: combo.dir,
    env: { PATH: process.env.PATH, FERRY_LOG_FORMAT: "json", DATABASE_URL: combo.url, ...env },
    stdio: ["ignore", "ignore", "pipe"]
  })
  children.add(child)
  let stderr = ""
  child.stderr.on("data", (d) => (stderr += d))
  const done = new Promise((resolve) =>
    child.on("close", (code, signal) => {
      children.delete(child)
      resolve({ code, signal, stderr })
    })
  )
  return { child, done }
}

const logsOf = (stderr) =>
  stderr.split("\n").filter((l) => l.startsWith("{")).flatMap((l) => {
    try {
      return [JSON.parse(l)]
    } catch {
      return []
    }
  })
const tail = (stderr) => stderr.trim().split("\n").slice(-3).join(" | ").slice(0, 600)

const checkpointOf = (combo) => readCheckpoint(combo.query, combo.store, combo.name, join(combo.dir, "checkpoints.json"))

// ---------------------------------------------------------------------------------------------
// one run, killed at a random moment

const pick = (random, xs) => xs[Math.floor(random() * xs.length)]

const attempt = async (combo) => {
  const { api, random } = combo
  combo.runs++
  const label = `${combo.name} run ${combo.runs}`
  // keep work for every run: with `asc` the checkpoint reaches the end, so change records until at
  // least half the source is left to read (in groups sharing a cursor), plus a few random changes
  const before = await checkpointOf(combo)
  const from = before === undefined ? undefined : new Date(msOf(before) - combo.lookbackMs).toISOString()
  while (api.countSince(from) < RECORDS / 2) api.change(Math.ceil(RECORDS / 20))
  api.change(Math.floor(random() * 20))
  const remaining = api.countSince(from)
  const pages = Math.ceil(remaining / PAGE)

  const r = random()
  const kind = r < 0.3 ? "time" : r < 0.5 ? "page" : "failpoint"
  let env = {}
  let point
  if (kind === "failpoint") {
    const name = pick(random, POINTS)
    const n = name === "after-fetch" ? 1 + Math.floor(random() * pages) : 1 + Math.floor(random() * (name === "retry-backoff" ? 2 : 3))
    env = { FERRY_FAILPOINT: `${name}:${n}` }
    point = `failpoint ${name}:${n}`
  }
  api.updatesPerPage = UPDATES_PER_PAGE
  api.failRate = FAIL_RATE
  api.delayMs = PAGE_DELAY_MS
  const basePages = api.pagesServed()
  const spawned = Date.now()
  const running = runFerry(combo, ["run"], env)
  let timer
  if (kind === "time") {
    const delay = Math.floor(random() * combo.expectedMs)
    timer = setTimeout(() => running.child.kill("SIGKILL"), delay)
    point = `kill at ${delay} ms of ~${combo.expectedMs} ms`
  } else if (kind === "page") {
    const k = 1 + Math.floor(random() * pages)
    api.onServed = (n) => {
      if (n - basePages === k) running.child.kill("SIGKILL")
    }
    point = `kill after page ${k} of ~${pages}`
  }
  const result = await running.done
  clearTimeout(timer)
  api.onServed = undefined
  api.updatesPerPage = 0
  api.failRate = 0
  api.delayMs = 0

  const landed = result.signal === "SIGKILL"
  const violations = []
  if (landed) {
    combo.landed++
    combo.byKind[kind] = (combo.byKind[kind] ?? 0) + 1
  } else if (result.code !== 0) violations.push(`exited ${result.code ?? result.signal} without a kill: ${tail(result.stderr)}`)
  else combo.expectedMs = Math.round(combo.expectedMs * 0.5 + (Date.now() - spawned) * 0.5)

  const checkpoint = await checkpointOf(combo)
  const target = await readTarget(combo.query, combo.name)
  let finished = !landed && result.code === 0
  if (landed) {
    const runId = logsOf(result.stderr).find((l) => typeof l.run_id === "string")?.run_id
    const runs = await runRowViolations(combo.query, runId, combo.name, checkpoint)
    violations.push(...runs.violations)
    finished = runs.finished
  }
  violations.push(...checkpointViolations({
    truth: api.truth(),
    target,
    checkpoint,
    previous: combo.previous,
    store: combo.store,
    order: combo.order,
    lookbackMs: combo.lookbackMs,
    completed: finished
  }))
  combo.previous = checkpoint
  const outcome = landed ? "killed" : `exited ${result.code}`
  debug(`${label}: ${point}: ${outcome} (${api.pagesServed() - basePages} pages served), checkpoint ${checkpoint ?? "none"}`)
  for (const v of violations) combo.violations.push(`${label} (${point}, ${outcome}): ${v}`)
  return landed
}

// ---------------------------------------------------------------------------------------------
// the kills, then a clean run per stream

const quota = combos.map((_, i) => Math.floor(KILLS / combos.length) + (i < KILLS % combos.length ? 1 : 0))
const killsFor = async (combo, want) => {
  // a run that ends before its kill is allowed; give up after three times the runs wanted
  while (combo.landed < want && combo.runs < want * 3 + 3) await attempt(combo)
}
await Promise.all(combos.map((combo, i) => killsFor(combo, quota[i])))

const finalRun = async (combo) => {
  const { api } = combo
  const first = await runFerry(combo, ["run"]).done
  if (first.code !== 0) combo.violations.push(`final run exited ${first.code ?? first.signal}: ${tail(first.stderr)}`)
  const target = await readTarget(combo.query, combo.name)
  const { extra, missing, stale } = diff(api.truth(), target)
  combo.final = { missing: missing.length, extra: extra.length, stale: stale.length }
  if (missing.length + extra.length + stale.length > 0) {
    combo.violations.push(
      `final: ${missing.length} missing, ${extra.length} extra, ${stale.length} stale (${[...missing, ...extra, ...stale].slice(0, 5).join(", ")})`
    )
  }
  const checkpoint = await checkpointOf(combo)
  if (checkpoint !== api.maxCursor()) combo.violations.push(`final checkpoint ${checkpoint}, the source's greatest cursor ${api.maxCursor()}`)
  const again = await runFerry(combo, ["run"]).done
  const summary = logsOf(again.stderr).find((l) => l.msg === "run.summary")
  if (again.code !== 0 || summary?.inserted !== 0 || summary?.updated !== 0) {
    combo.violations.push(`a run after the final one exited ${again.code} and wrote ${summary?.inserted} + ${summary?.updated} rows`)
  }
}
await Promise.all(combos.map(finalRun))

// ---------------------------------------------------------------------------------------------
// the verdict

const landed = combos.reduce((n, c) => n + c.landed, 0)
const runs = combos.reduce((n, c) => n + c.runs, 0)
const violations = combos.flatMap((c) => c.violations)
for (const c of combos) {
  const kinds = Object.entries(c.byKind).map(([k, n]) => `${k} ${n}`).join(", ")
  log(
    `  ${c.name}: ${c.landed} kills landed in ${c.runs} runs (${kinds || "none"}); final ` +
      `${c.final ? `${c.final.missing} missing, ${c.final.extra} extra, ${c.final.stale} stale` : "not run"}` +
      (c.violations.length > 0 ? `; ${c.violations.length} violation(s)` : "")
  )
}
for (const v of violations.slice(0, 20)) log(`  VIOLATION ${v}`)
if (violations.length > 20) log(`  … and ${violations.length - 20} more`)

await cleanUp()

const seconds = ((Date.now() - started) / 1000).toFixed(0)
const where = db.embedded ? "embedded database" : "server"
const short = landed < KILLS ? `only ${landed} of ${KILLS} kills landed` : undefined
if (violations.length === 0 && short === undefined) {
  log(
    `chaos: PASS seed ${SEED}: ${landed} kills landed in ${runs} runs (${where}, ${seconds} s); ` +
      `0 missing, 0 extra, 0 stale; the checkpoint was never ahead of nor behind the committed rows`
  )
  process.exit(0)
}
log(`chaos: FAIL seed ${SEED}: ${short ?? `${violations.length} violation(s)`}; ${landed} kills landed in ${runs} runs (${where}, ${seconds} s)`)
process.exit(1)
