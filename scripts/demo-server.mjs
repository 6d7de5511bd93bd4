#!/usr/bin/env node
/**
 * A demo HTTP JSON API for trying Ferry: deterministic customers and orders that change between runs,
 * two pagination styles, two auth styles, and occasional 429/503 answers. Only `node:` imports.
 *
 *   node scripts/demo-server.mjs [--port 0] [--seed 42] [--orders 3000] [--customers 800]
 *                                [--flaky 0.03] [--mutate-per-run 5] [--add-per-run 1] [--verbose]
 *
 * Prints one line of JSON on stdout when listening: {"url":"http://127.0.0.1:PORT"}.
 *
 *   GET  /v1/orders?updated_since=ISO&per_page=N     Authorization: Bearer demo-token
 *        body { data: [...] }, next page in the Link header (rel="next", opaque page_token)
 *   GET  /v1/customers?updated_since=ISO&limit=N&cursor=C    X-Api-Key: demo-key
 *        body { customers: [...], next_cursor: "..." | null }
 *   POST /oauth/token   grant_type=client_credentials, client_id=demo-client, client_secret=demo-secret
 *        (form body, or HTTP Basic) -> { access_token, token_type: "Bearer", expires_in: 3600 }
 *   GET  /v2/accounts                                 Authorization: Bearer <access_token>
 *        body { accounts: [...] }
 *   GET  /v2/accounts/{id}/invoices?updated_since=ISO Authorization: Bearer <access_token>
 *        body { invoices: [...] }: the account's invoices (a parent -> child pair)
 *   POST /admin/mutate?n=K[&add=A]   K orders get a new status and updated_at = now; A new orders
 *   GET  /health
 *
 * Lists are sorted by (updated_at, id) and filtered with updated_at >= updated_since. Each time the
 * last page of orders is served (a sync run finished), `--mutate-per-run` orders change and
 * `--add-per-run` are added, so the next incremental run has a few rows to write.
 */
