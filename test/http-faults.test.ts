/**
 * HTTP faults, through the real bin against a real database: rate limits (Retry-After in seconds and
 * as a date, X-RateLimit-Reset), 5xx bursts, connection resets, a stall mid-body, truncated JSON,
 * HTML, pagination that loops, empty pages. Each case either converges to the source in the same
 * run, or exits with its documented code (69/75) with the checkpoint at most at what was written,
 * a log that says what happened, and a next run (fault gone) that converges.
 * Exact wait lengths under a TestClock are in test/retry.test.ts; here the waits are real and short.
 */
import { describe, expect, it } from "@effect/vitest"
import { makeRecords } from "./support/api.js"
import { type CliResult, ferry, streamConfig, summaries } from "./support/cli.js"
import { type Fault, type FaultServer, startFaultServer } from "./support/fault-server.js"
import { fileDatabase } from "./support/pg.js"
import { closedAfterAll } from "./support/http.js"
import { expectNoSecrets, ferryTablesText, withPassword } from "./support/secrets.js"

const TOKEN = "fault-bearer-Zq81xW"
const DB_PASSWORD = "fault-dbpw-Kq27mP"
const ATTEMPTS = 4

const db = fileDatabase()
const servers = closedAfterAll<FaultServer>()

/** 30 records (ties on updated_at every three), 7 per page: pages at 0, 7, 14, 21, 28. */
const server = async (fault: FaultServer["fault"]) => {
  const s = await startFaultServer(makeRecords(30), 7)
  s.fault = fault
  servers.push(s)
  return s
}

const setup = (table: string, s: FaultServer) => {
  const dir = streamConfig({
    name: table,
    url: `${s.url}/items`,
    auth: `{ type: bearer, token: "\${API_TOKEN}" }`,
    timeout: "500 millis",
    retry: `{ attempts: ${ATTEMPTS}, base: 10 millis, max: 3 seconds }`
  })
  const env = { DATABASE_URL: withPassword(db.url, DB_PASSWORD), API_TOKEN: TOKEN }
  return { run: () => ferry(["run"], { cwd: dir, env }) }
}

/** when the nth request for the page at `at` comes (first run, from the initial cursor), answer `fault` */
const onPage = (page: number, fault: (n: number) => Fault | undefined) => (_key: string, n: number, at: number) =>
  at === page * 7 ? fault(n) : undefined

interface TableRow {
  id: string
  name: string
  amount: string
  updated_at: Date
}

const tableRows = (table: string) =>
  db.query<TableRow>(`SELECT id, name, amount::text AS amount, updated_at FROM ${table} ORDER BY id`)

const checkpointOf = async (table: string): Promise<string | undefined> => {
  const rows = await db.query<{ cursor: string | null }>(`SELECT cursor FROM ferry.state WHERE stream = $1`, [table])
  return rows[0]?.cursor ?? undefined
}

const noSecrets = async (...results: Array<CliResult>) => {
  expectNoSecrets(
    [...results.flatMap((r) => [r.stdout, r.stderr]), ...(await ferryTablesText(db))],
    [TOKEN, DB_PASSWORD]
  )
}

/**
 * After a failed run: the table holds exactly the pages served in full, and the checkpoint is the
 * greatest cursor among them, so every source record before the checkpoint is in the table
 * (the next run, which starts at the checkpoint, cannot skip one).
 */
const expectConsistent = async (table: string, s: FaultServer) => {
  const rows = await tableRows(table)
  const served = new Set(s.delivered.flatMap((d) => d.ids))
  expect(rows.map((r) => r.id).sort()).toEqual([...served].sort())
  const checkpoint = await checkpointOf(table)
  if (rows.length === 0) {
    expect(checkpoint).toBeUndefined()
    return
  }
  const greatest = Math.max(...rows.map((r) => r.updated_at.getTime()))
  expect(checkpoint).toBeDefined()
  expect(Date.parse(checkpoint!)).toBe(greatest)
  const ids = new Set(rows.map((r) => r.id))
  const before = s.records.filter((r) => Date.parse(r.updated_at) < Date.parse(checkpoint!))
  expect(before.filter((r) => !ids.has(r.id))).toEqual([])
}

/** table = source, and the checkpoint is the source's greatest cursor */
const expectConverged = async (table: string, s: FaultServer) => {
  const rows = await tableRows(table)
  expect(rows.map((r) => ({ id: r.id, name: r.name, amount: Number(r.amount), updated_at: r.updated_at.toISOString() })))
    .toEqual([...s.records].sort((a, b) => a.id.localeCompare(b.id)).map((r) => ({ ...r, amount: Number(r.amount) })))
  expect(await checkpointOf(table)).toBe(s.records.at(-1)!.updated_at)
}

