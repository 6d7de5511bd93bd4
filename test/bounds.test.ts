/**
 * Bounded reads (issue 14 item 7) as pure functions: the checkpoint under an `end`
 * (CheckpointPolicy.bounded, with a model of an API whose newest records are not settled yet), the
 * bounds' values (`now - 1 hour`, epoch forms), a slice's checks (Window.sliceOf), the templates
 * (`{cursor}`, `{end}`) and the first URL they make. Through the bin: backfill.bin.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, FastCheck as fc, Option } from "effect"
import * as Config from "../src/config/Config.js"
import * as Bound from "../src/domain/Bound.js"
import * as Template from "../src/domain/Template.js"
import { firstUrl, requestUrl } from "../src/source/http/Request.js"
import * as CheckpointPolicy from "../src/sync/CheckpointPolicy.js"
import * as Deletes from "../src/sync/Deletes.js"
import * as Window from "../src/sync/Window.js"
import * as streams from "./support/streams.js"

const cursor = fc.integer({ min: -1000, max: 1000 })
const maybe = fc.option(cursor, { nil: undefined })
const text = (n: number | undefined) => (n === undefined ? undefined : String(n))

describe("CheckpointPolicy with an end", () => {
  it("never moves the checkpoint backwards, past the end, or past what was committed", () => {
    fc.assert(fc.property(maybe, maybe, maybe, (checkpoint, seen, end) => {
      const next = CheckpointPolicy.afterStream("number", text(checkpoint), text(seen), text(end))
      if (next === undefined) return
      if (checkpoint !== undefined) expect(Number(next)).toBeGreaterThan(checkpoint)
      if (end !== undefined) expect(Number(next)).toBeLessThanOrEqual(end)
      expect(Number(next)).toBeLessThanOrEqual(seen!)
    }))
  })

  it("is the unbounded rule when nothing past the end was committed (an API that honours the bound)", () => {
    fc.assert(fc.property(maybe, maybe, maybe, fc.constantFrom("asc" as const, "unsorted" as const), (checkpoint, seen, end, order) => {
      fc.pre(seen === undefined || end === undefined || seen <= end)
      expect(CheckpointPolicy.afterStream("number", text(checkpoint), text(seen), text(end)))
        .toBe(CheckpointPolicy.afterStream("number", text(checkpoint), text(seen)))
      expect(CheckpointPolicy.afterBatch(order, "number", text(checkpoint), text(seen), text(end)))
        .toBe(CheckpointPolicy.afterBatch(order, "number", text(checkpoint), text(seen)))
    }))
  })

  it("compares timestamps as instants: an end in another offset still caps", () => {
    expect(CheckpointPolicy.bounded("timestamp", "2024-01-01T12:00:00Z", "2024-01-01T12:00:00+01:00")).toBe("2024-01-01T12:00:00+01:00")
    expect(CheckpointPolicy.bounded("timestamp", "2024-01-01T10:00:00Z", "2024-01-01T12:00:00+01:00")).toBe("2024-01-01T10:00:00Z")
  })

  /**
   * The reason for the cap. At each tick records appear whose cursor is within `lag` of the tick (an API
   * whose last hour is not settled); each run asks up to `end = tick - lag` and the API honours the
   * bound or ignores it. Nothing is ever lost: every record below the checkpoint has been read, so the
   * next run (from the checkpoint, `>=`) misses none. Without the cap, an API ignoring the bound loses records.
   */
  const simulate = (ticks: ReadonlyArray<ReadonlyArray<number>>, lag: number, honours: boolean, capped: boolean) => {
    const records: Array<{ cursor: number; read: boolean }> = []
    let checkpoint: string | undefined
    let lost = false
    ticks.forEach((offsets, tick) => {
      for (const offset of offsets) records.push({ cursor: tick - (offset % lag), read: false })
      const end = tick - lag
      const from = checkpoint === undefined ? -Infinity : Number(checkpoint)
      const answered = records.filter((r) => r.cursor >= from && (!honours || r.cursor <= end))
      for (const r of answered) r.read = true
      const seen = answered.reduce<string | undefined>((m, r) => m === undefined || r.cursor > Number(m) ? String(r.cursor) : m, undefined)
      checkpoint = CheckpointPolicy.afterStream("number", checkpoint, seen, capped ? String(end) : undefined) ?? checkpoint
      if (records.some((r) => !r.read && checkpoint !== undefined && r.cursor < Number(checkpoint))) lost = true
    })
    return lost
  }

  it("loses no record when the newest ones are not settled, whether the API honours the end or not", () => {
    const ticks = fc.array(fc.array(fc.nat({ max: 50 }), { maxLength: 4 }), { maxLength: 30 })
    fc.assert(fc.property(ticks, fc.integer({ min: 1, max: 5 }), fc.boolean(), (t, lag, honours) => {
      expect(simulate(t, lag, honours, true)).toBe(false)
    }))
  })

  it("(without the cap, an API that ignores the end makes the checkpoint skip a late record)", () => {
    // lag 3: tick 2 brings a record at 2, which the run reads (the end, -1, ignored); uncapped the
    // checkpoint is 2, and tick 3 brings a late record at 1, below it: skipped for good
    const ticks = [[0], [], [0], [2]]
    expect(simulate(ticks, 3, false, false)).toBe(true)
    expect(simulate(ticks, 3, false, true)).toBe(false)
  })

  it("a bounded read or a slice is never a complete read (detect: missing must not act on it)", () => {
    const stream = streams.streamSpec({ source: { incremental: streams.incremental({ cursorField: "n" }) } })
    expect(Deletes.isComplete(stream, undefined, true)).toBe(true)
    expect(Deletes.isComplete(stream, undefined, true, true)).toBe(false)
    expect(Deletes.isComplete(stream, undefined, false, true)).toBe(false)
  })
})