import { createServer } from "node:http"
import { realpathSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"

export const ORDERS_TOKEN = "demo-token"
export const CUSTOMERS_KEY = "demo-key"
export const OAUTH_CLIENT = { id: "demo-client", secret: "demo-secret" }

const DEFAULTS = {
  host: "127.0.0.1",
  port: 0,
  seed: 42,
  orders: 3000,
  customers: 800,
  flaky: 0.03,
  mutatePerRun: 5,
  addPerRun: 1,
  retryAfter: 1,
  verbose: false
}

const STATUSES = ["pending", "paid", "shipped", "refunded"]
const FIRST = ["Ada", "Alan", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances", "Edsger",
  "Radia", "John", "Sophie", "Tim", "Hedy", "Niklaus", "Katherine", "Donald", "Joan", "Guido", "Anita", "Bjarne",
  "Lynn", "Yukihiro", "Mary", "Rasmus", "Shafi", "Leslie", "Ines", "Mateo"]
const LAST = ["Lovelace", "Turing", "Hopper", "Torvalds", "Liskov", "Thompson", "Hamilton", "Ritchie", "Allen",
  "Dijkstra", "Perlman", "McCarthy", "Wilson", "Berners-Lee", "Lamarr", "Wirth", "Johnson", "Knuth", "Clarke",
  "van Rossum", "Borg", "Stroustrup", "Conway", "Matsumoto", "Keller", "Lerdorf", "Goldwasser", "Lamport",
  "Garcia", "Silva"]
const COUNTRIES = [["US", "USD"], ["GB", "GBP"], ["DE", "EUR"], ["FR", "EUR"], ["ES", "EUR"], ["NL", "EUR"],
  ["CA", "CAD"], ["JP", "JPY"], ["BR", "BRL"], ["AU", "AUD"]]

const DAY = 24 * 60 * 60 * 1000
/** Generated history ends here; mutations use the real clock, so they always come later. */
const EPOCH = Date.UTC(2025, 0, 1)
const SPAN = 365 * DAY

/** mulberry32: small, fast, good enough for demo data; the same seed gives the same data. */
export const prng = (seed) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
const pick = (rand, xs) => xs[Math.floor(rand() * xs.length)]
const int = (rand, lo, hi) => lo + Math.floor(rand() * (hi - lo + 1))
const iso = (ms) => new Date(ms).toISOString()
const newId = (rand, prefix, taken) => {
  for (;;) {
    let s = prefix
    for (let i = 0; i < 14; i++) s += ALPHABET[Math.floor(rand() * ALPHABET.length)]
    if (!taken.has(s)) {
      taken.add(s)
      return s
    }
  }
}

/**
 * Sorted distinct update instants, about `per` records to each, so several records share an
 * updated_at (what makes `>=` and page boundaries matter).
 */
const slots = (rand, records, per) => {
  const n = Math.max(1, Math.ceil(records / per))
  const set = new Set()
  while (set.size < n) set.add(EPOCH + Math.floor(rand() * SPAN / 1000) * 1000)
  return [...set].sort((a, b) => a - b)
}

const byKey = (a, b) => (a.updated_at < b.updated_at ? -1 : a.updated_at > b.updated_at ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0)

const makeData = (seed, orderCount, customerCount) => {
  const rand = prng(seed)
  const ids = new Set()
  const customers = []
  const customerSlots = slots(rand, customerCount, 4)
  for (let i = 0; i < customerCount; i++) {
    const first = pick(rand, FIRST)
    const last = pick(rand, LAST)
    const [country] = pick(rand, COUNTRIES)
    const updated = pick(rand, customerSlots)
    const created = updated - int(rand, 0, 90) * DAY - int(rand, 0, 86399) * 1000
    customers.push({
      id: newId(rand, "cus_", ids),
      name: `${first} ${last}`,
      email: `${first}.${last}.${i + 1}@example.com`.toLowerCase().replace(/[^a-z0-9.@-]/g, ""),
      country,
      created_at: iso(created),
      updated_at: iso(updated)
    })
  }
  const orders = []
  const orderSlots = slots(rand, orderCount, 3)
  for (let i = 0; i < orderCount && customers.length > 0; i++) {
    const updated = pick(rand, orderSlots)
    const created = updated - int(rand, 0, 30) * DAY - int(rand, 0, 86399) * 1000
    orders.push(makeOrder(rand, ids, customers, created, updated))
  }
  customers.sort(byKey)
  orders.sort(byKey)
  return { customers, orders, ids, ...makeAccounts(rand) }
}

/** 12 accounts with 0 to 20 invoices each, for the OAuth2 parent -> child pair. */
const makeAccounts = (rand) => {
  const accounts = []
  const invoices = new Map()
  for (let i = 1; i <= 12; i++) {
    const id = `acc_${String(i).padStart(3, "0")}`
    accounts.push({ id, name: `${pick(rand, LAST)} ${pick(rand, ["Ltd", "GmbH", "Inc", "SARL", "BV"])}`, plan: pick(rand, ["free", "team", "business"]) })
    const list = []
    for (let j = 1; j <= int(rand, 0, 20); j++) {
      const updated = EPOCH + int(rand, 0, 364) * DAY + int(rand, 0, 86399) * 1000
      list.push({ id: `inv_${i}_${j}`, amount: (int(rand, 500, 500000) / 100).toFixed(2), status: pick(rand, ["open", "paid", "void"]), updated_at: iso(updated) })
    }
    invoices.set(id, list.sort(byKey))
  }
  return { accounts, invoices }
}

const makeOrder = (rand, ids, customers, created, updated) => {
  const customer = pick(rand, customers)
  const currency = COUNTRIES.find(([c]) => c === customer.country)?.[1] ?? "USD"
  return {
    id: newId(rand, "ord_", ids),
    customer: { id: customer.id, email: customer.email },
    status: pick(rand, STATUSES),
    // zero-decimal currency in whole units, the others with cents
    amount: currency === "JPY" ? int(rand, 300, 250000) : int(rand, 199, 250000) / 100,
    currency,
    items: int(rand, 1, 8),
    created_at: iso(created),
    updated_at: iso(updated)
  }
}

/** Index of the first record whose (updated_at, id) is >= the key (or > it when `after`). */
const lowerBound = (records, updatedAt, id, after) => {
  let lo = 0
  let hi = records.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    const r = records[mid]
    const c = r.updated_at < updatedAt ? -1 : r.updated_at > updatedAt ? 1 : id === undefined ? 0 : r.id < id ? -1 : r.id > id ? 1 : 0
    if (c < 0 || (after && c === 0)) lo = mid + 1
    else hi = mid
  }
  return lo
}

