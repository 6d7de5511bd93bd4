/**
 * The demo API (scripts/demo-server.mjs), driven with fetch on a real port: both pagination styles,
 * updated_since (>=), auth, deterministic data, mutations between runs, injected 429/503, the CLI line.
 */
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { type DemoOptions, type DemoServer, startDemoServer } from "../scripts/demo-server.mjs"

interface Order {
  readonly id: string
  readonly customer: { readonly id: string; readonly email: string }
  readonly status: string
  readonly amount: number
  readonly currency: string
  readonly items: number
  readonly created_at: string
  readonly updated_at: string
}
interface Customer {
  readonly id: string
  readonly name: string
  readonly email: string
  readonly country: string
  readonly created_at: string
  readonly updated_at: string
}
const scriptPath = fileURLToPath(new URL("../scripts/demo-server.mjs", import.meta.url))

const servers: Array<DemoServer> = []
const start = async (options: DemoOptions) => {
  const server = await startDemoServer(options)
  servers.push(server)
  return server
}
afterAll(() => Promise.all(servers.map((s) => s.close())))

const ORDERS_AUTH = { authorization: "Bearer demo-token" }
const CUSTOMERS_AUTH = { "x-api-key": "demo-key" }

const nextLink = (link: string | null): string | undefined => link?.match(/<([^>]+)>;\s*rel="next"/)?.[1]

/** Follow Link rel="next" from `first`; retry injected failures at once (no sleep). */
const allOrders = async (first: string) => {
  const records: Array<Order> = []
  let pages = 0
  let url: string | undefined = first
  while (url !== undefined) {
    const res = await fetch(url, { headers: ORDERS_AUTH })
    if (res.status === 429 || res.status === 503) continue
    expect(res.status).toBe(200)
    const body = (await res.json()) as { data: Array<Order> }
    records.push(...body.data)
    pages++
    url = nextLink(res.headers.get("link"))
  }
  return { records, pages }
}

const allCustomers = async (base: string, query: string) => {
  const records: Array<Customer> = []
  let pages = 0
  let cursor: string | null = ""
  while (cursor !== null) {
    const res = await fetch(`${base}/v1/customers?${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`, {
      headers: CUSTOMERS_AUTH
    })
    if (res.status === 429 || res.status === 503) continue
    expect(res.status).toBe(200)
    const body = (await res.json()) as { customers: Array<Customer>; next_cursor: string | null }
    records.push(...body.customers)
    pages++
    cursor = body.next_cursor
  }
  return { records, pages }
}

const key = (r: { updated_at: string; id: string }) => `${r.updated_at} ${r.id}`
const expectSorted = (records: ReadonlyArray<{ updated_at: string; id: string }>) => {
  for (let i = 1; i < records.length; i++) expect(key(records[i - 1]) < key(records[i])).toBe(true)
}
/** An updated_at shared by at least two records, not the first one. */
const sharedTimestamp = (records: ReadonlyArray<{ updated_at: string }>) => {
  const counts = new Map<string, number>()
  for (const r of records) counts.set(r.updated_at, (counts.get(r.updated_at) ?? 0) + 1)
  const shared = [...counts].filter(([, n]) => n >= 2).map(([t]) => t)
  return shared[Math.floor(shared.length / 2)]
}