describe("Bound.resolve", () => {
  const now = Date.UTC(2024, 5, 10, 12, 34, 56, 789)
  const timestamp = { cursorType: "timestamp" as const }

  it("now - <duration>: the run's now less it, whole seconds, in the cursor's form", () => {
    expect(Bound.resolve("now - 1 hour", timestamp, now)).toEqual(Either.right("2024-06-10T11:34:56Z"))
    expect(Bound.resolve("now", timestamp, now)).toEqual(Either.right("2024-06-10T12:34:56Z"))
    expect(Bound.resolve("NOW-90 minutes", timestamp, now)).toEqual(Either.right("2024-06-10T11:04:56Z"))
    expect(Bound.resolve("now - 1 hour", { cursorType: "number", format: "unix" }, now)).toEqual(Either.right(String(Date.UTC(2024, 5, 10, 11, 34, 56) / 1000)))
    expect(Bound.resolve("now - 1 hour", { cursorType: "number", format: "unix_ms" }, now)).toEqual(Either.right(String(Date.UTC(2024, 5, 10, 11, 34, 56))))
  })

  it("a value: kept as written, an ISO one converted for an epoch cursor", () => {
    expect(Bound.resolve("2024-02-01", timestamp, now)).toEqual(Either.right("2024-02-01"))
    expect(Bound.resolve("2024-02-01T00:00:00Z", { cursorType: "number", format: "unix" }, now)).toEqual(Either.right("1706745600"))
    expect(Bound.resolve("1706745600", { cursorType: "number", format: "unix" }, now)).toEqual(Either.right("1706745600"))
    expect(Bound.resolve("42.5", { cursorType: "number" }, now)).toEqual(Either.right("42.5"))
    expect(Bound.resolve("abc", { cursorType: "string" }, now)).toEqual(Either.right("abc"))
  })

  it("refuses what the cursor cannot hold, saying why", () => {
    expect(Bound.resolve("yesterday", timestamp, now)).toEqual(Either.left("expected an ISO 8601 timestamp, like 2024-01-01T00:00:00Z"))
    expect(Bound.resolve("now - soon", timestamp, now)).toEqual(Either.left(`expected a cursor value, or now - <duration> like "now - 1 hour"`))
    expect(Bound.resolve("now - 1 hour", { cursorType: "number" }, now)._tag).toBe("Left")
    expect(Bound.resolve("12x", { cursorType: "number" }, now)).toEqual(Either.left("expected a number"))
    expect(Bound.resolve("May", { cursorType: "number", format: "unix" }, now)).toEqual(Either.left("expected unix (digits) or an ISO 8601 timestamp"))
  })
})

describe("Window.sliceOf", () => {
  const now = Date.UTC(2024, 5, 10)
  const stream = streams.streamSpec({ source: { incremental: streams.incremental({ cursorField: "at", cursorType: "timestamp" }) } })
  const message = (e: Either.Either<unknown, { readonly message: string }>) => Either.isLeft(e) ? e.left.message : "ok"

  it("resolves both bounds in the cursor's form", () => {
    expect(Window.sliceOf(stream, { from: "2024-01-01", to: "now - 1 day" }, now)).toEqual(Either.right({ from: "2024-01-01", to: "2024-06-09T00:00:00Z" }))
  })

  it("names the flag, the value and the stream when a bound is wrong", () => {
    expect(message(Window.sliceOf(stream, { from: "01/02/2024" }, now))).toBe(`--from "01/02/2024" for stream items: expected an ISO 8601 timestamp, like 2024-01-01T00:00:00Z`)
    expect(message(Window.sliceOf(stream, { from: "2024-03-01", to: "2024-02-01" }, now))).toBe("--from 2024-03-01 is after --to 2024-02-01 (stream items)")
    expect(message(Window.sliceOf(streams.streamSpec(), { to: "1" }, now))).toMatch(/^--from\/--to read a slice of an incremental stream; stream items has no source.incremental/)
    expect(message(Window.sliceOf(stream, { from: "2024-01-01" }, now, true))).toBe(Window.fullRefreshConflict)
  })
})