const encodeToken = (state) => Buffer.from(JSON.stringify(state)).toString("base64url")
const decodeToken = (token) => {
  try {
    const v = JSON.parse(Buffer.from(token, "base64url").toString("utf8"))
    if (typeof v === "object" && v !== null && typeof v.u === "string" && typeof v.i === "string") return v
  } catch {
    // not ours
  }
  return undefined
}

class HttpError extends Error {
  constructor(status, code, message) {
    super(message)
    this.status = status
    this.code = code
  }
}

const parseSince = (value) => {
  if (value === null || value === "") return ""
  const ms = Date.parse(value)
  if (Number.isNaN(ms)) throw new HttpError(400, "invalid_parameter", `updated_since is not an ISO timestamp: ${value}`)
  return iso(ms)
}

const parseSize = (value, name, fallback) => {
  if (value === null || value === "") return fallback
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new HttpError(400, "invalid_parameter", `${name} must be an integer from 1 to 1000`)
  return n
}

/**
 * One page of `records` (sorted by key): from the token's position if there is one, else from
 * `updated_since`. Returns the page and the token for the next one (undefined on the last page).
 */
const page = (records, since, size, token) => {
  let start
  let filter = since
  if (token !== undefined) {
    filter = token.s ?? ""
    start = lowerBound(records, token.u, token.i, true)
  } else {
    start = filter === "" ? 0 : lowerBound(records, filter, undefined, false)
  }
  const slice = records.slice(start, start + size)
  const last = slice[slice.length - 1]
  const more = start + size < records.length
  return { slice, next: more && last ? encodeToken({ u: last.updated_at, i: last.id, s: filter }) : undefined }
}

