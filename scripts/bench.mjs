#!/usr/bin/env node
/**
 * `npm run bench`: Ferry against the floor (raw fetch + raw COPY) and the classic cron script, on one
 * machine, with the same data, several repetitions, medians. Not part of the tests.
 *
 *   node scripts/bench.mjs [--quick] [--sizes 50000,500000] [--reps 3] [--node PATH]
 *                          [--naive-limit 20000] [--big-page-mb 50] [--big-records N] [--page-size 1000]
 *                          [--database-url postgres://postgres@127.0.0.1:5432/postgres] [--json FILE]
 *                          [--cpu-prof DIR] [--skip server,fetch,load,lean,naive,noop,one,big]
 *                          [--ferry-node-args "--max-semi-space-size=4 ..."]
 *
 * For each N: a source server (its own process, pages precomputed) serving N records; then, in
 * interleaved rounds (each round runs each of these once, in a rotating order, after a forced
 * PostgreSQL CHECKPOINT that is not timed):
 *   server      the source server alone: bytes only, no JSON.parse, no start-up
 *   raw fetch   scripts/bench/fetch-client.mjs: fetch + JSON.parse every page, discard
 *   raw load    psql \copy of the same N rows (a CSV written beforehand) into an empty table of the same shape
 *   lean        scripts/bench/lean-loader.mjs: the same checks, dedupe, cursor and COPY batches as Ferry's
 *               first load, hand-written without Effect (the reference for Ferry's own overhead)
 *   ferry full  `node bin/ferry.mjs run`, cold start to exit, into an empty table
 * and after them, in turn:
 *   naive       scripts/bench/naive.mjs: fetch a page, INSERT ... ON CONFLICT one row at a time
 *               (on the first --naive-limit records; its time is extrapolated linearly to N)
 *   ferry no-op the same again, nothing changed at the source
 *   ferry 1%    1% of the records changed at the source first
 * and, once, Ferry against a source whose pages are --big-page-mb MB each (memory must stay bounded).
 * Every run's counts are checked (a fast wrong answer is no result). A database is created for the run
 * and dropped at the end.
 */
import { randomBytes } from "node:crypto"
import { cpus, loadavg, totalmem, tmpdir } from "node:os"
import { copyFileSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { execFileSync } from "node:child_process"
import { parseArgs } from "node:util"
import pg from "pg"
import { columns, createTableSql, csvLine, record } from "./bench/data.mjs"
import { adminQuery, haveTime, median, run, runOk, startReady } from "./bench/measure.mjs"

const root = join(import.meta.dirname, "..")
const { values: opts } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    sizes: { type: "string" },
    reps: { type: "string" },
    node: { type: "string", default: process.execPath },
    "naive-limit": { type: "string" },
    "big-page-mb": { type: "string" },
    "big-records": { type: "string" },
    "page-size": { type: "string", default: "1000" },
    "database-url": { type: "string", default: process.env.FERRY_BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres" },
    json: { type: "string" },
    "cpu-prof": { type: "string" },
    skip: { type: "string" },
    "ferry-node-args": { type: "string", default: "" }
  }
})
const quick = opts.quick
const sizes = (opts.sizes ?? (quick ? "5000,50000" : "50000,500000")).split(",").map(Number)
const reps = Number(opts.reps ?? (quick ? 2 : 3))
const naiveLimit = Number(opts["naive-limit"] ?? (quick ? 2000 : 20000))
const bigPageMb = Number(opts["big-page-mb"] ?? (quick ? 10 : 50))
const bigRecords = Number(opts["big-records"] ?? (quick ? 50000 : 500000))
const pageSize = Number(opts["page-size"])
const nodeBin = opts.node
const skip = opts.skip?.split(",") ?? []
const wanted = (step) => !skip.includes(step)
/** extra Node flags for every Ferry run (to measure V8 heap settings, say) */
const ferryNodeArgs = opts["ferry-node-args"].split(" ").filter((a) => a !== "")
const INITIAL = "2000-01-01T00:00:00Z"

