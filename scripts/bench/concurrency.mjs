#!/usr/bin/env node
/**
 * `ferry run --concurrency N` against a slow source: S streams of P pages each, every response held for
 * a fixed latency (an API's, not the machine's), timed whole (start-up to exit) for each N. Not a test.
 *
 *   node scripts/bench/concurrency.mjs [--streams 20] [--pages 5] [--latency-ms 100] [--levels 1,2,4,8]
 *                                      [--reps 3] [--database-url postgres://postgres@127.0.0.1:5432/postgres]
 *
 * Prints one line per N: the median wall time of the runs, and its ratio to N = 1. Each run is a full
 * refresh over the same tables (the second and later runs write nothing new: the time is the source's
 * and Ferry's own, not the inserts').
 */
import { spawn } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { createServer } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parseArgs } from "node:util"
import pg from "pg"

const root = join(import.meta.dirname, "..", "..")
const { values: o } = parseArgs({
  options: {
    streams: { type: "string", default: "20" },
    pages: { type: "string", default: "5" },
    "latency-ms": { type: "string", default: "100" },
    levels: { type: "string", default: "1,2,4,8" },
    reps: { type: "string", default: "3" },
    "database-url": { type: "string", default: process.env.FERRY_BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres" }
  }
})
const streams = Number(o.streams)
const pages = Number(o.pages)
const latency = Number(o["latency-ms"])
const levels = o.levels.split(",").map(Number)
const reps = Number(o.reps)

const server = createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://127.0.0.1")
  const page = Number(url.searchParams.get("page") ?? "1")
  const headers = { "content-type": "application/json" }
  if (page < pages) headers.link = `<http://${req.headers.host}${url.pathname}?page=${page + 1}>; rel="next"`
  const records = Array.from({ length: 100 }, (_, i) => ({ id: page * 1000 + i, name: `r${i}` }))
  setTimeout(() => res.writeHead(200, headers).end(JSON.stringify(records)), latency)
})
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve))
const source = `http://127.0.0.1:${server.address().port}`

const admin = new pg.Client({ connectionString: o["database-url"] })
await admin.connect()
const database = `ferry_bench_concurrency_${process.pid}`
await admin.query(`CREATE DATABASE ${database}`)
const url = new URL(o["database-url"])
url.pathname = `/${database}`

const dir = mkdtempSync(join(tmpdir(), "ferry-bench-concurrency-"))
const list = Array.from({ length: streams }, (_, i) => `
  - name: s${i}
    source: { url: "${source}/s${i}", pagination: { type: link } }
    target: { table: s${i}, primaryKey: [id], columns: { id: bigint, name: text } }`).join("")
writeFileSync(join(dir, "ferry.config.yaml"), `database: { url: "${url}" }\nstreams:${list}\n`)

/** one run, timed whole; asynchronous: the source answers from this process's event loop */
const time = (n) =>
  new Promise((resolve, reject) => {
    const started = performance.now()
    const child = spawn(process.execPath, [join(root, "bin", "ferry.mjs"), "run", "--full-refresh", "--concurrency", String(n)], {
      cwd: dir,
      stdio: ["ignore", "ignore", "ignore"]
    })
    child.on("error", reject)
    child.on("exit", (code) => (code === 0 ? resolve(performance.now() - started) : reject(new Error(`ferry run exited ${code}`))))
  })

try {
  await time(1) // creates the tables: every timed run then finds them filled
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
  const results = new Map(levels.map((n) => [n, []]))
  // interleaved: a drift of the machine's speed touches every level alike
  for (let r = 0; r < reps; r++) for (const n of levels) results.get(n).push(await time(n))
  const base = median(results.get(levels[0]))
  console.log(`${streams} streams x ${pages} pages, ${latency} ms per response, ${reps} runs each (median wall time)`)
  for (const n of levels) {
    const m = median(results.get(n))
    console.log(`--concurrency ${String(n).padEnd(3)} ${(m / 1000).toFixed(2)} s   ${(m / base).toFixed(2)} x of --concurrency ${levels[0]}`)
  }
} finally {
  server.close()
  await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)
  await admin.end()
}
