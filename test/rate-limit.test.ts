/**
 * Issue 14, item 6: `source.rateLimit: { requests, per }`. The guarantee: no window of length `per`
 * holds more than `requests` request starts, retries included (a sliding-window log; waiting is not an
 * error). Checked on the limiter under TestClock, and through the bin against a real server.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, FastCheck, Fiber, TestClock } from "effect"
import { assert } from "vitest"
import * as Config from "../src/config/Config.js"
import { RateLimit } from "../src/domain/RateLimit.js"
import * as Limiter from "../src/source/http/RateLimit.js"
import { ferry, streamConfig, summaries } from "./support/cli.js"
import { closedAfterAll, json, startServer, type TestServer } from "./support/http.js"
import { fileDatabase } from "./support/pg.js"

/** the most starts any window [t, t + per) holds (enough to check windows that begin at a start) */
const busiestWindow = (starts: ReadonlyArray<number>, per: number): number => {
  const sorted = [...starts].sort((a, b) => a - b)
  let most = 0
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (j < sorted.length && sorted[j]! < sorted[i]! + per) j++
    most = Math.max(most, j - i)
  }
  return most
}

const limit = (requests: number, perMillis: number) => RateLimit.make({ requests, per: Duration.millis(perMillis) })

describe("the rate limiter (TestClock)", () => {
  it.effect.prop(
    "no window of length `per` holds more than `requests` starts, whatever the gaps between takes and however many callers share it",
    [
      FastCheck.integer({ min: 1, max: 5 }),
      FastCheck.integer({ min: 1, max: 5_000 }),
      FastCheck.array(FastCheck.integer({ min: 0, max: 3_000 }), { minLength: 1, maxLength: 15 }),
      FastCheck.integer({ min: 1, max: 3 })
    ],
    ([requests, per, gaps, callers]) =>
      Effect.gen(function*() {
        const limiter = Limiter.make(limit(requests, per))
        const starts: Array<number> = []
        // each caller takes a turn after its own gaps (a try, then its retries after a backoff)
        const caller = (offset: number) =>
          Effect.forEach(gaps.slice(offset).concat(gaps.slice(0, offset)), (gap) =>
            Effect.sleep(Duration.millis(gap)).pipe(
              Effect.zipRight(limiter.take),
              Effect.zipRight(TestClock.currentTimeMillis),
              Effect.map((now) => starts.push(now))
            ), { discard: true })
        const fiber = yield* Effect.fork(Effect.all(Array.from({ length: callers }, (_, i) => caller(i)), { concurrency: "unbounded", discard: true }))
        yield* TestClock.adjust(Duration.millis((gaps.reduce((a, b) => a + b, 0) + per) * (callers * gaps.length + 1)))
        yield* Fiber.join(fiber)
        expect(starts).toHaveLength(callers * gaps.length)
        expect(busiestWindow(starts, per)).toBeLessThanOrEqual(requests)
      }),
    { fastCheck: { numRuns: 100 } }
  )

  it.effect("3 per second, 7 takes at once: 3 at 0 s, 3 at 1 s, 1 at 2 s (it waits no longer than it must)", () =>
    Effect.gen(function*() {
      const limiter = Limiter.make(limit(3, 1_000))
      const starts: Array<number> = []
      const fiber = yield* Effect.fork(Effect.forEach(Array.from({ length: 7 }), () =>
        limiter.take.pipe(Effect.zipRight(TestClock.currentTimeMillis), Effect.map((t) => starts.push(t)))))
      yield* TestClock.adjust(Duration.seconds(10))
      yield* Fiber.join(fiber)
      expect(starts).toEqual([0, 0, 0, 1_000, 1_000, 1_000, 2_000])
    }))

  it("the registry: one limiter per setting (a parent's, shared by its children), none without a rateLimit", () => {
    const limiterFor = Limiter.registry()
    const l = limit(1, 10)
    expect(limiterFor(undefined)).toBeUndefined()
    expect(limiterFor(l)).toBe(limiterFor(l))
    // two streams that each set the same numbers have a budget each
    expect(limiterFor(limit(1, 10))).not.toBe(limiterFor(l))
  })
})

const configWith = (rateLimit: string) => `
streams:
  - name: orders
    source:
      url: https://api.example.com/orders
      rateLimit: ${rateLimit}
    target: { table: orders, primaryKey: [id] }
`

