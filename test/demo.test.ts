/**
 * The demo path a new user takes: the repo's ferry.config.yaml, the demo API, the embedded database
 * (no database URL), `ferry run` twice — the second run is incremental and writes only what the API
 * changed in between — then `ferry sql` and `ferry status --json` on the embedded database.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type DemoServer, startDemoServer } from "../scripts/demo-server.mjs"
import { ferry, start, summaries } from "./support/cli.js"

const root = join(import.meta.dirname, "..")
let api: DemoServer
let dataDir: string

beforeAll(async () => {
  api = await startDemoServer({ orders: 1200, customers: 300, flaky: 0.05, retryAfter: 0, mutatePerRun: 5, addPerRun: 1 })
  dataDir = mkdtempSync(join(tmpdir(), "ferry-demo-"))
})
afterAll(async () => {
  await api?.close()
  rmSync(dataDir, { recursive: true, force: true })
})

const env = () => ({ DEMO_API_URL: api.url, FERRY_DATA_DIR: join(dataDir, "pgdata"), DATABASE_URL: "" })
const run = (...args: Array<string>) => ferry([...args, "--config", join(root, "ferry.config.yaml")], { cwd: dataDir, env: env() })

describe("the demo, on the embedded database", () => {
  it("loads everything, then an incremental run writes only what changed", async () => {
    const first = await run("run")
    expect(first.code, first.stderr).toBe(0)
    const [orders1, customers1] = summaries(first)
    expect(orders1).toMatchObject({ stream: "orders", status: "succeeded", fetched: 1200, inserted: 1200, quarantined: 0 })
    expect(customers1).toMatchObject({ stream: "customers", status: "succeeded", fetched: 300, inserted: 300 })
    // OAuth2 client credentials, then a parent -> child pair: the invoices of each of the 12 accounts
    const [, , accounts1, invoices1] = summaries(first)
    expect(accounts1).toMatchObject({ stream: "accounts", status: "succeeded", inserted: 12 })
    expect(invoices1).toMatchObject({ stream: "invoices", status: "succeeded", parents: 12, parents_skipped: 0 })
    expect(invoices1!.inserted).toBeGreaterThan(0)
    expect(first.stderr).not.toContain("demo-secret")

    const second = await run("run")
    expect(second.code, second.stderr).toBe(0)
    const [orders2, customers2] = summaries(second)
    // the demo API changed 5 orders and added 1 after the first full read
    expect(orders2).toMatchObject({ inserted: 1, updated: 5, quarantined: 0 })
    expect(customers2).toMatchObject({ inserted: 0, updated: 0 })
    // one invoice was paid in between: only its account's read finds it, from that account's checkpoint
    expect(summaries(second)[3]).toMatchObject({ stream: "invoices", inserted: 0, updated: 1, parents: 12 })

    const count = await run("sql", "--json", "select count(*)::int as n from orders")
    expect(count.code).toBe(0)
    expect(JSON.parse(count.stdout)).toEqual([{ n: 1201 }])

    const status = await run("status", "--json")
    expect(status.code).toBe(0)
    const parsed = JSON.parse(status.stdout)
    expect(parsed.database).toContain("embedded Postgres")
    expect(parsed.streams.map((s: { stream: string }) => s.stream)).toEqual(["orders", "customers", "accounts", "invoices"])
    expect(parsed.streams[0]).toMatchObject({ status: "succeeded", inserted: 1, updated: 5, checkpoint: orders2!.checkpoint })
  })

  it("survives kill -9 mid-run: the next run converges and nothing committed is lost", async () => {
    // a source that does not change, so the synced tables must equal it exactly
    // big enough that the orders stream takes seconds, so a kill 300 ms into it lands mid-run
    const still = await startDemoServer({ orders: 30_000, customers: 300, flaky: 0, mutatePerRun: 0, addPerRun: 0 })
    const killEnv = { DEMO_API_URL: still.url, FERRY_DATA_DIR: join(dataDir, "killed"), DATABASE_URL: "" }
    const args = ["run", "--config", join(root, "ferry.config.yaml")]
    const running = start(args, { cwd: dataDir, env: killEnv })
    // kill it once it is writing: after its first batch has been committed and logged
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 8_000)
      running.child.stderr!.on("data", (chunk: Buffer) => {
        if (chunk.toString().includes("run.start")) {
          clearTimeout(timer)
          setTimeout(resolve, 300)
        }
      })
    })
    running.child.kill("SIGKILL")
    const killed = await running.done
    expect(killed.signal).toBe("SIGKILL")

    const again = await ferry(args, { cwd: dataDir, env: killEnv })
    expect(again.code, again.stderr).toBe(0)
    const count = await ferry(["sql", "--json", "select (select count(*) from orders)::int as orders, (select count(*) from customers)::int as customers", "--config", join(root, "ferry.config.yaml")], { cwd: dataDir, env: killEnv })
    await still.close()
    expect(JSON.parse(count.stdout)).toEqual([{ orders: 30_000, customers: 300 }])
  })
})
