/**
 * Issue 15's proof, through the bin: three `ferry worker` processes share 20 streams of a source whose
 * records change while they are read. One worker is killed with SIGKILL mid-run; another is frozen with
 * SIGSTOP past its lease while it runs a stream, and woken with SIGCONT after a third took the stream
 * over. Then, on a quiet source, one more run of every stream.
 *
 * What must hold:
 * - the killed worker's stream and the frozen worker's stream are taken over by a live worker (the time
 *   is printed: the issue asks for ≤ 30 s);
 * - the frozen worker, once awake, commits nothing for the stream it lost: its transaction is refused
 *   (the lease's epoch moved on), and it says so;
 * - no checkpoint ever moves backwards (sampled every 50 ms all along);
 * - at the end every table equals its source exactly: nothing lost, nothing duplicated, nothing stale.
 *
 * Server only (several sessions) and Node ≥ 22.12 only (pg-boss); CI runs it in its Node 22 step.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import pg from "pg"
import { configDir, ferry, parseLogs, start, type Running } from "./support/cli.js"
import { diff, msOf, readTarget } from "./support/consistency.js"
import { createTestDatabase, type TestDatabase, usingServer } from "./support/pg.js"
import { startTruthApi, truthStreamYaml, type TruthApi } from "./support/truth-api.js"

const [major, minor] = process.versions.node.split(".").map(Number) as [number, number]
const workerNode = major > 22 || (major === 22 && minor >= 12)

const STREAMS = 20
const LEASE_SECONDS = 5

interface Worker {
  readonly name: string
  readonly running: Running
  /** stderr so far, as log lines */
  readonly logs: () => ReadonlyArray<Record<string, any>>
}

const startWorker = (name: string, dir: string, url: string): Worker => {
  const running = start(["worker", "--concurrency", "2", "--grace", "20s"], { cwd: dir, env: { DATABASE_URL: url } })
  let text = ""
  running.child.stderr!.on("data", (d) => (text += d))
  return { name, running, logs: () => parseLogs(text.slice(0, text.lastIndexOf("\n") + 1)) }
}

const until = async <A>(what: string, timeoutMs: number, probe: () => A | undefined | Promise<A | undefined>): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const found = await probe()
    if (found !== undefined && found !== false) return found
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** the streams a worker is running now: a job.start without its job.end */
const runningStreams = (worker: Worker): ReadonlyArray<string> => {
  const open = new Map<string, number>()
  for (const line of worker.logs()) {
    if (line.msg === "job.start") open.set(line.stream, (open.get(line.stream) ?? 0) + 1)
    if (line.msg === "job.end") open.set(line.stream, (open.get(line.stream) ?? 0) - 1)
  }
  return [...open].filter(([, n]) => n > 0).map(([s]) => s)
}

const startsOf = (worker: Worker, stream: string) => worker.logs().filter((l) => l.msg === "job.start" && l.stream === stream)

