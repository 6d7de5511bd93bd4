/**
 * `ferry run --metrics-file PATH` / FERRY_METRICS_FILE (issue 16 item 1), through the bin, on the
 * server and on the embedded database: the file node_exporter's textfile collector reads, in the
 * Prometheus text format (checked strictly here, and by promtool where CI provides it), written whole
 * by a rename after every run; a failed run updates the failure series and keeps the last success; a
 * run of one stream keeps the others' samples; a run that cannot reach the database still says so.
 * Several configs share one file: each series says its config (`config`, the config file's path), a run
 * rewrites only its own config's, under a lock file beside it; a file of the previous release (no
 * `config` label) is taken over by the first config that writes it.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs"
import { hostname, tmpdir } from "node:os"
import { join } from "node:path"
import { configDir, ferry, start } from "./support/cli.js"
import { json, startServer, type TestServer } from "./support/http.js"
import { fileDatabase } from "./support/pg.js"
import { checkExposition, type PromSample, promtool, promtoolProblems } from "./support/prometheus.js"

const db = fileDatabase("ferry_metrics")
let api: TestServer
/** the streams whose source answers 500 */
const failing = new Set<string>()
const newest = { a: "2024-05-01T10:00:00Z", b: "2024-05-02T00:00:00Z", c: "2024-05-03T00:00:00Z" }

beforeAll(async () => {
  api = await startServer((_req, res, url) => {
    const name = url.pathname.slice(1)
    if (failing.has(name)) return json(res, { message: "down" }, 500)
    json(res, [
      { id: 1, updated_at: "2024-01-01T00:00:00Z" },
      { id: 2, updated_at: newest[name as keyof typeof newest] }
    ])
  })
})
afterAll(async () => {
  await api?.close()
})

/** a config of these streams; `tables` prefixes its tables (two configs, two tables per stream name) */
const config = (streams: ReadonlyArray<string> = ["a", "b"], tables = "") =>
  configDir(configText(streams, tables))
const configText = (streams: ReadonlyArray<string>, tables: string) => `
database: { url: "\${DATABASE_URL}" }
streams:
${streams.map((name) => `
  - name: ${name}
    source:
      url: ${api.url}/${name}
      incremental: { cursorField: updated_at, param: since, initial: "2020-01-01T00:00:00Z" }
      retry: { attempts: 1 }
    target: { table: metrics_${tables}${name}, primaryKey: [id], columns: { id: bigint, updated_at: timestamptz } }`).join("")}
`
/** the `config` label of the config in `dir`: its file's absolute path (the bin's working directory is `dir`'s real path) */
const labelOf = (dir: string) => join(realpathSync(dir), "ferry.config.yaml")

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