/** the fault is gone: the next run succeeds and the table equals the source */
const expectNextRunConverges = async (table: string, s: FaultServer, run: () => Promise<CliResult>) => {
  s.fault = undefined
  const again = await run()
  expect(again.code).toBe(0)
  const [summary] = summaries(again)
  expect(summary!.fetched).toBe(summary!.inserted + summary!.updated + summary!.unchanged + summary!.quarantined)
  await expectConverged(table, s)
  return again
}

const retryLines = (result: CliResult) => result.logs.filter((l) => l.msg === "http.retry")

/** a run that converged in one go despite the fault */
const expectSucceeded = async (table: string, s: FaultServer, result: CliResult, retries: number) => {
  expect(result.code).toBe(0)
  expect(summaries(result)[0]).toMatchObject({ status: "succeeded", fetched: 30, inserted: 30, retries })
  expect(retryLines(result)).toHaveLength(retries)
  await expectConverged(table, s)
  // the token was really sent: its absence from the output below means something
  expect(s.requests[0]!.headers.authorization).toBe(`Bearer ${TOKEN}`)
  await noSecrets(result)
}

/** a run that gave up: its code, a one-line error naming the URL, consistent state, then convergence */
const expectGaveUp = async (table: string, s: FaultServer, result: CliResult, code: number, says: RegExp) => {
  expect(result.code).toBe(code)
  expect(result.stderr).not.toMatch(/\n\s+at /)
  const [summary] = summaries(result)
  expect(summary).toMatchObject({ status: "failed", exit_code: code })
  expect(summary!.error).toMatch(says)
  expect(summary!.error).toContain(`${s.url}/items?`)
  expect(summary!.error).not.toContain("\n")
  const [run] = await db.query(`SELECT status, exit_code, error FROM ferry.runs WHERE stream = $1`, [table])
  expect(run).toMatchObject({ status: "failed", exit_code: code, error: summary!.error })
  await expectConsistent(table, s)
  const again = await expectNextRunConverges(table, s, setup(table, s).run)
  await noSecrets(result, again)
}

describe("rate limits", () => {
  it("429 with Retry-After: 1 (seconds): one retry after 1000 ms, then the run converges", async () => {
    const s = await server(onPage(1, (n) => n === 1 ? { kind: "status", status: 429, headers: { "retry-after": "1" } } : undefined))
    const result = await setup("rl_seconds", s).run()
    await expectSucceeded("rl_seconds", s, result, 1)
    expect(s.counts.get(s.keyOf(7))).toBe(2)
    expect(retryLines(result)[0]).toMatchObject({ status: 429, delay_ms: 1000, attempt: 1, level: "warn" })
    expect(retryLines(result)[0]!.url).toContain("at=7")
  })

  it("429 with Retry-After as an HTTP date: waits until that date (at most 1 s here), then converges", async () => {
    const s = await server(onPage(2, (n) =>
      n === 1 ? { kind: "status", status: 429, headers: { "retry-after": new Date(Date.now() + 1000).toUTCString() } } : undefined
    ))
    const result = await setup("rl_date", s).run()
    await expectSucceeded("rl_date", s, result, 1)
    expect(s.counts.get(s.keyOf(14))).toBe(2)
    const [line] = retryLines(result)
    expect(line).toMatchObject({ status: 429, attempt: 1 })
    // an HTTP date has whole seconds: the wait is what is left of that second, never the 10 ms backoff formula
    expect(line!.delay_ms).toBeGreaterThanOrEqual(0)
    expect(line!.delay_ms).toBeLessThanOrEqual(1000)
  })

  it("403 with X-RateLimit-Remaining: 0 and X-RateLimit-Reset (seconds from now) is a rate limit, not a refusal", async () => {
    const s = await server(onPage(1, (n) =>
      n === 1
        ? { kind: "status", status: 403, headers: { "x-ratelimit-remaining": "0", "x-ratelimit-reset": "1" } }
        : undefined
    ))
    const result = await setup("rl_403", s).run()
    await expectSucceeded("rl_403", s, result, 1)
    expect(s.counts.get(s.keyOf(7))).toBe(2)
    expect(retryLines(result)[0]).toMatchObject({ status: 403, delay_ms: 1000 })
  })

  it("429 with X-RateLimit-Remaining: 0 and X-RateLimit-Reset as epoch seconds: waits until the reset", async () => {
    // computed when the request comes: between 1 and 2 s away
    const reset = () => String(Math.ceil(Date.now() / 1000) + 1)
    const s = await server(onPage(3, (n) =>
      n === 1
        ? { kind: "status", status: 429, headers: { "x-ratelimit-remaining": "0", "x-ratelimit-reset": reset() } }
        : undefined
    ))
    const result = await setup("rl_epoch", s).run()
    await expectSucceeded("rl_epoch", s, result, 1)
    expect(s.counts.get(s.keyOf(21))).toBe(2)
    const [line] = retryLines(result)
    expect(line!.status).toBe(429)
    expect(line!.delay_ms).toBeGreaterThan(0)
    expect(line!.delay_ms).toBeLessThanOrEqual(2000)
  })

  it("429 for ever on page 3: exactly `attempts` requests, exit 75, pages 1-2 kept and checkpointed", async () => {
    const s = await server(onPage(2, () => ({ kind: "status", status: 429, headers: { "retry-after": "0" } })))
    const result = await setup("rl_forever", s).run()
    expect(s.counts.get(s.keyOf(14))).toBe(ATTEMPTS)
    expect(retryLines(result).map((l) => l.status)).toEqual(Array(ATTEMPTS - 1).fill(429))
    expect(summaries(result)[0]).toMatchObject({ fetched: 14, inserted: 14, retries: ATTEMPTS - 1 })
    await expectGaveUp("rl_forever", s, result, 75, /rate limited; gave up after 4 attempt\(s\) \(HTTP 429\)/)
  })

  it("403 with X-RateLimit-Remaining: 0 for ever: exit 75 (not 69), progress kept", async () => {
    const s = await server(onPage(1, () => ({
      kind: "status",
      status: 403,
      headers: { "x-ratelimit-remaining": "0", "x-ratelimit-reset": "0" }
    })))
    const result = await setup("rl_403_forever", s).run()
    expect(s.counts.get(s.keyOf(7))).toBe(ATTEMPTS)
    await expectGaveUp("rl_403_forever", s, result, 75, /HTTP 403/)
  })

  it("a reset an hour away (past retry.max) is not waited for: one request, exit 75 at once", async () => {
    const reset = String(Math.ceil(Date.now() / 1000) + 3600)
    const s = await server(onPage(1, () => ({
      kind: "status",
      status: 429,
      headers: { "x-ratelimit-remaining": "0", "x-ratelimit-reset": reset }
    })))
    const result = await setup("rl_too_long", s).run()
    expect(s.counts.get(s.keyOf(7))).toBe(1)
    expect(retryLines(result)).toEqual([])
    await expectGaveUp("rl_too_long", s, result, 75, /asked to wait .*longer than retry\.max \(HTTP 429\)/)
  })

  it("a plain 403 (no rate-limit headers) is a refusal: one request, exit 69", async () => {
    const s = await server(onPage(1, () => ({ kind: "status", status: 403 })))
    const result = await setup("forbidden", s).run()
    expect(s.counts.get(s.keyOf(7))).toBe(1)
    await expectGaveUp("forbidden", s, result, 69, /forbids this request \(check the stream.s auth\): the API says "injected 403" \(HTTP 403\)/)
  })
})

