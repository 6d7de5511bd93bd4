import { HttpClient, HttpClientResponse } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Chunk, Duration, Effect, Exit, FastCheck, Fiber, Layer, Logger, LogLevel, Option, Stream, TestClock } from "effect"
import * as HttpSource from "../src/source/http/HttpSource.js"
import type { Headers, Jitter } from "../src/source/http/RetrySchedule.js"
import { backoff, classify, decide, RequestFailure, retryDelay, serverDelay } from "../src/source/http/RetrySchedule.js"
import { pagesOf } from "../src/Source.js"
import type { Retry } from "../src/domain/StreamSpec.js"
import { streamSpec } from "./support/streams.js"

const retry = (attempts: number, base: number, max: number): Retry => ({
  attempts,
  base: Duration.millis(base),
  max: Duration.millis(max)
})

const now = Date.UTC(2026, 0, 15, 12, 0, 0)

/** The wait after a response with these headers, read at `at` (as a failed request reads them). */
const delayFor = (attempt: number, policy: Retry, headers: Headers | undefined, at: number, random: number, jitter?: Jitter) =>
  retryDelay(attempt, policy, serverDelay(headers, at), random, jitter)

describe("retryDelay", () => {
  const r = retry(6, 500, 60_000)

  it("doubles from base, capped at max", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoff(n, r))).toEqual([
      500,
      1000,
      2000,
      4000,
      8000,
      16000,
      32000,
      60000,
      60000
    ])
    expect(backoff(10_000, r)).toBe(60_000)
    expect(backoff(3, retry(6, 0, 1000))).toBe(0)
  })

  it("equal jitter: between half the backoff and the backoff", () => {
    expect(delayFor(2, r, undefined, now, 0)).toEqual({ _tag: "Wait", millis: 1000, by: "backoff" })
    expect(delayFor(2, r, undefined, now, 0.5)).toEqual({ _tag: "Wait", millis: 1500, by: "backoff" })
    expect(delayFor(2, r, undefined, now, 0.999999)).toEqual({ _tag: "Wait", millis: 1999, by: "backoff" })
    expect(delayFor(20, r, undefined, now, 0)).toEqual({ _tag: "Wait", millis: 30_000, by: "backoff" })
  })

  it("full jitter: between 0 and the backoff", () => {
    expect(delayFor(2, r, undefined, now, 0, "full")).toEqual({ _tag: "Wait", millis: 0, by: "backoff" })
    expect(delayFor(2, r, undefined, now, 0.25, "full")).toEqual({ _tag: "Wait", millis: 500, by: "backoff" })
    expect(delayFor(0, r, undefined, now, 0.5, "full")).toEqual({ _tag: "Wait", millis: 250, by: "backoff" })
  })

  it.prop(
    "a backoff wait is never negative, never over max, never under half the backoff (equal jitter)",
    [FastCheck.nat(2000), FastCheck.nat(10_000), FastCheck.nat(600_000), FastCheck.double({ min: 0, max: 1, maxExcluded: true, noNaN: true })],
    ([attempt, base, max, random]) => {
      const policy = retry(5, base, max)
      const d = delayFor(attempt, policy, undefined, now, random)
      const full = delayFor(attempt, policy, undefined, now, random, "full")
      const cap = Math.min(max, base * 2 ** Math.min(attempt, 60))
      expect(d._tag).toBe("Wait")
      expect(Number.isFinite(d.millis)).toBe(true)
      expect(d.millis).toBeGreaterThanOrEqual(Math.floor(cap / 2))
      expect(d.millis).toBeLessThanOrEqual(max)
      expect(full.millis).toBeGreaterThanOrEqual(0)
      expect(full.millis).toBeLessThanOrEqual(max)
    }
  )

  it("Retry-After in seconds is obeyed exactly (no jitter)", () => {
    expect(delayFor(0, r, { "retry-after": "7" }, now, 0.9)).toEqual({ _tag: "Wait", millis: 7000, by: "retry-after" })
    expect(delayFor(5, r, { "retry-after": "0" }, now, 0.9)).toEqual({ _tag: "Wait", millis: 0, by: "retry-after" })
    expect(delayFor(0, r, { "retry-after": " 1.5 " }, now, 0.9)).toEqual({ _tag: "Wait", millis: 1500, by: "retry-after" })
  })

  it("Retry-After as an HTTP date is relative to now", () => {
    const date = new Date(now + 12_000).toUTCString()
    expect(delayFor(0, r, { "retry-after": date }, now, 0.3)).toEqual({ _tag: "Wait", millis: 12_000, by: "retry-after" })
    const past = new Date(now - 5_000).toUTCString()
    expect(delayFor(0, r, { "retry-after": past }, now, 0.3)).toEqual({ _tag: "Wait", millis: 0, by: "retry-after" })
  })

  it("an unreadable Retry-After falls back to the backoff", () => {
    expect(delayFor(1, r, { "retry-after": "soon" }, now, 0)).toEqual({ _tag: "Wait", millis: 500, by: "backoff" })
    expect(delayFor(1, r, { "retry-after": "-3" }, now, 0)).toEqual({ _tag: "Wait", millis: 500, by: "backoff" })
  })

  it("X-RateLimit-Reset (epoch seconds) counts only when X-RateLimit-Remaining is 0", () => {
    const reset = String((now + 42_000) / 1000)
    expect(delayFor(0, r, { "x-ratelimit-remaining": "0", "x-ratelimit-reset": reset }, now, 0.5)).toEqual({
      _tag: "Wait",
      millis: 42_000,
      by: "x-ratelimit-reset"
    })
    expect(delayFor(0, r, { "x-ratelimit-remaining": "3", "x-ratelimit-reset": reset }, now, 0)).toEqual({
      _tag: "Wait",
      millis: 250,
      by: "backoff"
    })
    expect(delayFor(0, r, { "x-ratelimit-reset": reset }, now, 0)._tag).toBe("Wait")
    expect(delayFor(0, r, { "x-ratelimit-reset": reset }, now, 0)).toMatchObject({ by: "backoff" })
    // a reset in the past: go now
    const past = String(Math.floor((now - 60_000) / 1000))
    expect(delayFor(0, r, { "x-ratelimit-remaining": "0", "x-ratelimit-reset": past }, now, 0.5)).toEqual({
      _tag: "Wait",
      millis: 0,
      by: "x-ratelimit-reset"
    })
  })

  it("a small X-RateLimit-Reset is read as seconds from now", () => {
    expect(delayFor(0, r, { "x-ratelimit-remaining": "0", "x-ratelimit-reset": "30" }, now, 0)).toEqual({
      _tag: "Wait",
      millis: 30_000,
      by: "x-ratelimit-reset"
    })
  })

  it("Retry-After wins over X-RateLimit-Reset", () => {
    const headers = { "retry-after": "2", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "50" }
    expect(delayFor(0, r, headers, now, 0)).toEqual({ _tag: "Wait", millis: 2000, by: "retry-after" })
  })

  it("a server wait longer than max is not waited", () => {
    expect(delayFor(0, r, { "retry-after": "61" }, now, 0)).toEqual({ _tag: "TooLong", millis: 61_000, by: "retry-after" })
    expect(delayFor(0, r, { "retry-after": "60" }, now, 0)).toEqual({ _tag: "Wait", millis: 60_000, by: "retry-after" })
    const reset = String((now + 3_600_000) / 1000)
    expect(delayFor(0, r, { "x-ratelimit-remaining": "0", "x-ratelimit-reset": reset }, now, 0)).toEqual({
      _tag: "TooLong",
      millis: 3_600_000,
      by: "x-ratelimit-reset"
    })
  })

  it("header names are matched in any case", () => {
    expect(delayFor(0, r, { "Retry-After": "3" }, now, 0)).toEqual({ _tag: "Wait", millis: 3000, by: "retry-after" })
  })
})

