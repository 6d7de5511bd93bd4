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
 * Seven streams, each with its own local truth source (scripts/truth-source.mjs). Four `merge` ones:
 * the postgres and the file checkpoint store × an `asc` source (Link pagination) and an `unsorted` one
 * (body cursor, 60 s lookback). Three that read the whole source every run, with the postgres store:
 * `write: replace` (asc), `deletes: { detect: missing, action: delete }` (unsorted, no incremental) and
 * `{ detect: missing, action: mark }` (incremental asc, `fullEvery: 1 millis`: every run is a complete
 * read). Records change between runs and during them (`updatesPerPage`: every page request changes a
 * few records first), and 5 % of page requests answer 503 (so retries, and the `retry-backoff`
 * failpoint, happen). The sources of the three also lose records: up to 2 % before each run and one per
 * page request during it, and up to 2 % of the lost ones come back (a new version) before each run.
 * The streams run side by side, each one run after another (the kills shared among them). Each run is
 * killed with SIGKILL:
 * - after a random delay within the stream's measured run time, or
 * - right after the source sent its k-th page (k random), or
 * - (the three) after the source sent its last page, at 0.4 to 1.4 times the time from there to the
 *   exit measured on the runs that completed: around the swap or the deletes, or as soon as the run
 *   logs that the swap (`target.replaced`) or the deletes (`deletes.missing`) committed, or
 * - by a random failpoint (FERRY_FAILPOINT=<point>:<n>, src/lib/Failpoint.ts): after-fetch, after-upsert,
 *   before-commit, after-commit or retry-backoff (and mid-swap for replace), at a random pass n (up to
 *   6 for the commits of the three, whose last transaction is the swap or the deletes).
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
 * `write: replace` (P: T before the run; no checkpoint): T is exactly P, or exactly what the run read:
 * the ids the source served during the run, each at a version served for it; after a run that exited
 * 0, the read, and no staging table left. Never a mix, never empty, no row the run did not read.
 * `detect: missing` (P as above; ids come back only between runs): every id of S that P held is in T,
 * and (mark) not newly marked: a kill never deletes what is there; no row the source never had; after
 * a run that exited 0, every id of S is in T unmarked, and every row of a record gone before the run is
 * deleted (marked). The mark stream's checkpoint is checked as above (its marked rows count as S).
 * Then, on a quiet source, one run to completion per stream: exit 0, 0 missing, 0 extra, 0 stale
 * (every column at S's version), C = S's greatest cursor (mark: T's greatest); replace: T is exactly S;
 * delete: exactly S's ids; mark: the unmarked rows exactly S, the marked ones records gone. One more
 * run writes (deletes, marks) nothing; replace: T is S again.
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
import {
  checkpointViolations,
  deleteViolations,
  diff,
  msOf,
  readCheckpoint,
  readTarget,
  replaceViolations,
  runRowViolations,
  sameTable
} from "./truth-check.mjs"
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
/** hard deletes: the streams that read everything lose up to this fraction of the source before a run, and get up to as many back */
const REMOVE_FRACTION = 0.02
const REMOVES_PER_PAGE = 1

/**
 * The streams: `merge` ones per store × order, and three that read the whole source every run (a
 * source that also loses records between runs and during them, and gets some back between runs):
 * `write: replace` (asc: a record changed mid-run is served again at the end), `detect: missing` with
 * `action: delete` (unsorted, no incremental) and with `action: mark` (incremental asc with `fullEvery:
 * 1 millis`: every run is a complete read from `initial`, which ferry.runs decides; its checkpoint is
 * checked as the merge streams' are).
 */
const STREAMS = [
  { kind: "merge", store: "postgres", order: "asc" },
  { kind: "merge", store: "postgres", order: "unsorted" },
  { kind: "merge", store: "file", order: "asc" },
  { kind: "merge", store: "file", order: "unsorted" },
  { kind: "replace", store: "postgres", order: "asc", name: "chaos_replace" },
  { kind: "delete", store: "postgres", order: "unsorted", name: "chaos_missing_delete" },
  { kind: "mark", store: "postgres", order: "asc", name: "chaos_missing_mark" }
]

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
  for (let i = 0; i < STREAMS.length; i++) instances.push(await open())
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

/** the stream's options beyond merge, per kind */
const streamOptions = {
  merge: {},
  replace: { incremental: false, write: "replace" },
  delete: { incremental: false, deletes: "{ detect: missing, action: delete }" },
  mark: { deletes: "{ detect: missing, action: mark }", fullEvery: "1 millis" }
}

const configYaml = (api, name, { kind, order, store }) => `
database: { url: "\${DATABASE_URL}" }
${store === "file" ? "checkpoint: { store: file, path: ./checkpoints.json }" : ""}
streams:${
  truthStreamYaml({
    url: api.url,
    name,
    order,
    lookbackMs: UNSORTED_LOOKBACK_MS,
    retry: "{ attempts: 6, base: 20 millis, max: 200 millis }",
    ...streamOptions[kind]
  })
}`

const makeCombo = async (stream, index) => {
  const { kind, order, store } = stream
  const seed = SEED + index
  const api = await startTruthApi({ count: RECORDS, order, pagination: order === "asc" ? "link" : "cursor", pageSize: PAGE, seed })
  const name = stream.name ?? `chaos_${store}_${order}`
  const dir = mkdtempSync(join(tmpdir(), "ferry-chaos-"))
  writeFileSync(join(dir, "ferry.config.yaml"), configYaml(api, name, stream))
  return {
    kind,
    store,
    order,
    name,
    /** reads the whole source every run (no incremental, or fullEvery always due) */
    readsAll: kind !== "merge",
    /** has a checkpoint to check */
    incremental: kind === "merge" || kind === "mark",
    /** T after the previous run (replace and deletes: what a run may keep or must not lose) */
    table: new Map(),
    /** what the runs of replace and deletes did (the summary shows the kills landed on both sides) */
    effects: { swapped: 0, swappedKilled: 0, kept: 0, acted: 0, actedKilled: 0 },
    url: urlOf(index),
    query: queryOn(urlOf(index)),
    api,
    dir,
    random: prng(seed ^ 0xc4a05),
    lookbackMs: order === "unsorted" ? UNSORTED_LOOKBACK_MS : 0,
    previous: undefined,
    /** a run's duration, spawn to exit, measured on the runs that completed */
    expectedMs: 2500,
    /** (the streams that read everything) from the last page served to the exit, on the runs that completed */
    tailMs: 400,
    runs: 0,
    landed: 0,
    byKind: {},
    violations: []
  }
}

const combos = []
for (const stream of STREAMS) combos.push(await makeCombo(stream, combos.length))

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

/** `onStderr(all so far)` is called as the run writes to stderr (its JSON logs) */
const runFerry = (combo, args, env = {}, onStderr) => {
  const child = spawn(process.execPath, [bin, ...args], {
    cwd: combo.dir,
    env: { PATH: process.env.PATH, FERRY_LOG_FORMAT: "json", DATABASE_URL: combo.url, ...env },
    stdio: ["ignore", "ignore", "pipe"]
  })
  children.add(child)
  let stderr = ""
  child.stderr.on("data", (d) => {
    stderr += d
    onStderr?.(stderr)
  })
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

/**
 * S for the checkpoint checks of a `mark` stream: the source's records, and the rows T holds of
 * records gone (a marked row is meant to stay; whether it should be there is deleteViolations' check).
 */
const withGoneRows = (truth, target) => {
  const out = new Map(truth)
  for (const [id, row] of target) {
    if (!truth.has(id)) out.set(id, { id, name: row.name, amount: row.amount, version: row.version, updated_at: new Date(row.ms).toISOString() })
  }
  return out
}

/** a replace run that exited 0 leaves no staging table */
const stagingLeft = async (combo) => {
  const [{ left }] = await combo.query(`SELECT to_regclass($1) IS NOT NULL AS left`, [`public."${combo.name}__ferry_staging"`])
  return left ? [`the staging table ${combo.name}__ferry_staging is left after a run that exited 0`] : []
}

const attempt = async (combo) => {
  const { api, random } = combo
  combo.runs++
  const label = `${combo.name} run ${combo.runs}`
  // keep work for every run: with `asc` the checkpoint reaches the end, so change records until at
  // least half the source is left to read (in groups sharing a cursor), plus a few random changes
  // the streams that read everything: records go (hard deletes) and some come back, before the run
  const before = combo.readsAll ? undefined : await checkpointOf(combo)
  const from = before === undefined ? undefined : new Date(msOf(before) - combo.lookbackMs).toISOString()
  if (combo.readsAll) {
    api.remove(Math.floor(random() * RECORDS * REMOVE_FRACTION))
    api.restore(Math.floor(random() * RECORDS * REMOVE_FRACTION))
  }
  while (api.countSince(from) < RECORDS / 2) api.change(Math.ceil(RECORDS / 20))
  api.change(Math.floor(random() * 20))
  const remaining = api.countSince(from)
  const pages = Math.ceil(remaining / PAGE)

  // the merge streams draw as they always did (same seed, same choices); the others may also be
  // killed around their end (the swap, the deletes), at a failpoint of a later transaction, or mid-swap
  const r = random()
  const kind = r < 0.3 ? "time" : r < 0.5 ? "page" : combo.readsAll && r < 0.65 ? "end" : combo.readsAll && r < 0.75 ? "done" : "failpoint"
  let env = {}
  let point
  if (kind === "failpoint") {
    const name = pick(random, combo.kind === "replace" ? [...POINTS, "mid-swap"] : POINTS)
    const late = name === "before-commit" || name === "after-commit" ? (combo.readsAll ? 6 : 3) : 3
    const n = name === "after-fetch"
      ? 1 + Math.floor(random() * pages)
      : name === "mid-swap"
      ? 1
      : 1 + Math.floor(random() * (name === "retry-backoff" ? 2 : late))
    env = { FERRY_FAILPOINT: `${name}:${n}` }
    point = `failpoint ${name}:${n}`
  }
  api.updatesPerPage = UPDATES_PER_PAGE
  api.failRate = FAIL_RATE
  api.delayMs = PAGE_DELAY_MS
  if (combo.readsAll) {
    api.removesPerPage = REMOVES_PER_PAGE
    api.served = new Map()
    api.removed = new Set()
  }
  const basePages = api.pagesServed()
  const spawned = Date.now()
  // "done": killed as soon as the run logs that its swap (deletes) committed, before it records its end
  const doneLog = combo.kind === "replace" ? `"msg":"target.replaced"` : `"msg":"deletes.missing"`
  const running = runFerry(combo, ["run"], env, kind === "done" ? (text) => text.includes(doneLog) && running.child.kill("SIGKILL") : undefined)
  if (kind === "done") point = `kill on the log line ${doneLog}`
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
  // the end of a run that reads everything (its last batch, then the swap or the deletes): the time from
  // the last page to the exit, measured on the runs that completed; "end" kills land across all of it
  let lastPageAt
  const watch = api.onServed
  if (combo.readsAll) {
    const delay = kind === "end" ? Math.floor((0.4 + random()) * combo.tailMs) : undefined
    api.onServed = (n, last) => {
      if (last) {
        lastPageAt = Date.now()
        if (delay !== undefined) timer = setTimeout(() => running.child.kill("SIGKILL"), delay)
      }
      watch?.(n, last)
    }
    if (delay !== undefined) point = `kill ${delay} ms after the last page (of ~${combo.tailMs} ms to the exit)`
  }
  const result = await running.done
  clearTimeout(timer)
  api.onServed = undefined
  api.updatesPerPage = 0
  api.removesPerPage = 0
  api.failRate = 0
  api.delayMs = 0
  const served = api.served
  const removed = api.removed
  api.served = undefined
  api.removed = undefined

  const landed = result.signal === "SIGKILL"
  const violations = []
  if (landed) {
    combo.landed++
    combo.byKind[kind] = (combo.byKind[kind] ?? 0) + 1
  } else if (result.code !== 0) violations.push(`exited ${result.code ?? result.signal} without a kill: ${tail(result.stderr)}`)
  else {
    combo.expectedMs = Math.round(combo.expectedMs * 0.5 + (Date.now() - spawned) * 0.5)
    if (lastPageAt !== undefined) combo.tailMs = Math.round(combo.tailMs * 0.5 + (Date.now() - lastPageAt) * 0.5)
  }

  const checkpoint = combo.incremental ? await checkpointOf(combo) : undefined
  const target = await readTarget(combo.query, combo.name, "public", { marked: combo.kind === "mark" })
  let finished = !landed && result.code === 0
  if (landed) {
    const runId = logsOf(result.stderr).find((l) => typeof l.run_id === "string")?.run_id
    const runs = await runRowViolations(combo.query, runId, combo.name, checkpoint)
    violations.push(...runs.violations)
    finished = runs.finished
  }
  const truth = api.truth()
  if (combo.incremental) {
    violations.push(...checkpointViolations({
      truth: combo.kind === "mark" ? withGoneRows(truth, target) : truth,
      target,
      checkpoint,
      previous: combo.previous,
      store: combo.store,
      order: combo.order,
      lookbackMs: combo.lookbackMs,
      completed: finished
    }))
  }
  if (combo.kind === "replace") {
    violations.push(...replaceViolations({ previous: combo.table, target, served, completed: finished }))
    if (finished) violations.push(...await stagingLeft(combo))
    // how often a run (killed or not) swapped, and how often a killed one left the old table
    if (!sameTable(combo.table, target)) combo.effects[landed ? "swappedKilled" : "swapped"]++
    else if (landed) combo.effects.kept++
  } else if (combo.kind !== "merge") {
    violations.push(...deleteViolations({ previous: combo.table, target, truth, gone: api.gone(), removed, action: combo.kind, completed: finished }))
    // the rows of records gone that this run deleted or marked (by a killed run, too: after the deletes' COMMIT)
    let acted = 0
    for (const [id, row] of combo.table) {
      if (!truth.has(id) && (target.get(id) === undefined || (target.get(id).marked && !row.marked))) acted++
    }
    combo.effects[landed ? "actedKilled" : "acted"] += acted
  }
  combo.table = target
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

/** the final run of a `merge` stream: the table is the source, C its greatest cursor, a run after writes nothing */
const finalMerge = async (combo) => {
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

/**
 * The final run of a stream that reads everything, on a quiet source: replace, the table is exactly the
 * source (no staging table left); delete, exactly the source's ids at their versions; mark, the unmarked
 * rows exactly the source, the marked ones records gone. A run after it: the same table, and (deletes)
 * nothing written, deleted or marked.
 */
const finalWhole = async (combo) => {
  const { api } = combo
  const mark = combo.kind === "mark"
  const check = async (when) => {
    const target = await readTarget(combo.query, combo.name, "public", { marked: mark })
    const truth = api.truth()
    const unmarked = new Map([...target].filter(([, row]) => row.marked !== true))
    const { extra, missing, stale } = diff(truth, unmarked)
    const badMarks = [...target].filter(([id, row]) => row.marked === true && (truth.has(id) || !api.gone().has(id))).map(([id]) => id)
    combo.final ??= { missing: missing.length, extra: extra.length, stale: stale.length, ...(mark ? { marked: target.size - unmarked.size } : {}) }
    if (missing.length + extra.length + stale.length + badMarks.length > 0) {
      combo.violations.push(
        `${when}: ${missing.length} missing, ${extra.length} extra, ${stale.length} stale, ${badMarks.length} marked but not gone ` +
          `(${[...missing, ...extra, ...stale, ...badMarks].slice(0, 5).join(", ")})`
      )
    }
    if (combo.kind === "replace") combo.violations.push(...(await stagingLeft(combo)).map((v) => `${when}: ${v}`))
    return target
  }
  const first = await runFerry(combo, ["run"]).done
  if (first.code !== 0) combo.violations.push(`final run exited ${first.code ?? first.signal}: ${tail(first.stderr)}`)
  const target = await check("final")
  if (mark) {
    const checkpoint = await checkpointOf(combo)
    const greatest = Math.max(...[...target.values()].map((row) => row.ms))
    if (msOf(checkpoint) !== greatest) combo.violations.push(`final checkpoint ${checkpoint}, the table's greatest cursor ${new Date(greatest).toISOString()}`)
  }
  const again = await runFerry(combo, ["run"]).done
  await check("a run after the final one")
  const summary = logsOf(again.stderr).find((l) => l.msg === "run.summary")
  const wrote = combo.kind === "replace" ? 0 : (summary?.inserted ?? 0) + (summary?.updated ?? 0) + (summary?.missing ?? 0)
  if (again.code !== 0 || summary === undefined || wrote !== 0) {
    combo.violations.push(`a run after the final one exited ${again.code} and wrote, deleted or marked ${wrote} rows`)
  }
}

/** the final runs of a stream; their violations name it */
const finalRun = async (combo) => {
  const from = combo.violations.length
  await (combo.kind === "merge" ? finalMerge(combo) : finalWhole(combo))
  combo.violations.splice(from, Infinity, ...combo.violations.slice(from).map((v) => `${combo.name}: ${v}`))
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
      (c.final?.marked === undefined ? "" : `, ${c.final.marked} marked (records gone)`) +
      (c.kind === "replace"
        ? `; swapped by ${c.effects.swapped} runs that exited 0 and ${c.effects.swappedKilled} killed after the swap, ${c.effects.kept} killed runs kept the old table`
        : "") +
      (c.kind === "delete" || c.kind === "mark"
        ? `; ${c.effects.acted} rows ${c.kind === "mark" ? "marked" : "deleted"} by runs that exited 0, ${c.effects.actedKilled} by killed runs (after the COMMIT)`
        : "") +
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