/** Start the demo API. Resolves once it listens; `url` has the bound port. */
export const startDemoServer = async (options = {}) => {
  const o = { ...DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) }
  const data = makeData(o.seed, o.orders, o.customers)
  const mutationRand = prng((o.seed ^ 0x9e3779b9) >>> 0)
  const flakyRand = prng((o.seed ^ 0x85ebca6b) >>> 0)
  /** URLs whose last answer was an injected failure: the next request for them goes through. */
  const failedLast = new Set()
  let clock = 0
  const log = o.verbose ? (line) => process.stderr.write(`${line}\n`) : () => {}

  /** `n` orders get a new status and updated_at = now (all the same instant), `add` new ones appear. */
  const mutate = (n = o.mutatePerRun, add = o.addPerRun) => {
    clock = Math.max(Date.now(), clock + 1) // strictly later than the previous mutation
    const now = iso(clock)
    const orders = data.orders
    const chosen = new Set()
    const want = Math.min(Math.max(0, Math.floor(n)), orders.length)
    while (chosen.size < want) chosen.add(Math.floor(mutationRand() * orders.length))
    const updated = []
    for (const i of chosen) {
      const order = orders[i]
      order.status = pick(mutationRand, STATUSES.filter((s) => s !== order.status))
      order.updated_at = now
      updated.push(order.id)
    }
    const created = []
    for (let i = 0; i < Math.max(0, Math.floor(add)) && data.customers.length > 0; i++) {
      const order = makeOrder(mutationRand, data.ids, data.customers, clock, clock)
      order.status = "pending"
      orders.push(order)
      created.push(order.id)
    }
    orders.sort(byKey)
    // and one invoice is paid, so the child stream has something new too
    const open = [...data.invoices.values()].flat().find((invoice) => invoice.status === "open")
    if (open !== undefined && n > 0) Object.assign(open, { status: "paid", updated_at: now })
    log(`mutated ${updated.length} order(s), added ${created.length} at ${now}`)
    return { updated, created, updated_at: now }
  }

  const send = (res, status, body, headers = {}) => {
    res.writeHead(status, { "content-type": "application/json", ...headers })
    res.end(JSON.stringify(body))
  }

  /** An injected 429 or 503, never twice in a row for the same URL. */
  const injectFailure = (req, res) => {
    if (o.flaky <= 0) return false
    if (failedLast.has(req.url)) {
      failedLast.delete(req.url)
      return false
    }
    if (flakyRand() >= o.flaky) return false
    failedLast.add(req.url)
    if (flakyRand() < 0.5) {
      send(res, 429, { error: { code: "rate_limited", message: "slow down" } }, { "retry-after": String(o.retryAfter) })
    } else {
      send(res, 503, { error: { code: "unavailable", message: "try again" } })
    }
    return true
  }

  const orders = (req, res, url) => {
    if (req.headers.authorization !== `Bearer ${ORDERS_TOKEN}`) {
      throw new HttpError(401, "unauthorized", "missing or invalid bearer token")
    }
    if (injectFailure(req, res)) return
    const rawToken = url.searchParams.get("page_token")
    const token = rawToken === null ? undefined : decodeToken(rawToken)
    if (rawToken !== null && token === undefined) throw new HttpError(400, "invalid_parameter", "page_token is not valid")
    const size = parseSize(url.searchParams.get("per_page"), "per_page", 100)
    const { slice, next } = page(data.orders, parseSince(url.searchParams.get("updated_since")), size, token)
    const headers = {}
    if (next !== undefined) {
      const nextUrl = new URL(`${baseUrl}/v1/orders`)
      nextUrl.searchParams.set("per_page", String(size))
      nextUrl.searchParams.set("page_token", next)
      headers.link = `<${nextUrl.href}>; rel="next"`
    }
    send(res, 200, { data: slice }, headers)
    // The last page was served: a sync run finished; change a few records for the next one.
    if (next === undefined && (o.mutatePerRun > 0 || o.addPerRun > 0)) mutate(o.mutatePerRun, o.addPerRun)
  }

  const customers = (req, res, url) => {
    if (req.headers["x-api-key"] !== CUSTOMERS_KEY) {
      throw new HttpError(401, "unauthorized", "missing or invalid X-Api-Key")
    }
    if (injectFailure(req, res)) return
    const rawCursor = url.searchParams.get("cursor")
    const cursor = rawCursor === null || rawCursor === "" ? undefined : decodeToken(rawCursor)
    if (rawCursor !== null && rawCursor !== "" && cursor === undefined) throw new HttpError(400, "invalid_parameter", "cursor is not valid")
    const size = parseSize(url.searchParams.get("limit"), "limit", 100)
    const { slice, next } = page(data.customers, parseSince(url.searchParams.get("updated_since")), size, cursor)
    send(res, 200, { customers: slice, next_cursor: next ?? null })
  }

  /** OAuth2 client credentials: a token per grant, kept for its hour */
  const tokens = new Set()
  const token = (req, res, body) => {
    const form = new URLSearchParams(body)
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? "")
    const [id, secret] = basic ? Buffer.from(basic[1], "base64").toString().split(":").map(decodeURIComponent)
      : [form.get("client_id"), form.get("client_secret")]
    if (form.get("grant_type") !== "client_credentials") return send(res, 400, { error: "unsupported_grant_type" })
    if (id !== OAUTH_CLIENT.id || secret !== OAUTH_CLIENT.secret) return send(res, 401, { error: "invalid_client" })
    const value = `tok_${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`
    tokens.add(value)
    send(res, 200, { access_token: value, token_type: "Bearer", expires_in: 3600 })
  }
  const bearer = (req) => {
    const match = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")
    if (match === null || !tokens.has(match[1])) throw new HttpError(401, "invalid_token", "missing or unknown access token")
  }
  const invoices = (req, res, url, account) => {
    bearer(req)
    const list = data.invoices.get(account)
    if (list === undefined) throw new HttpError(404, "not_found", `no account ${account}`)
    const since = parseSince(url.searchParams.get("updated_since"))
    send(res, 200, { invoices: list.filter((invoice) => since === "" || invoice.updated_at >= since).sort(byKey) })
  }

  const handle = (req, res, body) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1")
    log(`${req.method} ${req.url}`)
    try {
      if (req.method === "GET" && url.pathname === "/health") return send(res, 200, { ok: true })
      if (req.method === "GET" && url.pathname === "/v1/orders") return orders(req, res, url)
      if (req.method === "GET" && url.pathname === "/v1/customers") return customers(req, res, url)
      if (req.method === "POST" && url.pathname === "/oauth/token") return token(req, res, body)
      if (req.method === "GET" && url.pathname === "/v2/accounts") {
        bearer(req)
        return send(res, 200, { accounts: data.accounts })
      }
      const child = /^\/v2\/accounts\/([^/]+)\/invoices$/.exec(url.pathname)
      if (req.method === "GET" && child !== null) return invoices(req, res, url, decodeURIComponent(child[1]))
      if (req.method === "POST" && url.pathname === "/admin/mutate") {
        const n = parseSize(url.searchParams.get("n"), "n", o.mutatePerRun)
        const add = url.searchParams.get("add")
        return send(res, 200, mutate(n, add === null ? o.addPerRun : Number(add) || 0))
      }
      throw new HttpError(404, "not_found", `no route for ${req.method} ${url.pathname}`)
    } catch (e) {
      if (e instanceof HttpError) return send(res, e.status, { error: { code: e.code, message: e.message } })
      send(res, 500, { error: { code: "internal", message: String(e) } })
    }
  }

  const server = createServer((req, res) => {
    // read the body (POST) before answering, so keep-alive connections stay usable
    let body = ""
    req.setEncoding("utf8")
    req.on("data", (chunk) => (body += chunk))
    req.on("end", () => handle(req, res, body))
  })
  await new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(o.port, o.host, () => {
      server.off("error", reject)
      resolve()
    })
  })
  const baseUrl = `http://${o.host}:${server.address().port}`

  const close = () =>
    new Promise((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    })

  return { url: baseUrl, close, mutate }
}