describe("classify", () => {
  it("sorts statuses into ok, transient, rate-limited and fatal", () => {
    const cases: ReadonlyArray<[number, Record<string, string> | undefined, string]> = [
      [200, undefined, "ok"],
      [204, undefined, "ok"],
      [408, undefined, "transient"],
      [500, undefined, "transient"],
      [502, undefined, "transient"],
      [503, undefined, "transient"],
      [504, undefined, "transient"],
      [429, undefined, "rate-limited"],
      [403, { "x-ratelimit-remaining": "0" }, "rate-limited"],
      [403, { "x-ratelimit-remaining": "10" }, "fatal"],
      [403, undefined, "fatal"],
      [400, undefined, "fatal"],
      [401, undefined, "fatal"],
      [404, undefined, "fatal"],
      [422, undefined, "fatal"],
      [304, undefined, "fatal"]
    ]
    for (const [status, headers, verdict] of cases) expect([status, classify(status, headers)]).toEqual([status, verdict])
  })
})

describe("decide", () => {
  const r = retry(3, 500, 60_000)
  const failure = (kind: "transient" | "rate-limited" | "fatal", asked?: number) =>
    new RequestFailure({
      kind,
      status: kind === "transient" ? 503 : kind === "rate-limited" ? 429 : 404,
      reason: "HTTP",
      asked: asked === undefined ? undefined : { millis: asked, by: "retry-after" }
    })

  it("a fatal failure is never retried", () => {
    expect(decide(failure("fatal"), 1, r, 0)).toEqual({ _tag: "Fatal" })
  })

  it("retries with the backoff until `attempts` tries in all", () => {
    expect(decide(failure("transient"), 1, r, 0)).toMatchObject({ _tag: "Retry", retry: 1, millis: 250 })
    expect(decide(failure("transient"), 2, r, 0)).toMatchObject({ _tag: "Retry", retry: 2, millis: 500 })
    expect(decide(failure("transient"), 3, r, 0)).toEqual({ _tag: "OutOfAttempts", attempts: 3 })
    expect(decide(failure("transient"), 1, retry(1, 500, 60_000), 0)).toEqual({ _tag: "OutOfAttempts", attempts: 1 })
  })

  it("waits what the server asked, unless it is over max; out of attempts comes first", () => {
    expect(decide(failure("rate-limited", 5000), 1, r, 0.9)).toMatchObject({ _tag: "Retry", millis: 5000 })
    expect(decide(failure("rate-limited", 61_000), 1, r, 0)).toEqual({ _tag: "WaitTooLong", millis: 61_000 })
    expect(decide(failure("rate-limited", 61_000), 3, r, 0)).toEqual({ _tag: "OutOfAttempts", attempts: 3 })
  })
})

