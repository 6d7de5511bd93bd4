/**
 * `ferry run --metrics-file PATH` / FERRY_METRICS_FILE (issue 16 item 1), through the bin, on the
 * server and on the embedded database: the file node_exporter's textfile collector reads, in the
 * Prometheus text format (checked strictly here, and by promtool where CI provides it), written whole
 * by a rename after every run; a failed run updates the failure series and keeps the last success; a
 * run of one stream keeps the others' samples; a run that cannot reach the database still says so.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { configDir, ferry } from "./support/cli.js"
import { json, startServer, type TestServer } from "./support/http.js"
import { fileDatabase } from "./support/pg.js"
import { checkExposition, type PromSample, promtool, promtoolProblems } from "./support/prometheus.js"

const db = fileDatabase("ferry_metrics")
let api: TestServer
/** the streams whose source answers 500 */
const failing = new Set<string>()
const newest = { a: "2024-05-01T10:00:00Z", b: "2024-05-02T00:00:00Z" }

beforeAll(async () => {
  api = await startServer((_req, res, url) => {
    const name = url.pathname.slice(1)
    if (failing.has(name)) return json(res, { message: "down" }, 500)
    json(res, [
      { id: 1, updated_at: "2024-01-01T00:00:00Z" },
      { id: 2, updated_at: newest[name as "a" | "b"] }
    ])
  })
})
afterAll(async () => {
  await api?.close()
})

const config = () =>
  configDir(`
database: { url: "\${DATABASE_URL}" }
streams:
${["a", "b"].map((name) => `
  - name: ${name}
    source:
      url: ${api.url}/${name}
      incremental: { cursorField: updated_at, param: since, initial: "2020-01-01T00:00:00Z" }
      retry: { attempts: 1 }
    target: { table: metrics_${name}, primaryKey: [id], columns: { id: bigint, updated_at: timestamptz } }`).join("")}
`)

const read = (path: string): ReadonlyArray<PromSample> => {
  const text = readFileSync(path, "utf8")
  const samples = checkExposition(text)
  const tool = promtool()
  if (process.env.FERRY_TEST_PROMTOOL !== undefined) expect(tool, "FERRY_TEST_PROMTOOL is set: promtool must run").toBeDefined()
  if (tool !== undefined) expect(promtoolProblems(tool, text)).toBe("")
  return samples
}
const value = (samples: ReadonlyArray<PromSample>, name: string, labels: Record<string, string>) =>
  samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value

describe("--metrics-file", () => {
  it("writes every series per stream; a failure keeps the last success; one stream's run keeps the other's", async () => {
    const dir = config()
    const out = mkdtempSync(join(tmpdir(), "ferry-metrics-"))
    const path = join(out, "ferry.prom")
    const run = (...args: Array<string>) => ferry(["run", "--metrics-file", path, ...args], { cwd: dir, env: { DATABASE_URL: db.url } })

    const before = Date.now() / 1000
    const first = await run()
    expect(first.code, first.stderr).toBe(0)
    const one = read(path)
    const after = Date.now() / 1000
    for (const stream of ["a", "b"]) {
      const success = value(one, "ferry_last_success_timestamp_seconds", { stream })!
      expect(success).toBeGreaterThanOrEqual(before - 1)
      expect(success).toBeLessThanOrEqual(after + 1)
      expect(value(one, "ferry_last_run_timestamp_seconds", { stream })).toBe(success)
      expect(value(one, "ferry_last_exit_code", { stream })).toBe(0)
      expect(value(one, "ferry_records", { stream, outcome: "inserted" })).toBe(2)
      expect(value(one, "ferry_records", { stream, outcome: "quarantined" })).toBe(0)
      expect(value(one, "ferry_retries", { stream })).toBe(0)
      expect(value(one, "ferry_run_duration_seconds", { stream })).toBeGreaterThan(0)
      // now minus the checkpoint: the newest updated_at
      const lag = value(one, "ferry_checkpoint_lag_seconds", { stream })!
      expect(Math.abs(lag - (after - Date.parse(newest[stream as "a" | "b"]) / 1000))).toBeLessThan(5)
    }
    expect(statSync(path).mode & 0o777).toBe(0o644)
    expect(readdirSync(out)).toEqual(["ferry.prom"])

    // b fails: its failure series move on, its last success stays; a's run is new
    failing.add("b")
    const second = await run()
    expect(second.code).toBe(69)
    const two = read(path)
    expect(value(two, "ferry_last_exit_code", { stream: "b" })).toBe(69)
    expect(value(two, "ferry_last_success_timestamp_seconds", { stream: "b" })).toBe(value(one, "ferry_last_success_timestamp_seconds", { stream: "b" }))
    expect(value(two, "ferry_last_run_timestamp_seconds", { stream: "b" })).toBeGreaterThan(value(one, "ferry_last_run_timestamp_seconds", { stream: "b" })!)
    expect(value(two, "ferry_last_success_timestamp_seconds", { stream: "a" })).toBeGreaterThan(value(one, "ferry_last_success_timestamp_seconds", { stream: "a" })!)
    expect(value(two, "ferry_records", { stream: "a", outcome: "unchanged" })).toBe(2)

    // a run of a alone: b's samples are as they were
    failing.delete("b")
    const third = await run("--stream", "a")
    expect(third.code, third.stderr).toBe(0)
    const three = read(path)
    for (const s of two.filter((s) => s.labels.stream === "b")) expect(value(three, s.name, s.labels)).toBe(s.value)

    // the database cannot be reached: every stream's exit code says 74, the last successes stay
    const down = await ferry(["run", "--metrics-file", path], { cwd: dir, env: { DATABASE_URL: "postgres://ferry@127.0.0.1:1/none" } })
    expect(down.code).toBe(74)
    const four = read(path)
    for (const stream of ["a", "b"]) {
      expect(value(four, "ferry_last_exit_code", { stream })).toBe(74)
      expect(value(four, "ferry_last_success_timestamp_seconds", { stream })).toBe(value(three, "ferry_last_success_timestamp_seconds", { stream }))
    }
    expect(readdirSync(out)).toEqual(["ferry.prom"])
  })

  it("FERRY_METRICS_FILE, relative to the working directory; a dry run leaves the file alone; an unwritable path is a warning", async () => {
    const dir = config()
    const env = { DATABASE_URL: db.url, FERRY_METRICS_FILE: "out.prom" }
    const result = await ferry(["run", "--stream", "a"], { cwd: dir, env })
    expect(result.code, result.stderr).toBe(0)
    const path = join(dir, "out.prom")
    const written = readFileSync(path, "utf8")
    expect(read(path).map((s) => s.labels.stream)).not.toContain("b")

    const dry = await ferry(["run", "--dry-run"], { cwd: dir, env })
    expect(dry.code, dry.stderr).toBe(0)
    expect(readFileSync(path, "utf8")).toBe(written)

    const nowhere = await ferry(["run", "--stream", "a", "--metrics-file", join(dir, "missing", "x.prom")], { cwd: dir, env })
    expect(nowhere.code, nowhere.stderr).toBe(0)
    expect(nowhere.logs.find((l) => l.msg === "metrics.unwritten")).toMatchObject({ level: "warn", path: join(dir, "missing", "x.prom") })
    expect(existsSync(join(dir, "missing"))).toBe(false)

    const empty = await ferry(["run", "--metrics-file", ""], { cwd: dir, env })
    expect(empty.code).toBe(64)
    expect(empty.stderr).toContain("--metrics-file needs a file path")
  })
})