const log = (...xs) => process.stderr.write(xs.join(" ") + "\n")
const fmtMs = (ms) => (ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`)
const fmtRate = (n, ms) => `${Math.round((n / ms) * 1000).toLocaleString("en-US")}`

// ---------------------------------------------------------------------------------------------
// The database of this run

const benchDb = `ferry_bench_${Date.now().toString(36)}_${randomBytes(2).toString("hex")}`
const withDatabase = (url, database) => {
  const u = new URL(url)
  u.pathname = `/${database}`
  return u.toString()
}
const dbUrl = withDatabase(opts["database-url"], benchDb)
const admin = (text) => adminQuery(opts["database-url"], text)
const query = async (text, params) => {
  const client = new pg.Client({ connectionString: dbUrl })
  await client.connect()
  try {
    return (await client.query(text, params)).rows
  } finally {
    await client.end()
  }
}

const work = mkdtempSync(join(tmpdir(), "ferry-bench-"))
const children = new Set()
const cleanup = async () => {
  for (const c of children) c.kill("SIGTERM")
  rmSync(work, { recursive: true, force: true })
  await admin(`DROP DATABASE IF EXISTS "${benchDb}" WITH (FORCE)`).catch((e) => log("could not drop", benchDb, e.message))
}
process.on("SIGINT", () => void cleanup().then(() => process.exit(130)))

// ---------------------------------------------------------------------------------------------
// Pieces

const startSource = async (records, extra = []) => {
  const { child, ready } = await startReady(nodeBin, [
    join(root, "scripts/bench/source-server.mjs"),
    "--records",
    String(records),
    "--page-size",
    String(pageSize),
    ...extra
  ])
  children.add(child)
  const cpu = async () => (await (await fetch(`${ready.url}/admin/cpu`)).json()).cpuMs
  return {
    url: ready.url,
    cpu,
    mutate: async (fraction) =>
      (await (await fetch(`${ready.url}/admin/mutate?fraction=${fraction}`, { method: "POST" })).json()).changed,
    stop: () =>
      new Promise((resolve) => {
        child.once("exit", resolve)
        child.kill("SIGTERM")
        children.delete(child)
      })
  }
}

const ferryConfig = (dir, source, stream, params = {}) => {
  const cols = columns.map(([n, t]) => (n === "customer_email" ? `${n}: { type: ${t}, from: customer.email }` : `${n}: ${t}`))
  const paramLines = Object.entries(params).map(([k, v]) => `${k}: "${v}"`).join(", ")
  writeFileSync(
    join(dir, "ferry.config.yaml"),
    `database: { url: "\${DATABASE_URL}" }
streams:
  - name: ${stream}
    source:
      url: ${source.url}/items
      params: { ${paramLines} }
      records: data
      pagination: { type: cursor, nextPath: next, param: cursor }
      incremental: { cursorField: updated_at, param: since, initial: "${INITIAL}", order: asc }
    target:
      table: ${stream}
      primaryKey: [id]
      columns: { ${cols.join(", ")} }
`
  )
}

const summaryOf = (stderr) => {
  const line = stderr.split("\n").find((l) => l.includes(`"msg":"run.summary"`))
  if (line === undefined) throw new Error(`no run.summary in Ferry's output:\n${stderr.slice(-2000)}`)
  return JSON.parse(line)
}

/** a copy of the bin over an unminified bundle, so that a profile shows real function names */
const profilingBin = () => {
  const dir = join(work, "profiling")
  execFileSync("mkdir", ["-p", join(dir, "bin"), join(dir, "dist")])
  copyFileSync(join(root, "bin/ferry.mjs"), join(dir, "bin/ferry.mjs"))
  symlinkSync(join(root, "node_modules"), join(dir, "node_modules"))
  execFileSync(process.execPath, [join(root, "scripts/build.mjs"), "--bundle-only", "--no-minify", "--outfile", join(dir, "dist/ferry-cli.js")])
  return join(dir, "bin/ferry.mjs")
}

const ferry = async (dir, expect, nodeArgs = [], bin = join(root, "bin/ferry.mjs")) => {
  const result = await run(nodeBin, [...ferryNodeArgs, ...nodeArgs, bin, "run"], {
    cwd: dir,
    env: { PATH: process.env.PATH, FERRY_LOG_FORMAT: "json", DATABASE_URL: dbUrl }
  })
  if (result.code !== 0) throw new Error(`ferry exited ${result.code}\n${result.stderr.slice(-3000)}`)
  const summary = summaryOf(result.stderr)
  for (const [key, value] of Object.entries(expect)) {
    const ok = typeof value === "function" ? value(summary[key]) : summary[key] === value
    if (!ok) throw new Error(`ferry run: ${key} = ${summary[key]}, not as expected (${String(value)})`)
  }
  return { ...result, summary }
}

