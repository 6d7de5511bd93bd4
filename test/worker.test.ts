/**
 * `ferry worker` and `ferry enqueue` (issue 15 items 2, 3, 5, 6, 7) through the bin, on the real
 * Postgres server and a real HTTP source: jobs run once per enqueue and never twice at once, schedules
 * are upserted and removed, a SIGTERM hands a running job back to the other worker, a SIGKILLed
 * worker's job is taken over within 30 s with no row lost or duplicated, /healthz and /metrics answer.
 * pg-boss 12 needs Node 22.12: on an older Node the same file checks the 78 gate instead. Each test has
 * a database of its own (pg-boss's schema `ferry_jobs` in it).
 */
import { spawn } from "node:child_process"
import { realpathSync } from "node:fs"
import { createServer } from "node:net"
import { join } from "node:path"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { supportsNode } from "../src/worker/Boss.js"
import { type Api, makeRecords, startApi } from "./support/api.js"
import { bin, configDir, ferry, parseLogs } from "./support/cli.js"
import { createTestDatabase, serverOnly, type TestDatabase } from "./support/pg.js"

const newNode = supportsNode(process.versions.node)

describe.skipIf(newNode)("on Node older than 22.12", () => {
  it.each(["worker", "enqueue"])("ferry %s exits 78 saying which Node it needs, before reading the config", async (command) => {
    const result = await ferry([command, "--config", "/nonexistent/ferry.yaml", ...(command === "enqueue" ? ["--stream", "a"] : [])])
    expect(result.code, result.stderr).toBe(78)
    expect(result.stderr).toContain(`ferry ${command} needs Node 22.12 or later (this is Node ${process.versions.node})`)
    expect(result.stderr).not.toContain("/nonexistent")
  })
})

interface Worker {
  readonly name: string
  readonly child: import("node:child_process").ChildProcess
  readonly logs: () => Array<Record<string, any>>
  readonly waitFor: (test: (line: Record<string, any>) => boolean, ms?: number) => Promise<Record<string, any>>
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>
}