describe("what the API says about a refusal", () => {
  it.each([
    ["said_list", "a GraphQL or JSON:API errors list", { errors: [{ message: `token ${TOKEN} may not read\n page 1`, path: ["x"] }, { message: "second" }] }, /the API says "token \*\*\* may not read page 1"/],
    ["said_message", "a message", { message: "Validation Failed: since must be a date" }, /the API says "Validation Failed: since must be a date"/],
    ["said_oauth", "an OAuth-style error", { error: "invalid_request", error_description: "cursor expired" }, /the API says "cursor expired"/]
  ])("%s: a 4xx with %s: exit 69 and the API's words, never the token", async (table, _shape, body, says) => {
    const s = await server(onPage(1, () => ({ kind: "status", status: 422, body: JSON.stringify(body) })))
    const result = await setup(table, s).run()
    await expectGaveUp(table, s, result, 69, says)
  })
})

describe("server errors and broken connections", () => {
  it("a 500, 502, 503 burst: three retries on that URL, each logged with its status, then it converges", async () => {
    const burst = [500, 502, 503]
    const s = await server(onPage(1, (n) => n <= 3 ? { kind: "status", status: burst[n - 1]! } : undefined))
    const result = await setup("burst", s).run()
    await expectSucceeded("burst", s, result, 3)
    expect(s.counts.get(s.keyOf(7))).toBe(4)
    expect(retryLines(result).map((l) => [l.status, l.attempt])).toEqual([[500, 1], [502, 2], [503, 3]])
    // every other page was asked for once
    for (const at of [0, 14, 21, 28]) expect(s.counts.get(s.keyOf(at))).toBe(1)
  })

  it("503 for ever on page 3: exactly `attempts` requests, exit 69 naming the URL and the status", async () => {
    const s = await server(onPage(2, () => ({ kind: "status", status: 503 })))
    const result = await setup("down", s).run()
    expect(s.counts.get(s.keyOf(14))).toBe(ATTEMPTS)
    expect(summaries(result)[0]).toMatchObject({ retries: ATTEMPTS - 1 })
    await expectGaveUp("down", s, result, 69, /the source kept failing; gave up after 4 attempt\(s\) \(HTTP 503\)/)
  })

  it("connection reset mid-body: retried, then it converges", async () => {
    const s = await server(onPage(1, (n) => n === 1 ? { kind: "reset" } : undefined))
    const result = await setup("reset_once", s).run()
    await expectSucceeded("reset_once", s, result, 1)
    expect(s.counts.get(s.keyOf(7))).toBe(2)
    expect(retryLines(result)[0]).toMatchObject({ status: null })
    expect(retryLines(result)[0]!.reason).toMatch(/reading the response failed|connection failed/)
  })

  it("connection reset on every try: exit 69 after `attempts` requests", async () => {
    const s = await server(onPage(3, () => ({ kind: "reset" })))
    const result = await setup("reset_always", s).run()
    expect(s.counts.get(s.keyOf(21))).toBe(ATTEMPTS)
    await expectGaveUp("reset_always", s, result, 69, /gave up after 4 attempt\(s\)/)
  })

  it("a response that stalls mid-body hits the timeout (it covers the body), is retried, and converges", async () => {
    const s = await server(onPage(1, (n) => n === 1 ? { kind: "stall" } : undefined))
    const result = await setup("stall_once", s).run()
    await expectSucceeded("stall_once", s, result, 1)
    expect(s.counts.get(s.keyOf(7))).toBe(2)
    expect(retryLines(result)[0]).toMatchObject({ status: null, reason: "timed out after 500ms" })
  })

  it("a response that stalls every time: exit 69 saying it timed out", async () => {
    const s = await server(onPage(2, () => ({ kind: "stall" })))
    const result = await setup("stall_always", s).run()
    expect(s.counts.get(s.keyOf(14))).toBe(ATTEMPTS)
    await expectGaveUp("stall_always", s, result, 69, /timed out after 500ms; gave up after 4 attempt\(s\)/)
  })
})