const isMain = () => {
  if (!process.argv[1]) return false
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

const cli = async () => {
  const { values } = parseArgs({
    options: {
      port: { type: "string" },
      host: { type: "string" },
      seed: { type: "string" },
      orders: { type: "string" },
      customers: { type: "string" },
      flaky: { type: "string" },
      "mutate-per-run": { type: "string" },
      "add-per-run": { type: "string" },
      "retry-after": { type: "string" },
      verbose: { type: "boolean" },
      help: { type: "boolean", short: "h" }
    },
    strict: true
  })
  if (values.help) {
    process.stdout.write(
      "usage: node scripts/demo-server.mjs [--port 0] [--seed 42] [--orders 3000] [--customers 800]\n" +
        "         [--flaky 0.03] [--mutate-per-run 5] [--add-per-run 1] [--retry-after 1] [--verbose]\n"
    )
    return
  }
  const num = (name, value, { min = 0, max = Number.MAX_SAFE_INTEGER, integer = true } = {}) => {
    if (value === undefined) return undefined
    const n = Number(value)
    if (Number.isNaN(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
      process.stderr.write(`demo-server: --${name} must be ${integer ? "an integer" : "a number"} from ${min} to ${max}\n`)
      process.exit(64)
    }
    return n
  }
  const handle = await startDemoServer({
    host: values.host,
    port: num("port", values.port, { max: 65535 }),
    seed: num("seed", values.seed),
    orders: num("orders", values.orders),
    customers: num("customers", values.customers, { min: 1 }),
    flaky: num("flaky", values.flaky, { max: 1, integer: false }),
    mutatePerRun: num("mutate-per-run", values["mutate-per-run"]),
    addPerRun: num("add-per-run", values["add-per-run"]),
    retryAfter: num("retry-after", values["retry-after"]),
    verbose: values.verbose
  })
  process.stdout.write(`${JSON.stringify({ url: handle.url })}\n`)
  const stop = () => handle.close().then(() => process.exit(0))
  process.once("SIGINT", stop)
  process.once("SIGTERM", stop)
}

if (isMain()) {
  cli().catch((e) => {
    process.stderr.write(`demo-server: ${e instanceof Error ? e.message : String(e)}\n`)
    process.exit(e && e.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" ? 64 : 1)
  })
}