// --- the waits themselves, against a stub HttpClient under the TestClock ------------------------------

interface Reply {
  readonly status: number
  readonly headers?: Record<string, string>
  readonly body?: string
}

/** A stub client that answers from `replies` in turn (the last one repeats) and counts requests. */
const stub = (replies: ReadonlyArray<Reply>) => {
  const seen: Array<string> = []
  const client = HttpClient.make((request, url) =>
    Effect.sync(() => {
      seen.push(url.toString())
      const reply = replies[Math.min(seen.length - 1, replies.length - 1)]!
      return HttpClientResponse.fromWeb(
        request,
        new Response(reply.body ?? "[]", {
          status: reply.status,
          headers: { "content-type": "application/json", ...reply.headers }
        })
      )
    })
  )
  const layer = HttpSource.layer.pipe(Layer.provide(Layer.succeed(HttpClient.HttpClient, client)))
  return { seen, layer }
}

/** a stream on a stubbed client with this retry policy */
const streamOf = (policy: Retry) =>
  streamSpec({ source: { url: "https://api.example.com/items", timeout: Duration.seconds(30), retry: policy } })

const run = (policy: Retry, replies: ReadonlyArray<Reply>) => {
  const { layer, seen } = stub(replies)
  const effect = Stream.runCollect(pagesOf(streamOf(policy), Option.none())).pipe(
    Effect.map(Chunk.toArray),
    Effect.provide(layer),
    Logger.withMinimumLogLevel(LogLevel.Error)
  )
  return { effect, seen }
}

/** Let the forked request run until it sleeps (or ends), so a clock adjustment lands after the sleep began. */
const settle = <A, E>(fiber: Fiber.RuntimeFiber<A, E>) =>
  Effect.gen(function*() {
    for (let i = 0; i < 1000; i++) {
      if (Option.isSome(yield* Fiber.poll(fiber))) return
      if (Chunk.size(yield* TestClock.sleeps()) > 0) return
      yield* Effect.yieldNow()
    }
  })

const isDone = <A, E>(fiber: Fiber.RuntimeFiber<A, E>) => Effect.map(Fiber.poll(fiber), Option.isSome)