describe("bodies that are not a page of records", () => {
  it("truncated JSON: exit 69 at once (a body is not retried), saying it is not JSON", async () => {
    const s = await server(onPage(2, () => ({ kind: "truncated" })))
    const result = await setup("truncated", s).run()
    expect(s.counts.get(s.keyOf(14))).toBe(1)
    await expectGaveUp("truncated", s, result, 69, /response is not JSON \(application\/json\) \(HTTP 200\)/)
  })

  it("HTML instead of JSON on the first page: exit 69 naming the content type; nothing written, no checkpoint", async () => {
    const s = await server(onPage(0, () => ({ kind: "html" })))
    const result = await setup("html", s).run()
    expect(s.counts.get(s.keyOf(0))).toBe(1)
    expect(await tableRows("html")).toEqual([])
    await expectGaveUp("html", s, result, 69, /response is not JSON \(text\/html; charset=utf-8\)/)
  })

  it("a page whose next link is itself: stopped before the second request, exit 69", async () => {
    const s = await server(onPage(1, () => ({ kind: "self-link" })))
    const result = await setup("self_link", s).run()
    expect(s.counts.get(s.keyOf(7))).toBe(1)
    expect(summaries(result)[0]).toMatchObject({ pages: 2, fetched: 14 })
    await expectGaveUp("self_link", s, result, 69, /pagination repeats/)
  })

  it("a server that ignores the page parameter (the same page under ever new links): stopped, exit 69", async () => {
    let served = 0
    // the server's own backstop: Ferry must stop long before this
    const s = await server((_key, _n, at) => (++served > 50 ? { kind: "status", status: 404 } : at === 0 ? { kind: "same-page" } : undefined))
    const result = await setup("same_page", s).run()
    expect(served).toBeLessThanOrEqual(3)
    expect(served).toBe(2)
    await expectGaveUp("same_page", s, result, 69, /pagination repeats: the server sent the same next page twice at .*\?since=[^&]*&p=1$/)
  })

  it("empty pages that keep pointing onwards: stopped after the second, exit 69", async () => {
    const s = await server(onPage(1, () => ({ kind: "empty-next" })))
    const result = await setup("empty_forever", s).run()
    expect([...s.counts.values()].reduce((a, b) => a + b)).toBe(3) // page 1, then two empty pages
    await expectGaveUp("empty_forever", s, result, 69, /two empty pages in a row/)
  })

  it("one empty page with a next link (a filtered page) is followed, and the run converges", async () => {
    const s = await server((key, _n, at) => (at === 7 && !key.includes("empty=") ? { kind: "empty-next" } : undefined))
    const result = await setup("empty_once", s).run()
    await expectSucceeded("empty_once", s, result, 0)
    expect(summaries(result)[0]).toMatchObject({ pages: 6 })
  })
})