/** the medians and ranges of a step's measured runs */
const summarise = (label, n, runs) => {
  const walls = runs.map((r) => r.wallMs)
  return {
    label,
    n,
    reps: runs.length,
    wallMs: median(walls),
    minMs: Math.min(...walls),
    maxMs: Math.max(...walls),
    rssMb: median(runs.map((r) => r.rssMb ?? 0)),
    rssMaxMb: Math.max(...runs.map((r) => r.rssMb ?? 0)),
    extra: runs[runs.length - 1].extra
  }
}

const logRun = (label, i, r) => {
  const measured = r.extra?.measuredMs === undefined ? "" : ` (measured: ${fmtMs(r.extra.measuredMs)})`
  log(`  ${label} #${i + 1}: ${fmtMs(r.wallMs)}${measured}, ${r.rssMb?.toFixed(0) ?? "?"} MB`)
}

/**
 * Before each run that the comparison times: PostgreSQL's checkpoint, forced and not timed. A load
 * writes ~100 MB of WAL; the checkpoint it triggers (max_wal_size) flushes for many seconds in the
 * background and slowed whichever step came next by up to 10 %. Needs a superuser (or
 * pg_checkpoint); without one the runs go on as they are, and the report says so.
 */
let checkpointRefused = false
const settle = async () => {
  if (checkpointRefused) return
  await query("CHECKPOINT").catch((error) => {
    // insufficient_privilege; anything else (the server gone) fails the bench as any query would
    if (error?.code !== "42501") throw error
    checkpointRefused = true
  })
}

/** runs `once` `reps` times; each call returns a measured run */
const repeat = async (label, n, times, once) => {
  const runs = []
  for (let i = 0; i < times; i++) {
    const r = await once(i)
    runs.push(r)
    logRun(label, i, r)
  }
  return summarise(label, n, runs)
}

/**
 * The steps the ratios compare, interleaved: each round runs every step once, in an order that
 * rotates from round to round, so that what the machine does in a given minute (another process, the
 * page cache, PostgreSQL's background writes) falls on all of them alike (issue 17: "medians of
 * interleaved runs in one bench run"). `steps`: [key, label, once(i)].
 */
const interleave = async (n, times, steps) => {
  const runs = steps.map(() => [])
  for (let i = 0; i < times; i++) {
    for (let k = 0; k < steps.length; k++) {
      const s = (i + k) % steps.length
      const [, label, once] = steps[s]
      await settle()
      const r = await once(i)
      runs[s].push(r)
      logRun(label, i, r)
    }
  }
  return Object.fromEntries(steps.map(([key, label], s) => [key, summarise(label, n, runs[s])]))
}

// ---------------------------------------------------------------------------------------------
// One size