describe("retry waits (TestClock)", () => {
  it.effect("503 then 200: waits the jittered backoff, between half of base and base", () =>
    Effect.gen(function*() {
      const { effect, seen } = run(retry(3, 1000, 60_000), [{ status: 503 }, { status: 200, body: "[1,2]" }])
      const fiber = yield* Effect.fork(effect)
      yield* settle(fiber)
      expect(seen.length).toBe(1)
      yield* TestClock.adjust("499 millis")
      expect(yield* isDone(fiber)).toBe(false)
      expect(seen.length).toBe(1)
      yield* TestClock.adjust("501 millis")
      const pages = yield* Fiber.join(fiber)
      expect(seen.length).toBe(2)
      expect(pages.map((p) => [p.records, p.retries])).toEqual([[[1, 2], 1]])
    }))

  it.effect("429 with Retry-After: 5 waits exactly 5 seconds", () =>
    Effect.gen(function*() {
      const { effect, seen } = run(retry(3, 10, 60_000), [{ status: 429, headers: { "retry-after": "5" } }, {
        status: 200
      }])
      const fiber = yield* Effect.fork(effect)
      yield* settle(fiber)
      yield* TestClock.adjust("4999 millis")
      expect(yield* isDone(fiber)).toBe(false)
      expect(seen.length).toBe(1)
      yield* TestClock.adjust("1 millis")
      const pages = yield* Fiber.join(fiber)
      expect(seen.length).toBe(2)
      expect(pages[0]!.retries).toBe(1)
    }))

  it.effect("Retry-After as an HTTP date is measured against the Effect Clock", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.UTC(2026, 0, 1, 0, 0, 0))
      const at = new Date(Date.UTC(2026, 0, 1, 0, 0, 20)).toUTCString()
      const { effect, seen } = run(retry(3, 10, 60_000), [{ status: 503, headers: { "retry-after": at } }, {
        status: 200
      }])
      const fiber = yield* Effect.fork(effect)
      yield* settle(fiber)
      yield* TestClock.adjust("19 seconds")
      expect(yield* isDone(fiber)).toBe(false)
      yield* TestClock.adjust("1 seconds")
      yield* Fiber.join(fiber)
      expect(seen.length).toBe(2)
    }))

  it.effect("403 with X-RateLimit-Remaining: 0 waits for X-RateLimit-Reset", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(1_800_000_000_000)
      const { effect, seen } = run(retry(3, 10, 60_000), [
        { status: 403, headers: { "x-ratelimit-remaining": "0", "x-ratelimit-reset": "1800000030" } },
        { status: 200 }
      ])
      const fiber = yield* Effect.fork(effect)
      yield* settle(fiber)
      yield* TestClock.adjust("29 seconds")
      expect(yield* isDone(fiber)).toBe(false)
      yield* TestClock.adjust("1 seconds")
      yield* Fiber.join(fiber)
      expect(seen.length).toBe(2)
    }))

  it.effect("a server wait over retry.max fails at once with RateLimited, without sleeping", () =>
    Effect.gen(function*() {
      const { effect, seen } = run(retry(5, 10, 60_000), [{ status: 429, headers: { "retry-after": "3600" } }])
      const fiber = yield* Effect.fork(effect)
      yield* settle(fiber)
      const exit = yield* Fiber.await(fiber)
      expect(seen.length).toBe(1)
      expect(Exit.isFailure(exit)).toBe(true)
      const error = Exit.isFailure(exit) ? Option.getOrThrow(Chunk.head(Cause.failures(exit.cause))) : undefined
      expect(error?._tag).toBe("RateLimited")
      expect(error?.message).toContain("asked to wait 1h")
    }))

  it.effect("out of attempts on 429 -> RateLimited after exactly the asked waits", () =>
    Effect.gen(function*() {
      const { effect, seen } = run(retry(3, 10, 60_000), [{ status: 429, headers: { "retry-after": "2" } }])
      const fiber = yield* Effect.fork(effect)
      yield* settle(fiber)
      yield* TestClock.adjust("2 seconds")
      yield* settle(fiber)
      expect(seen.length).toBe(2)
      yield* TestClock.adjust("1999 millis")
      expect(yield* isDone(fiber)).toBe(false)
      yield* TestClock.adjust("1 millis")
      const exit = yield* Fiber.await(fiber)
      expect(seen.length).toBe(3)
      const error = Exit.isFailure(exit) ? Option.getOrThrow(Chunk.head(Cause.failures(exit.cause))) : undefined
      expect(error?._tag).toBe("RateLimited")
      expect(error?.exitCode).toBe(75)
    }))

  it.effect("out of attempts on 500 -> SourceError (69) with the status", () =>
    Effect.gen(function*() {
      const { effect, seen } = run(retry(2, 100, 60_000), [{ status: 500 }])
      const fiber = yield* Effect.fork(effect)
      yield* settle(fiber)
      yield* TestClock.adjust("100 millis")
      const exit = yield* Fiber.await(fiber)
      expect(seen.length).toBe(2)
      const error = Exit.isFailure(exit) ? Option.getOrThrow(Chunk.head(Cause.failures(exit.cause))) : undefined
      expect(error?._tag).toBe("SourceError")
      expect(error?.exitCode).toBe(69)
      expect(error?.message).toContain("HTTP 500")
    }))
})