describe.skipIf(!newNode || serverOnly)("ferry worker", () => {
  let api: Api
  let db: TestDatabase
  const workers: Array<Worker> = []
  const total = 60

  beforeAll(async () => {
    api = await startApi(makeRecords(total), { pageSize: 5 })
  })
  afterAll(async () => {
    await api?.close()
  })
  afterEach(async () => {
    for (const w of workers.splice(0)) w.child.kill("SIGKILL")
    api.delayMs = 0
    api.fail = undefined
    await db?.drop()
  })

  const config = (streams: ReadonlyArray<string>, schedules: Record<string, string> = {}) =>
    configDir(`database: { url: "\${DATABASE_URL}" }
streams:
${streams.map((name) => `  - name: ${name}
    source:
      url: ${api.url}/link
      records: data
      pagination: { type: link }
      incremental: { cursorField: updated_at, param: since, initial: "2000-01-01T00:00:00Z", order: asc }
      retry: { attempts: 2, base: 10 millis, max: 1 second }
    target: { table: ${name}, primaryKey: [id], columns: { id: text, name: text, updated_at: timestamptz } }
${schedules[name] === undefined ? "" : `    schedule: "${schedules[name]}"\n`}`).join("")}`)

  const freshDb = async () => {
    db = await createTestDatabase("ferry_worker")
    return db
  }

  const startWorker = (name: string, dir: string, ...args: Array<string>): Worker => {
    const child = spawn(process.execPath, [bin, "worker", ...args], {
      cwd: dir,
      env: { PATH: process.env.PATH, FERRY_LOG_FORMAT: "json", DATABASE_URL: db.url },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stderr = ""
    const waiters: Array<() => void> = []
    child.stderr!.on("data", (d) => {
      stderr += d
      waiters.forEach((w) => w())
    })
    child.stdout!.resume()
    const logs = () => parseLogs(stderr.slice(0, stderr.lastIndexOf("\n") + 1))
    const waitFor = (test: (line: Record<string, any>) => boolean, ms = 30_000) =>
      new Promise<Record<string, any>>((resolve, reject) => {
        const check = () => {
          const found = logs().find(test)
          if (found !== undefined) {
            clearTimeout(timer)
            resolve(found)
          }
        }
        const timer = setTimeout(() => reject(new Error(`${name}: no such log line within ${ms} ms; stderr:\n${stderr}`)), ms)
        waiters.push(check)
        check()
      })
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
      child.on("close", (code, signal) => resolve({ code, signal, at: Date.now() }))
    )
    const worker = { name, child, logs, waitFor, exit }
    workers.push(worker)
    return worker
  }

  const enqueue = (dir: string, stream: string) => ferry(["enqueue", "--stream", stream], { cwd: dir, env: { DATABASE_URL: db.url } })

  /** the table holds exactly the source's records: none lost, none twice */
  const expectComplete = async (table: string) => {
    const rows = await db.query<{ id: string }>(`SELECT id FROM public.${table} ORDER BY id`)
    expect(rows.map((r) => r.id)).toEqual(api.records.map((r) => r.id).sort())
  }

  const runsOf = (stream: string) =>
    db.query<{ status: string; run_id: string }>(`SELECT status, run_id FROM ferry.runs WHERE stream = $1 ORDER BY started_at`, [stream])

  it("two workers run each enqueued job once, never a stream twice at once; a second enqueue while one waits is dropped", async () => {
    await freshDb()
    const dir = config(["a", "b", "c"])
    const first = await enqueue(dir, "a")
    expect(first.code, first.stderr).toBe(0)
    expect(first.stdout).toMatch(/^a: queued job [0-9a-f-]{36}$/m)
    const second = await enqueue(dir, "a")
    expect(second.code, second.stderr).toBe(0)
    expect(second.stdout).toContain("a: a job is already queued")
    for (const s of ["b", "c"]) expect((await enqueue(dir, s)).code).toBe(0)
    api.delayMs = 100
    const one = startWorker("one", dir, "--concurrency", "2")
    const two = startWorker("two", dir, "--concurrency", "2")
    const ended = (stream: string) => (l: Record<string, any>) => l.msg === "job.end" && l.stream === stream
    const both = (test: (l: Record<string, any>) => boolean) => Promise.race([one.waitFor(test), two.waitFor(test)])
    // a enqueued again while it runs: queued beside the running one, it runs after it, not beside it
    await both((l) => l.msg === "run.start" && l.stream === "a")
    const again = await enqueue(dir, "a")
    expect(again.stdout).toMatch(/^a: queued job /m)
    await Promise.all(["a", "b", "c"].map((s) => both(ended(s))))
    const ends = () => [...one.logs(), ...two.logs()].filter(ended("a")).length
    for (let waited = 0; ends() < 2 && waited < 20_000; waited += 200) await new Promise((r) => setTimeout(r, 200))
    const lines = [...one.logs(), ...two.logs()]
    for (const s of ["b", "c"]) {
      expect(lines.filter((l) => l.msg === "job.start" && l.stream === s)).toHaveLength(1)
      expect((await runsOf(s)).map((r) => r.status)).toEqual(["succeeded"])
      await expectComplete(s)
    }
    // a: one job per accepted enqueue (the dropped one added none), one after the other
    const spans = lines.filter((l) => l.stream === "a" && (l.msg === "job.start" || l.msg === "job.end"))
      .sort((x, y) => Date.parse(x.timestamp ?? x.ts) - Date.parse(y.timestamp ?? y.ts))
    expect(spans.map((l) => l.msg)).toEqual(["job.start", "job.end", "job.start", "job.end"])
    expect(spans.every((l) => l.msg === "job.start" || l.outcome === "completed")).toBe(true)
    await expectComplete("a")
    expect(lines.find((l) => l.msg === "worker.start")).toMatchObject({ concurrency: 2, streams: ["a", "b", "c"], jobs_schema: "ferry_jobs" })
  })

  it("enqueue: an unknown stream is 64; the embedded database is 78; a bad schedule is 78 naming the stream", async () => {
    await freshDb()
    const dir = config(["a"])
    const unknown = await enqueue(dir, "nope")
    expect(unknown.code).toBe(64)
    expect(unknown.stderr).toContain(`unknown stream \\"nope\\"`)
    const embedded = configDir(`streams:\n  - name: a\n    source: { url: "${api.url}/none" }\n    target: { table: a, primaryKey: [id] }\n`)
    const local = await ferry(["worker"], { cwd: embedded })
    expect(local.code).toBe(78)
    expect(local.stderr).toContain("ferry worker needs database.url")
    const bad = await ferry(["worker"], { cwd: config(["a", "b"], { b: "61 * * * *" }), env: { DATABASE_URL: db.url } })
    expect(bad.code).toBe(78)
    expect(bad.stderr).toContain(`stream \\"b\\": not a cron schedule: minute field: \\"61\\" is not in 0-59`)
    const listen = await ferry(["worker", "--listen", "nowhere"], { cwd: dir, env: { DATABASE_URL: db.url } })
    expect(listen.code).toBe(64)
  })

  it("schedules: upserted at start (UTC) and removed once the stream has none", async () => {
    await freshDb()
    const scheduled = startWorker("one", config(["a", "b"], { a: "*/5 * * * *" }))
    const started = await scheduled.waitFor((l) => l.msg === "worker.start")
    expect(started).toMatchObject({ scheduled: ["a"], unscheduled: [] })
    const rows = await db.query<{ name: string; cron: string; timezone: string }>(`SELECT name, cron, timezone FROM ferry_jobs.schedule`)
    expect(rows).toEqual([{ name: "ferry/public.a/a", cron: "*/5 * * * *", timezone: "UTC" }])
    scheduled.child.kill("SIGTERM")
    expect((await scheduled.exit).code).toBe(0)
    const unscheduled = startWorker("two", config(["a", "b"]))
    expect(await unscheduled.waitFor((l) => l.msg === "worker.start")).toMatchObject({ scheduled: [], unscheduled: ["a"] })
    expect(await db.query(`SELECT name FROM ferry_jobs.schedule`)).toEqual([])
  })

  it("SIGTERM mid-run: the worker exits 0 within its grace, the job goes back and the other worker finishes it", async () => {
    await freshDb()
    const dir = config(["a"])
    api.delayMs = 250
    const one = startWorker("one", dir, "--grace", "10s")
    await one.waitFor((l) => l.msg === "worker.start")
    expect((await enqueue(dir, "a")).code).toBe(0)
    await one.waitFor((l) => l.msg === "run.start")
    await new Promise((r) => setTimeout(r, 1200))
    const two = startWorker("two", dir)
    await two.waitFor((l) => l.msg === "worker.start")
    const signalled = Date.now()
    one.child.kill("SIGTERM")
    const exit = await one.exit
    expect(exit.code, one.logs().map((l) => JSON.stringify(l)).join("\n")).toBe(0)
    expect(exit.at - signalled).toBeLessThan(10_000)
    expect(one.logs().find((l) => l.msg === "job.end")).toMatchObject({ stream: "a", outcome: "handed_back" })
    expect(one.logs().find((l) => l.msg === "run.summary")).toMatchObject({ status: "interrupted" })
    api.delayMs = 0
    const done = await two.waitFor((l) => l.msg === "job.end", 30_000)
    expect(done).toMatchObject({ stream: "a", outcome: "completed" })
    await expectComplete("a")
  })

  it("a second signal exits at once (143), without waiting for the stop", async () => {
    await freshDb()
    const dir = config(["a"])
    api.delayMs = 3000
    const one = startWorker("one", dir)
    await one.waitFor((l) => l.msg === "worker.start")
    expect((await enqueue(dir, "a")).code).toBe(0)
    await one.waitFor((l) => l.msg === "run.start")
    one.child.kill("SIGINT")
    await one.waitFor((l) => l.msg === "worker.stopping")
    const signalled = Date.now()
    one.child.kill("SIGTERM")
    const exit = await one.exit
    expect(exit.code).toBe(143)
    expect(exit.at - signalled).toBeLessThan(1500)
  })

  it("SIGKILL mid-run: the other worker takes the job over within 30 s and resumes; nothing lost or duplicated", async () => {
    await freshDb()
    const dir = config(["a"])
    api.delayMs = 250
    const one = startWorker("one", dir)
    await one.waitFor((l) => l.msg === "worker.start")
    expect((await enqueue(dir, "a")).code).toBe(0)
    await one.waitFor((l) => l.msg === "run.start")
    const two = startWorker("two", dir)
    await two.waitFor((l) => l.msg === "worker.start")
    await new Promise((r) => setTimeout(r, 1000))
    const killed = Date.now()
    one.child.kill("SIGKILL")
    const resumed = await two.waitFor((l) => l.msg === "run.start" && l.stream === "a", 45_000)
    const takeover = Date.parse(resumed.timestamp ?? resumed.ts) - killed
    console.log(`takeover after kill -9: ${takeover} ms`)
    expect(takeover).toBeLessThan(30_000)
    api.delayMs = 0
    expect(await two.waitFor((l) => l.msg === "job.end", 30_000)).toMatchObject({ stream: "a", outcome: "completed" })
    await expectComplete("a")
    // the second run resumed from the first's checkpoint: it did not read everything again
    const summary = two.logs().find((l) => l.msg === "run.summary")!
    expect(summary.fetched).toBeLessThan(total)
  })

  it("a run that fails for good (69: the source answers 404) fails its job without retries; the next enqueue runs anew", async () => {
    await freshDb()
    const dir = config(["a"])
    const one = startWorker("one", dir)
    await one.waitFor((l) => l.msg === "worker.start")
    api.fail = () => 404
    expect((await enqueue(dir, "a")).code).toBe(0)
    expect(await one.waitFor((l) => l.msg === "job.end")).toMatchObject({ stream: "a", exit_code: 69, outcome: "failed" })
    await new Promise((r) => setTimeout(r, 4000))
    expect(one.logs().filter((l) => l.msg === "job.start")).toHaveLength(1)
    const [job] = await db.query(`SELECT state, output FROM ferry_jobs.job WHERE name = 'ferry/public.a/a'`)
    expect(job).toMatchObject({ state: "cancelled", output: { exit_code: 69 } })
    api.fail = undefined
    expect((await enqueue(dir, "a")).code).toBe(0)
    await one.waitFor((l) => l.msg === "job.end" && l.outcome === "completed")
    await expectComplete("a")
  })

  it("--listen: /healthz answers ok (503 once the database is gone) and /metrics is valid Prometheus text with the job counts and the stream's freshness", async () => {
    await freshDb()
    const dir = config(["a"])
    const port = await freePort()
    const one = startWorker("one", dir, "--listen", `127.0.0.1:${port}`)
    await one.waitFor((l) => l.msg === "worker.start")
    expect((await enqueue(dir, "a")).code).toBe(0)
    await one.waitFor((l) => l.msg === "job.end")
    const health = await fetch(`http://127.0.0.1:${port}/healthz`)
    expect([health.status, await health.text()]).toEqual([200, "ok\n"])
    const response = await fetch(`http://127.0.0.1:${port}/metrics`)
    expect(response.headers.get("content-type")).toContain("text/plain; version=0.0.4")
    const metrics = parsePrometheus(await response.text())
    expect(metrics.get("ferry_worker_jobs_running")).toEqual({ type: "gauge", samples: [{ labels: {}, value: 0 }] })
    expect(metrics.get("ferry_worker_jobs_completed_total")).toEqual({ type: "counter", samples: [{ labels: { config: join(realpathSync(dir), "ferry.config.yaml"), stream: "a" }, value: 1 }] })
    expect(metrics.get("ferry_worker_jobs_failed_total")).toEqual({ type: "counter", samples: [] })
    const [success] = metrics.get("ferry_last_success_timestamp_seconds")!.samples
    expect(success!.labels).toEqual({ config: join(realpathSync(dir), "ferry.config.yaml"), stream: "a" })
    expect(Math.abs(success!.value - Date.now() / 1000)).toBeLessThan(60)
    const [lag] = metrics.get("ferry_checkpoint_lag_seconds")!.samples
    expect(lag!.labels).toEqual({ config: join(realpathSync(dir), "ferry.config.yaml"), stream: "a" })
    const newest = Math.max(...api.records.map((r) => Date.parse(r.updated_at)))
    expect(Math.abs(lag!.value - (Date.now() - newest) / 1000)).toBeLessThan(60)
    expect((await fetch(`http://127.0.0.1:${port}/nope`)).status).toBe(404)
    // the database gone: 503, saying why
    await db.drop()
    const down = await fetch(`http://127.0.0.1:${port}/healthz`)
    expect(down.status).toBe(503)
    expect(await down.text()).toMatch(/^unhealthy: the job queue's database does not answer/)
  })
})

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = createServer()
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as import("node:net").AddressInfo
      server.close(() => resolve(port))
    })
  })

/** A strict reader of the text format: HELP then TYPE before a family's samples, nothing else. */
const parsePrometheus = (text: string) => {
  expect(text.endsWith("\n")).toBe(true)
  const families = new Map<string, { type: string; samples: Array<{ labels: Record<string, string>; value: number }> }>()
  let current: string | undefined
  for (const line of text.slice(0, -1).split("\n")) {
    const help = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$/.exec(line)
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line)
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\})? (\S+)$/.exec(line)
    if (help) {
      expect(families.has(help[1]!), `family ${help[1]} twice`).toBe(false)
      current = help[1]
    } else if (type) {
      expect(type[1]).toBe(current)
      families.set(current!, { type: type[2]!, samples: [] })
    } else if (sample) {
      expect(sample[1], line).toBe(current)
      const labels = Object.fromEntries([...(sample[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1]!, m[2]!]))
      const value = Number(sample[3])
      expect(Number.isNaN(value), line).toBe(false)
      families.get(current!)!.samples.push({ labels, value })
    } else {
      throw new Error(`not a line of the Prometheus text format: ${JSON.stringify(line)}`)
    }
  }
  return families
}