const benchSize = async (n) => {
  log(`\nN = ${n.toLocaleString("en-US")}`)
  const source = await startSource(n)
  const results = {}
  const firstUrl = `${source.url}/items?since=${encodeURIComponent(INITIAL)}`

  // raw load's input: the same rows, as CSV
  const csv = join(work, `rows-${n}.csv`)
  const lines = []
  for (let i = 0; i < n; i++) lines.push(csvLine(record(i)))
  writeFileSync(csv, lines.join(""))

  const dir = mkdtempSync(join(work, "ferry-"))
  const stream = `items_${n}`
  ferryConfig(dir, source, stream)
  const reset = async () => {
    await query(`DROP TABLE IF EXISTS ${stream}`)
    await query(`DELETE FROM ferry.state WHERE stream = $1`, [stream]).catch(() => undefined)
  }

  let leanDigest
  const steps = [
    // the server on its own: bytes only, no JSON.parse in the client
    // (its time is the client's first request to last byte: no process start-up)
    ["server", "source server alone (bytes only, no start-up)", async () => {
      const r = await runOk(nodeBin, [join(root, "scripts/bench/fetch-client.mjs"), firstUrl, "--no-parse"])
      return { ...r, wallMs: JSON.parse(r.stdout).elapsedMs }
    }],
    ["fetch", "raw fetch", async () => {
      const r = await runOk(nodeBin, [join(root, "scripts/bench/fetch-client.mjs"), firstUrl])
      const out = JSON.parse(r.stdout)
      if (out.records !== n) throw new Error(`raw fetch read ${out.records} records, not ${n}`)
      return { ...r, extra: { pages: out.pages, mb: out.bytes / 1e6 } }
    }],
    // raw load: the same rows into an empty table of the same shape
    ["load", "raw load (psql \\copy)", async (i) => {
      const table = `raw_${n}_${i}`
      await query(createTableSql(table))
      const r = await runOk("psql", [dbUrl, "-qc", `\\copy ${table} FROM '${csv}' WITH (FORMAT csv)`])
      const [{ count }] = await query(`SELECT count(*)::int AS count FROM ${table}`)
      if (count !== n) throw new Error(`raw load wrote ${count} rows, not ${n}`)
      await query(`DROP TABLE ${table}`)
      return r
    }],
    // the lean loader: a table of the same shape, verified against Ferry's below, value by value
    ["lean", "lean loader (no Effect, same checks, COPY batches)", async (i) => {
      const table = `lean_${n}_${i}`
      await query(createTableSql(table))
      const r = await runOk(nodeBin, [join(root, "scripts/bench/lean-loader.mjs"), firstUrl, dbUrl, table])
      const out = JSON.parse(r.stdout)
      if (out.rows !== n || out.invalid !== 0) throw new Error(`the lean loader wrote ${out.rows} rows (${out.invalid} invalid), not ${n}`)
      leanDigest = await tableDigest(table)
      await query(`DROP TABLE ${table}`)
      return { ...r, extra: { pages: out.pages } }
    }],
    // Ferry, cold start to exit, into an empty table (its own: dropped before each run)
    ["full", "ferry full load", async () => {
      await reset()
      const cpu0 = await source.cpu()
      const r = await ferry(dir, { fetched: n, inserted: n, updated: 0, quarantined: 0 })
      const serverCpuMs = (await source.cpu()) - cpu0
      return { ...r, extra: { serverCpuMs, pages: r.summary.pages } }
    }]
  ].filter(([key]) => key === "full" || wanted(key))
  Object.assign(results, await interleave(n, reps, steps))
  rmSync(csv)

  if (wanted("naive")) {
    const limit = Math.min(n, naiveLimit)
    results.naive = await repeat(`naive script (run on ${limit.toLocaleString("en-US")} records)`, n, 1, async () => {
      const table = `naive_${n}`
      await query(createTableSql(table))
      const r = await runOk(nodeBin, [join(root, "scripts/bench/naive.mjs"), firstUrl, dbUrl, table, "--limit", String(limit)])
      const [{ count }] = await query(`SELECT count(*)::int AS count FROM ${table}`)
      if (count !== limit) throw new Error(`naive wrote ${count} rows, not ${limit}`)
      await query(`DROP TABLE ${table}`)
      return { ...r, wallMs: (r.wallMs * n) / limit, extra: { measuredRecords: limit, measuredMs: r.wallMs } }
    })
  }

  // Ferry's last full load (its table is its own) stays for the incremental runs
  if (opts["cpu-prof"] && n === sizes[sizes.length - 1]) {
    await reset()
    const bin = profilingBin()
    await ferry(dir, { fetched: n, inserted: n }, ["--cpu-prof", "--cpu-prof-dir", opts["cpu-prof"]], bin)
    // the bundle beside the profile: the summary attributes its lines to source files
    copyFileSync(join(bin, "../../dist/ferry-cli.js"), join(opts["cpu-prof"], "ferry-cli.js"))
    log(`  profile of a full load written to ${opts["cpu-prof"]} (summary: node scripts/bench/cpuprofile-summary.mjs FILE)`)
  }
  const [{ count }] = await query(`SELECT count(*)::int AS count FROM ${stream}`)
  if (count !== n) throw new Error(`ferry left ${count} rows, not ${n}`)
  if (leanDigest !== undefined && (await tableDigest(stream)) !== leanDigest) {
    throw new Error(`the lean loader's table and Ferry's differ (${stream})`)
  }

  if (wanted("noop")) results.noop = await repeat("ferry incremental no-op", n, reps, () =>
    ferry(dir, { inserted: 0, updated: 0, quarantined: 0 }))

  if (wanted("one")) results.one = await repeat("ferry incremental 1%", n, reps, async () => {
    const changed = await source.mutate(0.01)
    const r = await ferry(dir, { inserted: 0, updated: changed, quarantined: 0 })
    return { ...r, extra: { changed } }
  })
  // the table holds exactly what the source serves now
  const [{ amount }] = await query(`SELECT sum(amount)::text AS amount FROM ${stream}`)
  const expected = await expectedSum(source.url, n)
  if (amount !== expected) throw new Error(`after the 1% runs the table's sum(amount) is ${amount}, the source's ${expected}`)

  await query(`DROP TABLE ${stream}`)
  await source.stop()
  return results
}

