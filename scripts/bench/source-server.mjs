#!/usr/bin/env node
/**
 * The benchmark's HTTP source, run as its own process so that it never shares a CPU's time slice
 * with the client under test more than the OS decides. Pages are serialised once (precomputed for a
 * full read, cached for any other start) and answered from a Buffer, so a page costs the server a
 * write, not a JSON.stringify.
 *
 *   node scripts/bench/source-server.mjs --records N [--page-size 1000]
 *
 *   GET  /items?since=ISO&cursor=OFFSET&size=K   { data: [...], next: "OFFSET" | null }
 *        records with updated_at >= since, sorted by updated_at (cursor pagination, token in body)
 *   POST /admin/mutate?fraction=0.01             that share of records gets new values and a newer updated_at
 *   GET  /admin/cpu                              the server's own CPU time so far (process.cpuUsage)
 *
 * Prints {"url": "..."} on stdout once listening.
 */
import { createServer } from "node:http"
import { parseArgs } from "node:util"
import { BASE, record } from "./data.mjs"

const { values } = parseArgs({
  options: {
    records: { type: "string", default: "50000" },
    "page-size": { type: "string", default: "1000" },
    precompute: { type: "string", multiple: true, default: [] }
  }
})
const n = Number(values.records)
const defaultSize = Number(values["page-size"])

// order[pos] = record index, tsAt[pos] = its updated_at in ms; both sorted by updated_at
let order = Array.from({ length: n }, (_, i) => i)
let tsAt = order.map((i) => BASE + i * 1000)
/** record index -> { round, ts } for records changed by /admin/mutate */
const changed = new Map()
let round = 0

const recordAt = (pos) => {
  const i = order[pos]
  const c = changed.get(i)
  if (c === undefined) return record(i)
  return { ...record(i, c.round), updated_at: new Date(c.ts).toISOString() }
}

const cache = new Map()
const page = (offset, size) => {
  const key = `${offset}:${size}`
  let body = cache.get(key)
  if (body === undefined) {
    const data = []
    for (let pos = offset; pos < Math.min(offset + size, n); pos++) data.push(recordAt(pos))
    const next = offset + size < n ? String(offset + size) : null
    body = Buffer.from(JSON.stringify({ data, next }))
    cache.set(key, body)
  }
  return body
}
const precompute = (size) => {
  for (let offset = 0; offset < n; offset += size) page(offset, size)
}

/** first position whose updated_at >= ms */
const lowerBound = (ms) => {
  let lo = 0
  let hi = n
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (tsAt[mid] < ms) lo = mid + 1
    else hi = mid
  }
  return lo
}

const mutate = (fraction) => {
  round++
  const every = Math.max(1, Math.round(1 / fraction))
  let ts = tsAt[n - 1]
  const moved = []
  for (let i = round % every; i < n; i += every) {
    ts += 1000
    changed.set(i, { round, ts })
    moved.push(i)
  }
  const set = new Set(moved)
  order = order.filter((i) => !set.has(i)).concat(moved)
  tsAt = order.map((i) => changed.get(i)?.ts ?? BASE + i * 1000)
  cache.clear()
  return moved.length
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://localhost")
  const send = (status, body) => {
    const buf = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body))
    res.writeHead(status, { "content-type": "application/json", "content-length": buf.length })
    res.end(buf)
  }
  if (url.pathname === "/items") {
    const since = url.searchParams.get("since")
    const cursor = url.searchParams.get("cursor")
    const size = Number(url.searchParams.get("size") ?? defaultSize)
    const offset = cursor !== null ? Number(cursor) : since === null ? 0 : lowerBound(Date.parse(since))
    return send(200, page(offset, size))
  }
  if (url.pathname === "/admin/mutate" && req.method === "POST") {
    return send(200, { changed: mutate(Number(url.searchParams.get("fraction") ?? "0.01")) })
  }
  if (url.pathname === "/admin/cpu") {
    const { system, user } = process.cpuUsage()
    return send(200, { cpuMs: (user + system) / 1000, rssMb: process.memoryUsage().rss / 1e6 })
  }
  send(404, { error: "not found" })
})
server.keepAliveTimeout = 60_000

precompute(defaultSize)
for (const size of values.precompute) precompute(Number(size))
server.listen(0, "127.0.0.1", () => {
  const { port } = server.address()
  process.stdout.write(JSON.stringify({ url: `http://127.0.0.1:${port}` }) + "\n")
})
process.on("SIGTERM", () => server.close(() => process.exit(0)))
