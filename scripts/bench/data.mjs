/**
 * The benchmark's records: deterministic, the same in the source server, the raw-load CSV and every
 * check. One record is ~230 bytes of JSON with a nested field (customer.email), like a real API's.
 */
const STATUSES = ["pending", "paid", "shipped", "refunded"]
const CURRENCIES = ["USD", "EUR", "GBP", "JPY"]
/** record i is updated at BASE + i seconds: unique, ascending cursors */
export const BASE = Date.UTC(2024, 0, 1)

export const record = (i, round = 0) => ({
  id: i,
  name: `customer ${i} of the benchmark`,
  status: STATUSES[(i + round) % STATUSES.length],
  amount: (((i * 7919) % 1000000) + round * 100) / 100, // from whole cents: exact in JSON
  currency: CURRENCIES[i % CURRENCIES.length],
  customer: { email: `user${i}@example.com`, country: "NL" },
  tags: ["bench", i % 2 === 0 ? "even" : "odd"],
  updated_at: new Date(BASE + i * 1000).toISOString()
})

/** The target table's columns (Ferry's config and the COPY table share them). */
export const columns = [
  ["id", "bigint"],
  ["name", "text"],
  ["status", "text"],
  ["amount", "numeric"],
  ["currency", "text"],
  ["customer_email", "text"],
  ["updated_at", "timestamptz"]
]

export const createTableSql = (table) =>
  `CREATE TABLE ${table} (${columns.map(([n, t]) => `${n} ${t}`).join(", ")}, PRIMARY KEY (id))`

/** one CSV line of a record, in `columns` order (no field needs quoting) */
export const csvLine = (r) =>
  `${r.id},${r.name},${r.status},${r.amount},${r.currency},${r.customer.email},${r.updated_at}\n`
