#!/usr/bin/env node
/**
 * The classic cron script, as a baseline: fetch a page, then one `INSERT ... ON CONFLICT` per
 * record, each its own autocommitted statement. No batching, no pipelining.
 *
 *   node scripts/bench/naive.mjs SOURCE_URL DATABASE_URL TABLE [--limit N]
 *
 * --limit stops after N records (the benchmark runs it on a subset and extrapolates linearly).
 * Prints {"records", "pages"} on stdout.
 */
import pg from "pg"

const [start, databaseUrl, table, flag, limitText] = process.argv.slice(2)
const limit = flag === "--limit" ? Number(limitText) : Infinity
const client = new pg.Client({ connectionString: databaseUrl })
await client.connect()
const upsert = `INSERT INTO ${table} (id, name, status, amount, currency, customer_email, updated_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7)
  ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, status = EXCLUDED.status, amount = EXCLUDED.amount,
    currency = EXCLUDED.currency, customer_email = EXCLUDED.customer_email, updated_at = EXCLUDED.updated_at`
let url = new URL(start)
let records = 0
let pages = 0
outer: for (;;) {
  const response = await fetch(url)
  if (!response.ok) throw new Error(`HTTP ${response.status}`)
  const body = await response.json()
  pages++
  for (const r of body.data) {
    if (records >= limit) break outer
    await client.query(upsert, [r.id, r.name, r.status, r.amount, r.currency, r.customer?.email, r.updated_at])
    records++
  }
  if (body.next === null) break
  url = new URL(url)
  url.searchParams.set("cursor", body.next)
}
await client.end()
process.stdout.write(JSON.stringify({ records, pages }) + "\n")