describe("rateLimit in the config", () => {
  it.effect("`{ requests: 100, per: 1 minute }` is read; absent is no limit", () =>
    Effect.gen(function*() {
      const config = yield* Config.parse(configWith("{ requests: 100, per: 1 minute }"), "ferry.config.yaml", {})
      expect(config.streams[0]!.source.rateLimit?.requests).toBe(100)
      expect(Duration.toMillis(config.streams[0]!.source.rateLimit!.per)).toBe(60_000)
      const none = yield* Config.parse(configWith("null").replace("      rateLimit: null\n", ""), "ferry.config.yaml", {})
      expect(none.streams[0]!.source.rateLimit).toBeUndefined()
    }))

  const bad: ReadonlyArray<readonly [string, string, string]> = [
    ["{ requests: 0, per: 1 second }", "requests", "whole number >= 1"],
    ["{ requests: 1.5, per: 1 second }", "requests", "whole number >= 1"],
    ["{ per: 1 second }", "requests", ""],
    ["{ requests: 3, per: 0 }", "per", "longer than zero"],
    ["{ requests: 3, per: 0 seconds }", "per", "longer than zero"],
    ["{ requests: 3, per: -1 }", "per", "duration"],
    ["{ requests: 3, per: soon }", "per", "duration"],
    ["{ requests: 3 }", "per", ""]
  ]
  it.effect.each(bad)("%s: 78 naming source.rateLimit.%s", ([value, field, says]) =>
    Effect.gen(function*() {
      const result = yield* Effect.either(Config.parse(configWith(value), "ferry.config.yaml", {}))
      assert(Either.isLeft(result), "accepted")
      expect(result.left.exitCode).toBe(78)
      expect(result.left.path).toBe(`streams[0].source.rateLimit.${field}`)
      expect(result.left.reason).toContain(says)
      expect(result.left.message.split("\n")).toHaveLength(1)
    }))
})

const db = fileDatabase()
const servers = closedAfterAll<TestServer>()

describe("rateLimit through the bin", () => {
  it("3 per second, 7 pages and one 503 retried: no 1-second window holds more than 3 requests; the run succeeds", async () => {
    const arrivals: Array<number> = []
    let failedOnce = false
    const server = await startServer((_req, res, url) => {
      arrivals.push(performance.now())
      const p = Number(url.searchParams.get("p") ?? 0)
      // page 2's first try fails: its retry is a request and waits its turn too
      if (p === 2 && !failedOnce) {
        failedOnce = true
        return json(res, { error: "busy" }, 503)
      }
      const item = { id: `r${p}`, name: `record ${p}`, updated_at: new Date(Date.UTC(2024, 0, 1, 0, p)).toISOString() }
      json(res, { data: [item] }, 200, p < 6 ? { link: `</items?p=${p + 1}>; rel="next"` } : {})
    })
    servers.push(server)
    const dir = streamConfig({
      name: "rate_limited",
      url: `${server.url}/items`,
      incremental: null,
      columns: "{ id: text, name: text, updated_at: timestamptz }",
      retry: "{ attempts: 3, base: 10 millis, max: 1 second }\n      rateLimit: { requests: 3, per: 1 second }"
    })
    const result = await ferry(["run"], { cwd: dir, env: { DATABASE_URL: db.url, FERRY_LOG_LEVEL: "debug" } })
    expect(result.code).toBe(0)
    expect(arrivals).toHaveLength(8)
    // the limiter spaces the starts; the server sees arrivals, and a request's way there varies (the first
    // one opens the connection; the machine may be loaded), so the server's clock is given 200 ms of slack.
    // Without the limit all 8 arrive within a few milliseconds; at 4 a second, 4 fall in one window.
    const slack = 200
    expect(busiestWindow(arrivals, 1_000 - slack)).toBeLessThanOrEqual(3)
    // 8 requests at 3 a second: the last starts 2 seconds after the first, no sooner
    expect(arrivals[7]! - arrivals[0]!).toBeGreaterThanOrEqual(2_000 - slack)
    expect(summaries(result)[0]).toMatchObject({ status: "succeeded", pages: 7, fetched: 7 })
    expect((await db.query<{ n: string }>("SELECT count(*) AS n FROM rate_limited"))[0]!.n).toBe("7")
    // waiting is not an error: debug lines only, one per wait
    const waits = result.logs.filter((l) => l.msg === "source.rate_limit")
    expect(waits.length).toBeGreaterThanOrEqual(2)
    expect(waits.every((l) => l.level === "debug")).toBe(true)
    // the 503's retry is the only warning
    expect(result.logs.filter((l) => l.level === "warn" || l.level === "error").map((l) => l.msg)).toEqual(["http.retry"])
    // at the default level, the waits say nothing
    const quiet = await ferry(["run", "--full-refresh"], { cwd: dir, env: { DATABASE_URL: db.url } })
    expect(quiet.code).toBe(0)
    expect(quiet.logs.filter((l) => l.msg === "source.rate_limit")).toEqual([])
  }, 30_000)
})