describe("demo server", () => {
  const quiet = { seed: 7, orders: 250, customers: 60, flaky: 0, mutatePerRun: 0, addPerRun: 0 }

  it("orders: Link pagination returns every order once, sorted by (updated_at, id), with realistic fields", async () => {
    const s = await start(quiet)
    const { records, pages } = await allOrders(`${s.url}/v1/orders?per_page=37`)
    expect(records.length).toBe(250)
    expect(pages).toBe(7)
    expect(new Set(records.map((r) => r.id)).size).toBe(250)
    expectSorted(records)
    expect(sharedTimestamp(records)).toBeDefined() // several records share an updated_at
    for (const o of records) {
      expect(o.id).toMatch(/^ord_[0-9A-Za-z]{14}$/)
      expect(o.customer.id).toMatch(/^cus_/)
      expect(o.customer.email).toMatch(/@example\.com$/)
      expect(["pending", "paid", "shipped", "refunded"]).toContain(o.status)
      expect(Math.round(o.amount * 100)).toBeCloseTo(o.amount * 100, 6)
      expect(o.items).toBeGreaterThanOrEqual(1)
      expect(new Date(o.updated_at).toISOString()).toBe(o.updated_at)
      expect(o.created_at <= o.updated_at).toBe(true)
    }
  })

  it("customers: next_cursor pagination returns every customer once", async () => {
    const s = await start(quiet)
    const { records, pages } = await allCustomers(s.url, "limit=23")
    expect(records.length).toBe(60)
    expect(pages).toBe(3)
    expect(new Set(records.map((r) => r.id)).size).toBe(60)
    expectSorted(records)
    for (const c of records) {
      expect(c.id).toMatch(/^cus_/)
      expect(c.email).toMatch(/^[a-z0-9.-]+@example\.com$/)
      expect(c.country).toMatch(/^[A-Z]{2}$/)
    }
  })

  it("updated_since keeps records with updated_at >= the value, ties included, across pages", async () => {
    const s = await start(quiet)
    const orders = (await allOrders(`${s.url}/v1/orders`)).records
    const t = sharedTimestamp(orders)!
    const since = (await allOrders(`${s.url}/v1/orders?per_page=5&updated_since=${encodeURIComponent(t)}`)).records
    expect(since.map((r) => r.id)).toEqual(orders.filter((r) => r.updated_at >= t).map((r) => r.id))
    expect(since.filter((r) => r.updated_at === t).length).toBeGreaterThanOrEqual(2)

    const customers = (await allCustomers(s.url, "")).records
    const c = sharedTimestamp(customers)!
    const cSince = (await allCustomers(s.url, `limit=4&updated_since=${encodeURIComponent(c)}`)).records
    expect(cSince.map((r) => r.id)).toEqual(customers.filter((r) => r.updated_at >= c).map((r) => r.id))

    const bad = await fetch(`${s.url}/v1/orders?updated_since=yesterday`, { headers: ORDERS_AUTH })
    expect(bad.status).toBe(400)
  })

  it("auth is enforced: 401 with a JSON error", async () => {
    const s = await start(quiet)
    for (const [path, headers] of [
      ["/v1/orders", {}],
      ["/v1/orders", { authorization: "Bearer wrong" }],
      ["/v1/orders", CUSTOMERS_AUTH],
      ["/v1/customers", {}],
      ["/v1/customers", { "x-api-key": "wrong" }],
      ["/v1/customers", ORDERS_AUTH]
    ] as const) {
      const res = await fetch(`${s.url}${path}`, { headers })
      expect(res.status).toBe(401)
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("unauthorized")
    }
    expect((await fetch(`${s.url}/health`)).status).toBe(200)
  })

  it("the same seed gives the same data; another seed does not", async () => {
    const a = await start(quiet)
    const b = await start(quiet)
    const c = await start({ ...quiet, seed: 8 })
    const [ra, rb, rc] = await Promise.all([a, b, c].map((s) => allOrders(`${s.url}/v1/orders?per_page=500`)))
    expect(rb.records).toEqual(ra.records)
    expect(rc.records).not.toEqual(ra.records)
  })

  it("mutate(n) moves exactly n orders to a later updated_at with a new status; add creates orders", async () => {
    const s = await start(quiet)
    const before = new Map((await allOrders(`${s.url}/v1/orders?per_page=500`)).records.map((r) => [r.id, r]))
    const result = s.mutate(7, 0)
    const after = (await allOrders(`${s.url}/v1/orders?per_page=500`)).records
    expect(after.length).toBe(250)
    const changed = after.filter((r) => r.updated_at !== before.get(r.id)!.updated_at)
    expect(changed.map((r) => r.id).sort()).toEqual([...result.updated].sort())
    expect(changed.length).toBe(7)
    for (const r of changed) {
      expect(r.updated_at > before.get(r.id)!.updated_at).toBe(true)
      expect(r.status).not.toBe(before.get(r.id)!.status)
      expect(r.updated_at).toBe(result.updated_at)
    }
    // the changed ones sort last: an incremental read from the old maximum finds them
    expect(after.slice(-7).map((r) => r.id).sort()).toEqual([...result.updated].sort())

    const posted = (await (await fetch(`${s.url}/admin/mutate?n=2&add=3`, { method: "POST" })).json()) as {
      updated: Array<string>
      created: Array<string>
      updated_at: string
    }
    expect(posted.updated.length).toBe(2)
    expect(posted.created.length).toBe(3)
    expect(posted.updated_at > result.updated_at).toBe(true)
    const third = (await allOrders(`${s.url}/v1/orders?per_page=500`)).records
    expect(third.length).toBe(253)
    expect(third.filter((r) => posted.created.includes(r.id)).map((r) => r.status)).toEqual(["pending", "pending", "pending"])
  })

  it("each completed scan of orders changes a few records for the next incremental run", async () => {
    const s = await start({ ...quiet, mutatePerRun: 5, addPerRun: 1 })
    const first = (await allOrders(`${s.url}/v1/orders?per_page=100`)).records
    expect(first.length).toBe(250)
    const max = first[first.length - 1].updated_at
    const second = (await allOrders(`${s.url}/v1/orders?per_page=100&updated_since=${encodeURIComponent(max)}`)).records
    const newer = second.filter((r) => r.updated_at > max)
    expect(newer.length).toBe(6)
    expect(newer.filter((r) => !first.some((f) => f.id === r.id)).length).toBe(1)
    // the rest are the ties at the old maximum, re-read by >=
    expect(second.filter((r) => r.updated_at === max).every((r) => first.some((f) => f.id === r.id))).toBe(true)
  })

  it("flaky: some 429 (Retry-After: 1) and 503 answers, never twice in a row for one URL", async () => {
    const s = await start({ ...quiet, flaky: 0.5 })
    const history = new Map<string, Array<number>>()
    const urls = ["/v1/orders?per_page=10", "/v1/orders?per_page=20", "/v1/orders?per_page=30", "/v1/customers?limit=10"]
    let retryAfterOk = true
    for (let round = 0; round < 30; round++) {
      for (const path of urls) {
        const res = await fetch(`${s.url}${path}`, { headers: path.includes("customers") ? CUSTOMERS_AUTH : ORDERS_AUTH })
        await res.arrayBuffer()
        if (res.status === 429 && res.headers.get("retry-after") !== "1") retryAfterOk = false
        history.set(path, [...(history.get(path) ?? []), res.status])
      }
    }
    const all = [...history.values()].flat()
    expect(all).toContain(429)
    expect(all).toContain(503)
    expect(all).toContain(200)
    expect(retryAfterOk).toBe(true)
    for (const statuses of history.values()) {
      for (let i = 1; i < statuses.length; i++) {
        expect(statuses[i - 1] !== 200 && statuses[i] !== 200).toBe(false)
      }
    }
    // a client that retries always gets through
    const { records } = await allOrders(`${s.url}/v1/orders?per_page=40`)
    expect(new Set(records.map((r) => r.id)).size).toBe(250)
  })

  it("the command line prints one JSON line with the URL and serves it", async () => {
    const child = spawn(process.execPath, [scriptPath, "--port", "0", "--flaky", "0", "--orders", "12", "--customers", "4"], {
      stdio: ["ignore", "pipe", "inherit"]
    })
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let out = ""
        child.stdout.on("data", (d: Buffer) => {
          out += d.toString()
          if (out.includes("\n")) resolve(out)
        })
        child.on("exit", (code) => reject(new Error(`demo server exited with ${code}`)))
      })
      expect(line.trim().split("\n").length).toBe(1)
      const { url } = JSON.parse(line) as { url: string }
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      expect((await fetch(`${url}/health`)).status).toBe(200)
      const { records } = await allOrders(`${url}/v1/orders`)
      expect(records.length).toBe(12)
    } finally {
      child.kill("SIGTERM")
    }
  })
})