/** every value of a bench table, in key order: two loads of the same source give the same digest */
const tableDigest = async (table) => {
  const names = columns.map(([name]) => name).join(", ")
  const [{ digest }] = await query(`SELECT md5(string_agg(row(${names})::text, E'\\n' ORDER BY id)) AS digest FROM ${table}`)
  return digest
}

/** sum(amount) of what the source serves now, read with a plain client */
const expectedSum = async (url, n) => {
  let next = `${url}/items?size=${Math.min(n, 50000)}`
  let cents = 0n
  for (;;) {
    const body = await (await fetch(next)).json()
    for (const r of body.data) cents += BigInt(Math.round(r.amount * 100))
    if (body.next === null) break
    next = `${url}/items?size=${Math.min(n, 50000)}&cursor=${body.next}`
  }
  const s = cents.toString().padStart(3, "0")
  return `${s.slice(0, -2)}.${s.slice(-2)}`
}

// ---------------------------------------------------------------------------------------------
// Large pages: the source answers pages of ~bigPageMb MB

const benchBigPages = async () => {
  const avg = Buffer.byteLength(JSON.stringify(record(123456))) + 1
  const perPage = Math.round((bigPageMb * 1e6) / avg)
  log(`\nlarge pages: ${bigRecords.toLocaleString("en-US")} records, ${perPage.toLocaleString("en-US")} per page (~${bigPageMb} MB)`)
  const source = await startSource(bigRecords, ["--precompute", String(perPage)])
  const firstUrl = `${source.url}/items?since=${encodeURIComponent(INITIAL)}&size=${perPage}`
  const fetchRun = await repeat("raw fetch, large pages", bigRecords, 1, async () => {
    const r = await runOk(nodeBin, [join(root, "scripts/bench/fetch-client.mjs"), firstUrl])
    const out = JSON.parse(r.stdout)
    return { ...r, extra: { pages: out.pages, mb: out.bytes / 1e6 } }
  })
  const dir = mkdtempSync(join(work, "ferry-big-"))
  const stream = "items_big"
  ferryConfig(dir, source, stream, { size: perPage })
  const full = await repeat("ferry full load, large pages", bigRecords, 1, () =>
    ferry(dir, { fetched: bigRecords, inserted: bigRecords, quarantined: 0 }))
  await query(`DROP TABLE ${stream}`)
  await source.stop()
  return { perPage, pageMb: (perPage * avg) / 1e6, fetch: fetchRun, full }
}

// ---------------------------------------------------------------------------------------------
// Report

const machine = () => {
  const cpu = cpus()
  const nodeVersion = execFileSync(nodeBin, ["--version"]).toString().trim()
  const pgVersion = execFileSync("psql", [opts["database-url"], "-Atc", "SHOW server_version"]).toString().trim()
  let os = ""
  try {
    os = /PRETTY_NAME="([^"]+)"/.exec(readFileSync("/etc/os-release", "utf8"))?.[1] ?? ""
  } catch {}
  return `${cpu.length} × ${cpu[0]?.model.trim()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${os}, ` +
    `Node ${nodeVersion}, PostgreSQL ${pgVersion} (local, default settings)`
}

const row = (r) =>
  `| ${r.label} | ${r.n.toLocaleString("en-US")} | ${fmtMs(r.wallMs)} | ${r.reps > 1 ? `${fmtMs(r.minMs)}–${fmtMs(r.maxMs)}` : "1 run"} | ` +
  `${fmtRate(r.n, r.wallMs)} | ${r.rssMb ? r.rssMb.toFixed(0) : "?"}${r.reps > 1 ? ` (max ${r.rssMaxMb.toFixed(0)})` : ""} |`

