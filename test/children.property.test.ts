/**
 * Child tables over the in-memory layers (MemorySink keeps PgSink's semantics), as a property (each run
 * a --full-refresh of up to four orders, a page repeated would be a pagination error): after any runs (failing at any page or write, or not) and a clean one, every stored parent's child rows are
 * exactly the items of the version of it that is stored, and no child row belongs to no such version;
 * a run right after (nothing changed) writes no parent and leaves every child row as it was.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, FastCheck as fc, Layer, Stream } from "effect"
import * as Children from "../src/domain/Children.js"
import { SourceError } from "../src/domain/Errors.js"
import * as RowDecoder from "../src/domain/RowDecoder.js"
import type { StreamSpec } from "../src/domain/StreamSpec.js"
import type * as Source from "../src/Source.js"
import { syncStream } from "../src/sync/Sync.js"
import * as Memory from "../src/testing/index.js"
import * as streams from "./support/streams.js"

interface Rec {
  readonly id: string
  readonly updated: number
  readonly items: ReadonlyArray<{ readonly sku: string; readonly qty: number }> | null
}

const base = streams.streamSpec({
  target: {
    columns: [streams.column("id", "text"), streams.column("updated", "numeric")],
    cursorColumn: "updated",
    children: [{ path: "items", table: "items_lines", primaryKey: ["sku"], columns: [streams.column("sku", "text"), streams.column("qty", "integer")] }]
  }
})
const target = { ...base.target, columns: Children.withDigestColumn(base.target.columns, base.target.children) }
const spec: StreamSpec = {
  ...base,
  source: { ...base.source, incremental: streams.incremental({ cursorField: "updated", param: "since" }) },
  target,
  decode: Children.withChildren(target, RowDecoder.fromColumns(base.target, undefined))
}

const recArb = fc.record({
  id: fc.constantFrom("a", "b", "c", "d"),
  updated: fc.nat(5),
  items: fc.option(fc.uniqueArray(fc.record({ sku: fc.constantFrom("x", "y", "z"), qty: fc.nat(3) }), { selector: (i) => i.sku, maxLength: 3 }), { nil: null })
})

const runArb = fc.record({
  records: fc.uniqueArray(recArb, { selector: (r) => r.id, maxLength: 4 }),
  failAtPage: fc.option(fc.nat(3), { nil: null }),
  failWrite: fc.option(fc.integer({ min: 1, max: 3 }), { nil: null })
})

describe("target.children over the in-memory layers", () => {
  it.effect("child rows are exactly the stored version's items; an unchanged run rewrites none", () =>
    Effect.sync(() =>
      fc.assert(
        fc.property(fc.array(runArb, { maxLength: 4 }), fc.uniqueArray(recArb, { selector: (r) => r.id, maxLength: 4 }), (runs, last) => {
          const db = Memory.make()
          let served: ReadonlyArray<Rec> = []
          let failAtPage: number | null = null
          const source = Memory.MemorySource.layer(() => {
            const pages: Array<Source.Page> = []
            for (let i = 0; i < served.length; i += 2) pages.push({ records: served.slice(i, i + 2), url: `m://${i}`, retries: 0, bytes: 0 })
            const ok = Stream.fromIterable(failAtPage === null ? pages : pages.slice(0, failAtPage))
            return failAtPage === null || failAtPage >= pages.length
              ? ok
              : Stream.concat(ok, Stream.fail(new SourceError({ stream: "items", url: "m://", status: 503, reason: "injected" })))
          })
          const layer = Layer.merge(Memory.layer(db), source)
          let n = 0
          const run = (records: ReadonlyArray<Rec>, fail: { failAtPage: number | null; failWrite: number | null }) => {
            served = records
            failAtPage = fail.failAtPage
            const before = db.writes
            db.failWrite = (w) => fail.failWrite !== null && w - before === fail.failWrite
            return Effect.runSync(Effect.either(syncStream(spec, { runId: `run-${++n}`, batch: { records: 3 }, fullRefresh: true })).pipe(Effect.provide(layer)))
          }
          for (const r of runs) run(r.records, r)
          const clean = run(last, { failAtPage: null, failWrite: null })
          expect(Either.isRight(clean) ? "ok" : String(clean.left)).toBe("ok")
          const parents = db.state.tables.get("public.items") ?? new Map()
          const lines = db.state.tables.get("public.items_lines") ?? new Map()
          const expected = [...parents.values()].flatMap((p) =>
            (JSON.parse(p.values._children as string)[0] as Array<Record<string, unknown>>)
          ).map((v) => JSON.stringify(v)).sort()
          expect([...lines.values()].map((l) => JSON.stringify(l.values)).sort()).toEqual(expected)
          const stored = [...lines.values()]
          const versions = db.state.rowVersions
          expect(Either.isRight(run(last, { failAtPage: null, failWrite: null }))).toBe(true)
          expect(db.state.rowVersions).toBe(versions)
          const after = [...(db.state.tables.get("public.items_lines") ?? new Map()).values()]
          expect(after.length).toBe(stored.length)
          after.forEach((row, i) => expect(JSON.stringify(row)).toBe(JSON.stringify(stored[i])))
        }),
        { numRuns: 150 }
      )
    ))
})