describe.runIf(usingServer && workerNode)("three workers, a kill -9 and a zombie", () => {
  let db: TestDatabase
  const apis: Array<TruthApi> = []
  const workers: Array<Worker> = []
  /** the checkpoint sampler runs while this is true (afterAll ends it, whatever happened) */
  let sampling = true
  beforeAll(async () => {
    db = await createTestDatabase("ferry_fleet")
    for (let i = 0; i < STREAMS; i++) {
      const api = await startTruthApi({ count: 120, order: "asc", pagination: "link", pageSize: 10, seed: 1500 + i })
      api.delayMs = 120
      api.updatesPerPage = 1
      apis.push(api)
    }
  })
  afterAll(async () => {
    sampling = false
    for (const w of workers) {
      w.running.child.kill("SIGCONT")
      w.running.child.kill("SIGKILL")
    }
    await Promise.all(apis.map((a) => a.close()))
    await db?.drop()
  })

  it("takes over a killed worker's and a frozen worker's streams; the zombie commits nothing; the tables equal the source", async () => {
    const names = apis.map((_, i) => `fleet_${String(i).padStart(2, "0")}`)
    const dir = configDir(`
database: { url: "\${DATABASE_URL}" }
lease: ${LEASE_SECONDS} seconds
streams:
${apis.map((api, i) => truthStreamYaml({ url: api.url, name: names[i]!, order: "asc", lookbackMs: 0, retry: "{ attempts: 3, base: 50 millis, max: 1 second }" })).join("")}
`)
    const enqueueAll = () => Promise.all(names.map(async (stream) => {
      const result = await ferry(["enqueue", "--stream", stream], { cwd: dir, env: { DATABASE_URL: db.url } })
      expect(result.code, result.stderr).toBe(0)
    }))

    // checkpoints, sampled all along: none may ever move backwards
    const sampler = new pg.Client({ connectionString: db.url })
    // the database is dropped with FORCE at the end: a sampler still connected then is no failure
    sampler.on("error", () => undefined)
    await sampler.connect()
    const highest = new Map<string, number>()
    const backwards: Array<string> = []
    const sample = async () => {
      while (sampling) {
        const rows = await sampler.query(`SELECT stream, checkpoint FROM ferry.state`).then((r) => r.rows, () => [])
        for (const { checkpoint, stream } of rows) {
          const ms = msOf(checkpoint)
          const before = highest.get(stream)
          if (before !== undefined && ms < before) backwards.push(`${stream}: ${new Date(before).toISOString()} -> ${checkpoint}`)
          highest.set(stream, Math.max(before ?? ms, ms))
        }
        await new Promise((r) => setTimeout(r, 50))
      }
    }

    const [a, b, c] = ["a", "b", "c"].map((name) => startWorker(name, dir, db.url)) as [Worker, Worker, Worker]
    workers.push(a, b, c)
    await until("three workers started", 30_000, () => workers.every((w) => w.logs().some((l) => l.msg === "worker.start")))
    const sampled = sample()
    await enqueueAll()

    // kill -9 worker a in the middle of a stream: another worker runs it again
    const killedStream = await until("worker a running a stream", 30_000, () => runningStreams(a)[0])
    await new Promise((r) => setTimeout(r, 400))
    a.running.child.kill("SIGKILL")
    const killedAt = Date.now()
    await until(`${killedStream} taken over after the kill`, 60_000, () =>
      [b, c].some((w) => startsOf(w, killedStream).some((l) => Date.parse(l.ts) > killedAt)))
    const takeoverKillMs = Date.now() - killedAt

    // freeze worker b mid-stream, past its lease: worker c takes the stream over
    await enqueueAll()
    const frozenStream = await until("worker b running a stream", 30_000, () => runningStreams(b)[0])
    b.running.child.kill("SIGSTOP")
    const frozenAt = Date.now()
    await until(`${frozenStream} taken over from the frozen worker`, 90_000, () =>
      startsOf(c, frozenStream).some((l) => Date.parse(l.ts) > frozenAt))
    const takeoverStopMs = Date.now() - frozenAt
    // wake the zombie while c works: whatever b tries to commit for that stream is refused
    b.running.child.kill("SIGCONT")
    // Nothing it does for that stream commits: its next commit is fenced out by the epoch (75), or, frozen
    // inside a transaction, its session was ended by the server (idle in transaction past the lease), or its
    // heartbeat finds the job gone first (job.claim_lost) and stops the run before any commit (a commit under
    // way still meets the fence). Whichever comes first, the run does not succeed.
    const zombieLines = () => b.logs().filter((l) => l.stream === frozenStream && Date.parse(l.ts) > frozenAt)
    const refused = await until("the zombie's run of the stream it lost to end", 60_000, () =>
      zombieLines().find((l) => l.msg === "run.summary")).catch((error) => {
      throw new Error(`${error.message}; worker b said of ${frozenStream}:\n${zombieLines().map((l) => JSON.stringify(l)).join("\n")}`)
    })
    expect(refused.status).not.toBe("succeeded")
    // a database error or the lost lease (74/75), or stopped (143): never an internal error (70)
    expect([74, 75, 143]).toContain(refused.exit_code)
    console.log(`worker-fleet: takeover after kill -9 ${takeoverKillMs} ms, after SIGSTOP ${takeoverStopMs} ms; zombie: ${refused.status} ${refused.exit_code} ${refused.error ?? ""}`)

    // a quiet source, and one more run of every stream, after the last change
    for (const api of apis) api.updatesPerPage = 0
    const quietAt = new Date()
    await enqueueAll()
    await until("a succeeded run of every stream on the quiet source", 120_000, async () => {
      const rows = await db.query(
        `SELECT count(DISTINCT stream)::int AS n FROM ferry.runs WHERE status = 'succeeded' AND started_at > $1`,
        [quietAt]
      )
      return rows[0].n === STREAMS ? true : undefined
    })
    sampling = false
    await sampled
    await sampler.end()

    expect(backwards).toEqual([])
    for (const [i, api] of apis.entries()) {
      const target = await readTarget(db.query, names[i]!)
      expect({ stream: names[i], ...diff(api.truth(), target) }).toEqual({ stream: names[i], missing: [], extra: [], stale: [] })
    }
    expect(takeoverKillMs).toBeLessThan(30_000)

    // SIGTERM: the live workers stop within their grace and exit 0
    for (const w of [b, c]) w.running.child.kill("SIGTERM")
    const ends = await Promise.all([b.running.done, c.running.done])
    expect(ends.map((e) => e.code)).toEqual([0, 0])
  }, 400_000)
})