const report = (all, big) => {
  const out = []
  out.push(`Machine: ${machine()}`)
  out.push(`Load average (1 min) at the start: ${startLoad.toFixed(2)}, at the end: ${loadavg()[0].toFixed(2)} (other work on the machine skews the times).`)
  out.push(`Run: \`node scripts/bench.mjs ${process.argv.slice(2).join(" ")}\`, ${reps} repetition(s), medians; page size ${pageSize} records.`)
  const names = { server: "source server", fetch: "raw fetch", load: "raw load", lean: "lean loader", full: "Ferry full-load" }
  const interleaved = Object.keys(names).filter((key) => all.some(({ results }) => results[key] !== undefined)).map((key) => names[key])
  out.push(`The ${interleaved.join(", ")} runs were interleaved, each after a ` +
    (checkpointRefused ? "PostgreSQL CHECKPOINT that was refused (not a superuser): none was forced." : "forced PostgreSQL CHECKPOINT (not timed)."))
  out.push("")
  out.push("| step | N | wall (median) | range | records/s | peak RSS, median (MB) |")
  out.push("| --- | ---: | ---: | ---: | ---: | ---: |")
  for (const { results } of all) {
    for (const key of ["server", "fetch", "load", "lean", "naive", "full", "noop", "one"]) {
      const r = results[key]
      if (r === undefined) continue
      if (key === "naive") {
        out.push(row({ ...r, label: `${r.label}, extrapolated` }))
      } else out.push(row(r))
    }
  }
  if (big) {
    out.push(row({ ...big.fetch, label: `${big.fetch.label} (${big.pageMb.toFixed(0)} MB pages)` }))
    out.push(row({ ...big.full, label: `${big.full.label} (${big.pageMb.toFixed(0)} MB pages)` }))
  }
  out.push("")
  out.push("| N | Ferry / (raw fetch + raw load) | Ferry / lean loader | naive / Ferry | server CPU during Ferry's full load |")
  out.push("| ---: | ---: | ---: | ---: | ---: |")
  for (const { n, results } of all) {
    if (results.fetch === undefined || results.load === undefined || results.full === undefined) continue
    const floor = results.fetch.wallMs + results.load.wallMs
    const naive = results.naive ? `${(results.naive.wallMs / results.full.wallMs).toFixed(1)}×` : "—"
    const cpu = results.full.extra?.serverCpuMs
    const lean = results.lean ? (results.full.wallMs / results.lean.wallMs).toFixed(2) : "—"
    out.push(
      `| ${n.toLocaleString("en-US")} | ${(results.full.wallMs / floor).toFixed(2)} | ${lean} | ${naive} | ` +
        `${cpu === undefined ? "?" : `${fmtMs(cpu)} (${((cpu / results.full.wallMs) * 100).toFixed(0)}% of one core)`} |`
    )
  }
  if (all.length >= 2 && all.every(({ results }) => results.full !== undefined)) {
    const a = all[0].results.full.rssMb
    const b = all[all.length - 1].results.full.rssMb
    out.push("")
    out.push(`Ferry full-load peak RSS (median of the runs): ${a.toFixed(0)} MB at N = ${all[0].n.toLocaleString("en-US")}, ` +
      `${b.toFixed(0)} MB at N = ${all[all.length - 1].n.toLocaleString("en-US")} (${(((b - a) / a) * 100).toFixed(0)}%).`)
  }
  return out.join("\n")
}

// ---------------------------------------------------------------------------------------------

if (!haveTime) log("warning: /usr/bin/time not found: peak RSS is not measured")
const started = performance.now()
const startLoad = loadavg()[0]
await admin(`CREATE DATABASE "${benchDb}"`)
let exitCode = 0
try {
  const all = []
  for (const n of sizes) all.push({ n, results: await benchSize(n) })
  const big = wanted("big") ? await benchBigPages() : undefined
  const text = report(all, big)
  process.stdout.write(text + "\n")
  if (opts.json) writeFileSync(opts.json, JSON.stringify({ sizes, reps, all, big, machine: machine() }, null, 2))
  log(`\nbenchmark took ${fmtMs(performance.now() - started)}`)
} catch (error) {
  log(`benchmark failed: ${error instanceof Error ? error.stack : String(error)}`)
  exitCode = 1
} finally {
  await cleanup()
}
process.exit(exitCode)