describe("--metrics-file shared by several configs", () => {
  const lines = (samples: ReadonlyArray<PromSample>, config: string) => samples.filter((s) => s.labels.config === config)

  it("each config rewrites only its own series: a stream gone from one config leaves the other's; one stream name in two configs is two series", async () => {
    const first = config(["a", "b"], "one_")
    const second = config(["b", "c"], "two_")
    const [one, two] = [labelOf(first), labelOf(second)]
    const path = join(mkdtempSync(join(tmpdir(), "ferry-metrics-")), "ferry.prom")
    const run = (dir: string) => ferry(["run", "--metrics-file", path], { cwd: dir, env: { DATABASE_URL: db.url } })

    const ranOne = await run(first)
    expect(ranOne.code, ranOne.stderr).toBe(0)
    const afterOne = read(path)
    expect(afterOne.every((s) => s.labels.config === one)).toBe(true)
    const ranTwo = await run(second)
    expect(ranTwo.code, ranTwo.stderr).toBe(0)
    const afterTwo = read(path)
    // the first config's series exactly as it left them; the second's beside them
    expect(lines(afterTwo, one)).toEqual(afterOne)
    expect(new Set(lines(afterTwo, two).map((s) => s.labels.stream))).toEqual(new Set(["b", "c"]))
    expect(afterTwo.filter((s) => s.name === "ferry_last_success_timestamp_seconds").map((s) => [s.labels.config, s.labels.stream]))
      .toEqual([[one, "a"], [one, "b"], [two, "b"], [two, "c"]].sort((x, y) => (x.join() < y.join() ? -1 : 1)))
    for (const config of [one, two]) {
      expect(value(afterTwo, "ferry_records", { config, stream: "b", outcome: "inserted" })).toBe(2)
      expect(value(afterTwo, "ferry_last_exit_code", { config, stream: "b" })).toBe(0)
    }
    expect(value(afterTwo, "ferry_last_success_timestamp_seconds", { config: two, stream: "b" }))
      .toBeGreaterThan(value(afterTwo, "ferry_last_success_timestamp_seconds", { config: one, stream: "b" })!)

    // b leaves the first config: its series go, the second config's b and c stay as they were
    writeFileSync(join(first, "ferry.config.yaml"), configText(["a"], "one_"))
    const again = await run(first)
    expect(again.code, again.stderr).toBe(0)
    const afterAgain = read(path)
    expect(lines(afterAgain, one).map((s) => s.labels.stream)).not.toContain("b")
    expect(value(afterAgain, "ferry_records", { config: one, stream: "a", outcome: "unchanged" })).toBe(2)
    expect(lines(afterAgain, two)).toEqual(lines(afterTwo, two))
    expect(readdirSync(join(path, ".."))).toEqual(["ferry.prom"])
  })

  it("a file of the previous release (no config label) is taken over by the first config that writes it", async () => {
    const dir = config()
    const path = join(mkdtempSync(join(tmpdir(), "ferry-metrics-")), "ferry.prom")
    // as the previous release wrote it: b and a stream since removed from the config, by stream only
    writeFileSync(path, [
      "# HELP ferry_last_success_timestamp_seconds When the stream's last successful run ended, Unix time.",
      "# TYPE ferry_last_success_timestamp_seconds gauge",
      "ferry_last_success_timestamp_seconds{stream=\"b\"} 1700000000.5",
      "ferry_last_success_timestamp_seconds{stream=\"gone\"} 1700000000",
      "# HELP ferry_records Records of the stream's last run, by outcome.",
      "# TYPE ferry_records gauge",
      "ferry_records{stream=\"b\",outcome=\"inserted\"} 7",
      ""
    ].join("\n"))
    const result = await ferry(["run", "--stream", "a", "--metrics-file", path], { cwd: dir, env: { DATABASE_URL: db.url } })
    expect(result.code, result.stderr).toBe(0)
    const samples = read(path)
    const label = labelOf(dir)
    expect(samples.every((s) => s.labels.config === label)).toBe(true)
    expect(value(samples, "ferry_last_success_timestamp_seconds", { stream: "b" })).toBe(1700000000.5)
    expect(value(samples, "ferry_records", { stream: "b", outcome: "inserted" })).toBe(7)
    expect(samples.map((s) => s.labels.stream)).not.toContain("gone")
    expect(value(samples, "ferry_last_exit_code", { stream: "a" })).toBe(0)
  })

  it("runs of several configs ending together all reach the file; a lock another process holds is waited for, then a warning", async () => {
    const dirs = [config(["a"]), config(["a"]), config(["a"]), config(["a"])]
    const path = join(mkdtempSync(join(tmpdir(), "ferry-metrics-")), "ferry.prom")
    // a big file of another config's: each run's read-modify-rename takes long enough to overlap the others'
    const elsewhere = "/elsewhere/ferry.config.yaml"
    writeFileSync(path, [
      "# HELP ferry_last_exit_code The exit code of the stream's last run (0: succeeded; see the README's exit codes).",
      "# TYPE ferry_last_exit_code gauge",
      ...Array.from({ length: 20_000 }, (_, i) => `ferry_last_exit_code{config="${elsewhere}",stream="s${i}"} ${i % 2}`),
      ""
    ].join("\n"))
    // no database: every run ends at once, and they write the file at the same moment
    const down = { DATABASE_URL: "postgres://ferry@127.0.0.1:1/none" }
    const results = await Promise.all(dirs.map((cwd) => ferry(["run", "--metrics-file", path], { cwd, env: down })))
    for (const result of results) {
      expect(result.code).toBe(74)
      expect(result.logs.find((l) => l.msg === "metrics.unwritten"), result.stderr).toBeUndefined()
    }
    const samples = read(path)
    for (const dir of dirs) expect(value(samples, "ferry_last_exit_code", { config: labelOf(dir), stream: "a" })).toBe(74)
    expect(samples.filter((s) => s.labels.config === elsewhere)).toHaveLength(20_000)
    expect(value(samples, "ferry_last_exit_code", { config: elsewhere, stream: "s19999" })).toBe(1)
    const written = readFileSync(path, "utf8")

    // this (live) process holds the lock: the run waits its few seconds, says so, and exits as it would
    const lock = `${path}.lock`
    writeFileSync(lock, JSON.stringify({ pid: process.pid, host: hostname(), startedAt: new Date().toISOString() }))
    const waited = await ferry(["run", "--metrics-file", path], { cwd: dirs[0], env: down })
    expect(waited.code).toBe(74)
    expect(waited.logs.find((l) => l.msg === "metrics.unwritten")).toMatchObject({ level: "warn", path })
    expect(waited.logs.find((l) => l.msg === "metrics.unwritten")!.reason).toContain(`pid ${process.pid}`)
    expect(readFileSync(path, "utf8")).toBe(written)

    // released while a run waits for it: the run writes then
    const running = start(["run", "--metrics-file", path], { cwd: dirs[0], env: down })
    await new Promise((resolve) => setTimeout(resolve, 2000))
    expect(running.child.exitCode).toBeNull()
    expect(readFileSync(path, "utf8")).toBe(written)
    rmSync(lock)
    const late = await running.done
    expect(late.code).toBe(74)
    expect(late.logs.find((l) => l.msg === "metrics.unwritten"), late.stderr).toBeUndefined()
    const at = { config: labelOf(dirs[0]!), stream: "a" }
    expect(value(read(path), "ferry_last_run_timestamp_seconds", at)).toBeGreaterThan(value(samples, "ferry_last_run_timestamp_seconds", at)!)
    expect(readdirSync(join(path, ".."))).toEqual(["ferry.prom"])
  }, 30_000)
})
