#!/usr/bin/env node
/**
 * Raw fetch: the least a client can do to read every page of the source: fetch (Node's, as Ferry
 * uses), parse the JSON (it needs the next cursor), discard the records.
 *
 *   node scripts/bench/fetch-client.mjs URL [--no-parse]
 *
 * --no-parse reads the bytes only and follows the server's offsets itself: it measures the server.
 * Prints {"records", "pages", "bytes", "elapsedMs"} on stdout (elapsedMs: first request to last byte,
 * without the process's own start-up).
 */
const [start, flag] = process.argv.slice(2)
const parse = flag !== "--no-parse"
let url = new URL(start)
let records = 0
let pages = 0
let bytes = 0
const started = performance.now()
for (;;) {
  const response = await fetch(url)
  if (!response.ok) throw new Error(`HTTP ${response.status}`)
  pages++
  let next
  if (parse) {
    const text = await response.text()
    bytes += text.length
    const body = JSON.parse(text)
    records += body.data.length
    next = body.next
  } else {
    const buf = new Uint8Array(await response.arrayBuffer())
    bytes += buf.length
    // the last bytes are `"next":"123"}` or `"next":null}`
    const tail = Buffer.from(buf.subarray(Math.max(0, buf.length - 40))).toString()
    next = /"next":"(\d+)"}$/.exec(tail)?.[1] ?? null
  }
  if (next === null || next === undefined) break
  url = new URL(url)
  url.searchParams.set("cursor", next)
}
const elapsedMs = performance.now() - started
process.stdout.write(JSON.stringify({ records, pages, bytes, elapsedMs }) + "\n")
