#!/usr/bin/env node
/**
 * Cold start of the installed `ferry` bin, against `node -e 0` on the same machine and Node binary.
 *
 *   node scripts/startup.mjs [--node PATH]... [--reps 15] [--database-url URL]
 *
 * For each Node binary (default: the one running this script), medians of --reps runs of:
 *   node -e 0              the floor: Node's own start and exit
 *   ferry --version        the bin's module load alone
 *   config error           `ferry run` with an invalid config, to its exit 78
 *   first HTTP request     `ferry run` of a one-record stream, from spawn to the request reaching the
 *                          source (this process's server, so both ends read one clock); Ferry has
 *                          connected to PostgreSQL, prepared and locked the stream by then
 *   run to exit            the same run, to its exit 0
 *   without code cache     the first request again, with the bin's code cache off (a first start)
 * each with the peak RSS of the process (/usr/bin/time). One untimed warm-up run of each fills the
 * OS file cache and the bin's code cache (a directory of this run's, see bin/ferry.mjs), as cron's
 * second run onwards would find them. A database is created for the run and dropped at the end.
 */
import { execFileSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { createServer } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parseArgs } from "node:util"
import { adminQuery, median, run } from "./bench/measure.mjs"

const root = join(import.meta.dirname, "..")
const bin = join(root, "bin/ferry.mjs")
const { values: opts } = parseArgs({
  options: {
    node: { type: "string", multiple: true, default: [process.execPath] },
    reps: { type: "string", default: "15" },
    "database-url": { type: "string", default: process.env.FERRY_BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres" }
  }
})
const reps = Number(opts.reps)

// the source: one record, and the time each request arrived
let requestedAt = []
const server = createServer((req, res) => {
  requestedAt.push(performance.now())
  const body = JSON.stringify({ data: [{ id: 1, updated_at: "2024-01-01T00:00:00Z" }], next: null })
  res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) })
  res.end(body)
})
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve))
const sourceUrl = `http://127.0.0.1:${server.address().port}/items`

const database = `ferry_startup_${Date.now().toString(36)}_${randomBytes(2).toString("hex")}`
const admin = (text) => adminQuery(opts["database-url"], text)
const dbUrl = (() => {
  const u = new URL(opts["database-url"])
  u.pathname = `/${database}`
  return u.toString()
})()

const work = mkdtempSync(join(tmpdir(), "ferry-startup-"))
const good = join(work, "good")
const bad = join(work, "bad")
for (const d of [good, bad]) execFileSync("mkdir", ["-p", d])
writeFileSync(
  join(good, "ferry.config.yaml"),
  `database: { url: "\${DATABASE_URL}" }
streams:
  - name: startup
    source:
      url: ${sourceUrl}
      records: data
      pagination: { type: cursor, nextPath: next, param: cursor }
      incremental: { cursorField: updated_at, param: since, initial: "2000-01-01T00:00:00Z", order: asc }
    target:
      table: startup
      primaryKey: [id]
      columns: { id: bigint, updated_at: timestamptz }
`
)
// a typo'd field: exit 78 with the field's path
writeFileSync(join(bad, "ferry.config.yaml"), `streams:\n  - name: x\n    source: { url: 42 }\n`)

const env = {
  PATH: process.env.PATH,
  FERRY_LOG_FORMAT: "json",
  DATABASE_URL: dbUrl,
  FERRY_COMPILE_CACHE: join(work, "compile-cache")
}

const measure = async (label, node, args, cwd, expectCode, firstRequest = false, extraEnv = {}) => {
  const once = async () => {
    requestedAt = []
    const t0 = performance.now()
    const r = await run(node, args, { cwd, env: { ...env, ...extraEnv } })
    if (r.code !== expectCode) throw new Error(`${label}: exit ${r.code}, expected ${expectCode}\n${r.stderr.slice(-1500)}`)
    if (firstRequest && requestedAt.length === 0) throw new Error(`${label}: no request reached the source`)
    return { wallMs: r.wallMs, rssMb: r.rssMb, firstMs: firstRequest ? requestedAt[0] - t0 : undefined }
  }
  await once() // warm-up: file cache, compile cache
  const runs = []
  for (let i = 0; i < reps; i++) runs.push(await once())
  return {
    label,
    wallMs: median(runs.map((r) => r.wallMs)),
    firstMs: firstRequest ? median(runs.map((r) => r.firstMs)) : undefined,
    rssMb: median(runs.map((r) => r.rssMb ?? 0))
  }
}

const fmt = (ms) => `${ms.toFixed(0)} ms`
await admin(`CREATE DATABASE "${database}"`)
try {
  const lines = []
  for (const node of opts.node) {
    const version = execFileSync(node, ["--version"]).toString().trim()
    process.stderr.write(`measuring ${node} (${version}), ${reps} runs each...\n`)
    const floor = await measure("node -e 0", node, ["-e", "0"], work, 0)
    const ver = await measure("ferry --version", node, [bin, "--version"], work, 0)
    const configError = await measure("config error (exit 78)", node, [bin, "run"], bad, 78)
    const first = await measure("one-record run", node, [bin, "run"], good, 0, true)
    const uncached = await measure("without code cache", node, [bin, "run"], good, 0, true, { FERRY_COMPILE_CACHE: "off" })
    const ratio = (ms) => `${(ms / floor.wallMs).toFixed(2)}×`
    lines.push(`Node ${version} (${node})`)
    lines.push("")
    lines.push("| measurement | median | × `node -e 0` | peak RSS (MB) |")
    lines.push("| --- | ---: | ---: | ---: |")
    lines.push(`| node -e 0 | ${fmt(floor.wallMs)} | 1.00× | ${floor.rssMb.toFixed(0)} |`)
    lines.push(`| ferry --version, to exit | ${fmt(ver.wallMs)} | ${ratio(ver.wallMs)} | ${ver.rssMb.toFixed(0)} |`)
    lines.push(`| config error, to exit 78 | ${fmt(configError.wallMs)} | ${ratio(configError.wallMs)} | ${configError.rssMb.toFixed(0)} |`)
    lines.push(`| run: spawn to first HTTP request | ${fmt(first.firstMs)} | ${ratio(first.firstMs)} | |`)
    lines.push(`| run (1 record), to exit 0 | ${fmt(first.wallMs)} | ${ratio(first.wallMs)} | ${first.rssMb.toFixed(0)} |`)
    lines.push(`| without the code cache: first HTTP request | ${fmt(uncached.firstMs)} | ${ratio(uncached.firstMs)} | |`)
    lines.push("")
  }
  process.stdout.write(lines.join("\n"))
} finally {
  server.close()
  rmSync(work, { recursive: true, force: true })
  await admin(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`)
}
