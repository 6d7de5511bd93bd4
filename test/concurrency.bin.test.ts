/**
 * `ferry run --concurrency N` and `concurrency:` (issue 15 item 1) through the bin: streams run N at a
 * time against a slow source (the source sees N requests in flight at once; without it, one), a parent
 * still runs before its children, every log line names its stream, and the exit code is the worst of
 * the streams'. The embedded database runs them one after another, and says so. Speed is measured by
 * `scripts/bench/concurrency.mjs`, not here. Streams at once need sessions of their own: the embedded
 * test database's socket serves one session, whose statements several streams would interleave (as in
 * test/state.test.ts), so those tests run on the server pass; Ferry's own embedded database runs the
 * streams one after another (the last test).
 */
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { configDir, ferry, summaries } from "./support/cli.js"
import { json, startServer, type TestServer } from "./support/http.js"
import { fileDatabase, serverOnly } from "./support/pg.js"

const db = fileDatabase("ferry_concurrency")
let api: TestServer
let inFlight = 0
let most = 0
/** when each request arrived and was answered, by path */
const timeline: Array<{ path: string; start: number; end: number }> = []

beforeAll(async () => {
  api = await startServer(async (req, res, url) => {
    const start = performance.now()
    inFlight++
    most = Math.max(most, inFlight)
    await new Promise((resolve) => setTimeout(resolve, 150))
    inFlight--
    if (url.pathname.startsWith("/broken")) return json(res, { message: "gone" }, 404)
    const page = Number(url.searchParams.get("page") ?? "1")
    const next: Record<string, string> = page < 2 ? { link: `<http://${req.headers.host}${url.pathname}?page=${page + 1}>; rel="next"` } : {}
    timeline.push({ path: url.pathname, start, end: performance.now() })
    json(res, [{ id: page * 10 + 1 }, { id: page * 10 + 2 }], 200, next)
  })
})
afterAll(async () => {
  await api?.close()
})

const stream = (name: string, path = `/${name}/items`, extra = "") => `
  - name: ${name}
    source: { url: "${api.url}${path}", pagination: { type: link }, retry: { attempts: 1 } }
    target: { table: ${name}, primaryKey: [id], columns: { id: bigint } }
${extra}`

const config = (top: string, ...streams: Array<string>) =>
  configDir(`database: { url: "\${DATABASE_URL}" }\n${top}\nstreams:${streams.join("")}`)

const run = (dir: string, ...args: Array<string>) => {
  most = 0
  timeline.length = 0
  return ferry(["run", ...args], { cwd: dir, env: { DATABASE_URL: db.url } })
}

const four = () => config("", stream("a"), stream("b"), stream("c"), stream("d"))

describe("ferry run --concurrency", () => {
  it("one stream at a time by default: the source never sees two requests at once", async () => {
    const result = await run(four())
    expect(result.code, result.stderr).toBe(0)
    expect(most).toBe(1)
    expect(summaries(result).map((s) => [s.stream, s.inserted])).toEqual([["a", 4], ["b", 4], ["c", 4], ["d", 4]])
  })

  it.skipIf(serverOnly)("--concurrency 4: the four streams' requests overlap; every line names its stream; all succeed", async () => {
    const result = await run(four(), "--concurrency", "4", "--full-refresh")
    expect(result.code, result.stderr).toBe(0)
    expect(most).toBeGreaterThanOrEqual(3)
    expect(summaries(result).map((s) => s.stream).sort()).toEqual(["a", "b", "c", "d"])
    expect(summaries(result).every((s) => s.status === "succeeded" && s.unchanged === 4)).toBe(true)
    // attributable: every line of a stream's run says which
    for (const line of result.logs.filter((l) => ["run.start", "run.summary"].includes(l.msg))) {
      expect(["a", "b", "c", "d"]).toContain(line.stream)
    }
  })

  it.skipIf(serverOnly)("concurrency: in the config does the same, and --concurrency 1 overrides it", async () => {
    const dir = config("concurrency: 4", stream("a"), stream("b"), stream("c"), stream("d"))
    expect((await run(dir)).code).toBe(0)
    expect(most).toBeGreaterThanOrEqual(3)
    expect((await run(dir, "--concurrency", "1")).code).toBe(0)
    expect(most).toBe(1)
  })

  it.skipIf(serverOnly)("a child still waits for its parent; the exit code is the worst stream's", async () => {
    const child = `
  - name: kids
    parent: { stream: p }
    source: { url: "${api.url}/p/{parent.id}/kids", pagination: { type: link }, retry: { attempts: 1 } }
    target: { table: kids, primaryKey: [pid, id], columns: { pid: { type: bigint, from: "{parent.id}" }, id: bigint } }
`
    const dir = config("", child, stream("p"), stream("x"), stream("broken", "/broken/items"))
    const result = await run(dir, "--concurrency", "4")
    expect(result.code).toBe(69)
    const parentDone = Math.max(...timeline.filter((t) => t.path === "/p/items").map((t) => t.end))
    const childStart = Math.min(...timeline.filter((t) => t.path.endsWith("/kids")).map((t) => t.start))
    expect(childStart).toBeGreaterThan(parentDone)
    const byStream = Object.fromEntries(summaries(result).map((s) => [s.stream, s.exit_code]))
    expect(byStream).toEqual({ p: 0, x: 0, broken: 69, kids: 0 })
  })

  it("a bad value is a usage error (64) or a config error (78), in one line", async () => {
    for (const bad of ["0", "two", "1.5", "65"]) {
      const result = await run(four(), "--concurrency", bad)
      expect(result.code).toBe(64)
      expect(result.logs.at(-1)?.msg).toBe("--concurrency takes a whole number from 1 to 64 (ferry --help shows the usage)")
    }
    const result = await run(config("concurrency: 0", stream("a")))
    expect(result.code).toBe(78)
    expect(result.logs.at(-1)?.msg).toMatch(/^concurrency: expected a whole number >= 1/)
  })

  it("the embedded database runs the streams one after another, and says so", async () => {
    const dir = configDir(`database: { url: "" }\nstreams:${stream("a")}${stream("b")}`)
    const result = await ferry(["run", "--concurrency", "2"], {
      cwd: dir,
      env: { DATABASE_URL: undefined, FERRY_DATA_DIR: join(mkdtempSync(join(tmpdir(), "ferry-conc-")), "pgdata") }
    })
    expect(result.code, result.stderr).toBe(0)
    expect(result.logs.find((l) => l.msg === "concurrency.embedded")).toMatchObject({ asked: 2, using: 1 })
    expect(summaries(result).map((s) => s.status)).toEqual(["succeeded", "succeeded"])
  }, 60_000)
})