describe("Window.boundsOf", () => {
  const stream = streams.streamSpec({ source: { incremental: streams.incremental({ cursorField: "n" }) } })

  it("a slice's from replaces the run's start, its to the end; a start past the end asks for nothing", () => {
    expect(Window.boundsOf(stream, Option.some("5"), "9", undefined)).toEqual({ from: Option.some("5"), end: "9", empty: false })
    expect(Window.boundsOf(stream, Option.some("5"), "9", { from: "1", to: undefined })).toEqual({ from: Option.some("1"), end: "9", empty: false })
    expect(Window.boundsOf(stream, Option.none(), undefined, { from: undefined, to: "3" })).toEqual({ from: Option.none(), end: "3", empty: false })
    expect(Window.boundsOf(stream, Option.some("10"), "9", undefined).empty).toBe(true)
    expect(Window.boundsOf(stream, Option.some("9"), "9", undefined).empty).toBe(false)
  })
})

describe("templates and the first URL", () => {
  it("fills {cursor} and {end}; a template whose value is absent is left out; other braces stay", () => {
    expect(Template.fill("gte.{cursor}", { cursor: "5", end: undefined })).toBe("gte.5")
    expect(Template.fill("[{cursor},{end}]", { cursor: "5", end: "9" })).toBe("[5,9]")
    expect(Template.fill("lt.{end}", { cursor: "5", end: undefined })).toBeUndefined()
    expect(Template.fill("{next} {x}", { cursor: "5" })).toBe("{next} {x}")
    expect(Template.couldBe("a{cursor}.b", ["cursor", "end"], "a2024.b")).toBe(true)
    expect(Template.couldBe("a{cursor}.b", ["cursor", "end"], "a2024xb")).toBe(false)
  })

  const spec = (incremental: Partial<streams.SourceOverrides["incremental"] & object>, params: Record<string, string> = {}) =>
    streams.source({ url: "https://api.example.com/v1/items", params, incremental: streams.incremental({ cursorField: "at", ...incremental }) })
  const query = (url: URL | undefined) => Object.fromEntries(url!.searchParams)

  it("sends the end as endParam, in incremental.params and in source.params", () => {
    expect(query(firstUrl(spec({ param: "since", endParam: "until" }), Option.some("1"), Option.some("9")))).toEqual({ since: "1", until: "9" })
    expect(query(firstUrl(spec({ params: { range: "[{cursor},{end})" } }, { q: "before:{end}" }), Option.some("1"), Option.some("9"))))
      .toEqual({ q: "before:9", range: "[1,9)" })
    // no end (no incremental.end, no --to): nothing that needs one is sent
    expect(query(firstUrl(spec({ param: "since", endParam: "until", params: { lt: "{end}" } }, { q: "before:{end}" }), Option.some("1"))))
      .toEqual({ since: "1" })
  })

  it("a filled template is still the configured origin's own: not sent to another origin", () => {
    const s = spec({}, { q: "before:{end}", plain: "x" })
    const next = new URL("https://cdn.example.net/page2?q=before%3A9&plain=x&page=2")
    expect(query(requestUrl(s, next))).toEqual({ page: "2" })
  })
})

describe("the config's rules (78, naming the field)", () => {
  const yaml = (source: string, target = "") => `
streams:
  - name: s
    source:
      url: https://api.example.com/items
${source}
    target:
      table: s
      primaryKey: [id]
${target}
`
  const error = (text: string) =>
    Effect.runSync(Effect.match(Config.parse(text, "/tmp/ferry.config.yaml", {}), { onFailure: (e) => e.message, onSuccess: () => "ok" }))

  it("accepts an end, endParam and {end} templates", () => {
    expect(error(yaml(`      incremental: { cursorField: at, params: { lt: "{end}", gte: "{cursor}" }, end: "now - 1 hour" }`))).toBe("ok")
    expect(error(yaml(`      incremental: { cursorField: n, cursorType: number, endParam: max, end: 500 }`))).toBe("ok")
  })

  it("refuses an end the cursor cannot hold, or one beside detect: missing", () => {
    expect(error(yaml(`      incremental: { cursorField: n, cursorType: number, end: "now - 1 hour" }`)))
      .toBe("streams[0].source.incremental.end: now - <duration> is for timestamp cursors (this one is a number); give a number value")
    expect(error(yaml(`      incremental: { cursorField: at, end: "now - 1 hour" }`, `      deletes: { detect: missing, action: delete }`)))
      .toMatch(/^streams\[0\]\.source\.incremental\.end: a read with an end never sees the whole collection/)
  })

  it("refuses {cursor} or {end} in source.params of a stream that is not incremental", () => {
    expect(error(yaml(`      params: { q: "updated>{cursor}" }`)))
      .toBe("streams[0].source.params.q: {cursor} and {end} are filled by source.incremental, which this stream has not")
  })
})
