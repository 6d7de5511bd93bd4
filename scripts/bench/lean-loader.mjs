#!/usr/bin/env node
/**
 * The lean loader: the reference a hand-written, careful loader sets for the bench's stream (issue 17),
 * with no Effect and no framework. It does the work Ferry does for this stream, as cheaply as plain Node
 * allows, so that `npm run bench` can say how far Ferry's own orchestration is from it:
 *
 * - node:http GETs on one keep-alive socket; the next page is fetched while a batch is written;
 * - JSON.parse of each page; per record the checks Ferry makes for these column types (bigint: an
 *   integer; text: a string without NUL, well-formed; numeric: a finite number; timestamptz: a date
 *   that parses), an invalid record counted and skipped (Ferry quarantines it);
 * - a key seen twice in a page keeps its last version; the page's greatest cursor;
 * - COPY's text format (escapes), `COPY … FROM STDIN` in transactions of ≥ 10,000 rows, each with the
 *   checkpoint upserted in `lean_state` (Ferry's checkpoint in ferry.state), into an empty table.
 *
 *   node scripts/bench/lean-loader.mjs URL DATABASE_URL TABLE
 *
 * URL: the first page (`/items?since=…`); pages continue with `cursor=<body.next>`. Prints
 * {"records","rows","invalid","pages","checkpoint","elapsedMs"} (elapsedMs: first request to the last
 * commit, without the process's start-up).
 */
import http from "node:http"
import pg from "pg"

const [first, databaseUrl, table] = process.argv.slice(2)
if (table === undefined || !/^[a-z_][a-z0-9_]*$/.test(table)) {
  process.stderr.write("usage: lean-loader.mjs URL DATABASE_URL TABLE\n")
  process.exit(64)
}
const BATCH_ROWS = 10_000

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
const get = (url) =>
  new Promise((resolve, reject) => {
    http.get(url, { agent }, (res) => {
      const chunks = []
      res.on("data", (c) => chunks.push(c))
      res.on("end", () => {
        if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode} for ${url}`))
        else resolve(Buffer.concat(chunks).toString("utf8"))
      })
      res.on("error", reject)
    }).on("error", reject)
  })

// --- per-record checks and COPY text ---------------------------------------------------------------

const special = /[\\\t\n\r]/
const escapes = { "\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r" }
const escape = (s) => (special.test(s) ? s.replace(/[\\\t\n\r]/g, (c) => escapes[c]) : s)
const text = (v) => (typeof v === "string" && !v.includes("\u0000") && v.isWellFormed() ? escape(v) : undefined)
const bigint = (v) => (Number.isSafeInteger(v) ? String(v) : typeof v === "string" && /^-?\d{1,19}$/.test(v) ? v : undefined)
const numeric = (v) => (typeof v === "number" && Number.isFinite(v) ? String(v) : undefined)
const timestamptz = (v) => (typeof v === "string" && !Number.isNaN(Date.parse(v)) ? escape(v) : undefined)

/** a record's COPY line in the bench table's column order, or undefined when a value does not fit */
const lineOf = (r) => {
  if (r === null || typeof r !== "object") return undefined
  const fields = [
    bigint(r.id),
    text(r.name),
    text(r.status),
    numeric(r.amount),
    text(r.currency),
    text(r.customer?.email),
    timestamptz(r.updated_at)
  ]
  return fields.includes(undefined) ? undefined : fields.join("\t") + "\n"
}

// --- COPY FROM STDIN as a node-postgres Submittable (as src/sink/postgres/CopyIn.ts does) -----------

class CopyFromStdin {
  constructor(text, payload) {
    this.text = text
    this.payload = payload
    this.rowCount = 0
    this.done = false
  }
  submit(connection) {
    connection.query(this.text)
  }
  handleCopyInResponse(connection) {
    connection.sendCopyFromChunk(this.payload)
    connection.endCopyFrom()
  }
  handleCommandComplete(message) {
    this.rowCount = Number(/^COPY (\d+)$/.exec(message.text ?? "")?.[1] ?? -1)
  }
  handleReadyForQuery() {
    this.finish(null)
  }
  handleError(error) {
    this.finish(error)
  }
  handleRowDescription() {}
  handleDataRow() {}
  handlePortalSuspended() {}
  handleEmptyQuery() {}
  handleCopyData() {}
  finish(error) {
    if (this.done) return
    this.done = true
    if (error) this.callback?.(error)
    else this.callback?.(null, { rowCount: this.rowCount })
  }
}

const client = new pg.Client({ connectionString: databaseUrl })
await client.connect()
await client.query(`CREATE TABLE IF NOT EXISTS lean_state (stream text PRIMARY KEY, checkpoint text NOT NULL)`)
const copyStatement = `COPY ${table} (id, name, status, amount, currency, customer_email, updated_at) FROM STDIN`

/** one transaction: the batch's rows and the checkpoint they reach */
const writeBatch = async (lines, checkpoint) => {
  await client.query("BEGIN")
  // pg runs a Submittable as is and calls back (it returns the object itself, not a promise)
  const { rowCount } = await new Promise((resolve, reject) =>
    client.query(new CopyFromStdin(copyStatement, Buffer.from(lines.join(""))), (error, result) => (error ? reject(error) : resolve(result))))
  if (rowCount !== lines.length) throw new Error(`COPY wrote ${rowCount} rows, not ${lines.length}`)
  await client.query(
    `INSERT INTO lean_state (stream, checkpoint) VALUES ($1, $2)
     ON CONFLICT (stream) DO UPDATE SET checkpoint = EXCLUDED.checkpoint`,
    [table, checkpoint]
  )
  await client.query("COMMIT")
}

const started = performance.now()
let records = 0
let rows = 0
let invalid = 0
let pages = 0
let checkpoint = ""
let checkpointMs = -Infinity
let batch = []
let writing = Promise.resolve()
let next = get(first)
for (;;) {
  const body = JSON.parse(await next)
  pages++
  // the next page is on its way while this one is checked, encoded and written
  const url = body.next === null || body.next === undefined ? undefined : new URL(first)
  if (url !== undefined) {
    url.searchParams.set("cursor", body.next)
    next = get(url)
  }
  const byKey = new Map()
  for (const r of body.data) {
    records++
    const line = lineOf(r)
    if (line === undefined) {
      invalid++
      continue
    }
    byKey.set(String(r.id), line)
    const ms = Date.parse(r.updated_at)
    if (ms > checkpointMs) {
      checkpointMs = ms
      checkpoint = r.updated_at
    }
  }
  for (const line of byKey.values()) batch.push(line)
  if (batch.length >= BATCH_ROWS || url === undefined) {
    const lines = batch
    const reached = checkpoint
    batch = []
    // one batch in flight: it is written while the next one is fetched and parsed (commit order =
    // checkpoint order); a batch waits for the one before, so batches never pile up in memory
    await writing
    writing = writeBatch(lines, reached)
    writing.catch(() => undefined) // awaited (and thrown) at the next batch or the end
    rows += lines.length
    if (url === undefined) break
  }
}
await writing
const elapsedMs = performance.now() - started
await client.end()
agent.destroy()
process.stdout.write(JSON.stringify({ records, rows, invalid, pages, checkpoint, elapsedMs }) + "\n")
