/**
 * The write modes over the in-memory layers (MemorySink keeps PgSink's semantics), as properties:
 *
 * - replace: after every run, failing at any page or any write or not, the table is exactly what it was
 *   before the run (a failed run, or one that read no record) or exactly the source as that run read it
 *   (a successful one): never a mix; the counts of a successful run add up.
 * - append: after any runs (failing or not) and a clean one, the table holds every version the source
 *   served, each once (id + cursor), and a run right after adds nothing.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, FastCheck as fc, Layer, Stream } from "effect"
import { SourceError } from "../src/domain/Errors.js"
import * as Memory from "../src/testing/index.js"
import type * as Source from "../src/Source.js"
import type { StreamSpec } from "../src/domain/StreamSpec.js"
import { syncStream } from "../src/sync/Sync.js"
import * as streams from "./support/streams.js"

interface Rec {
  readonly id: string
  readonly name: string
  readonly updated: number
}

const specOf = (write: "replace" | "append"): StreamSpec =>
  streams.streamSpec({
    source: {
      url: "http://model.invalid/items",
      incremental: write === "append" ? streams.incremental({ cursorField: "updated", param: "since", order: "asc" }) : undefined
    },
    target: {
      columns: [streams.column("id", "text"), streams.column("name", "text"), streams.column("updated", "numeric")],
      cursorColumn: write === "append" ? "updated" : undefined,
      write
    }
  })

const runArb = fc.record({
  size: fc.nat(12),
  version: fc.nat(3),
  failAtPage: fc.option(fc.nat(4), { nil: null }),
  failWrite: fc.option(fc.integer({ min: 1, max: 4 }), { nil: null })
})

const harness = (spec: StreamSpec, pageSize: number, batchRecords: number) => {
  const db = Memory.make()
  let served: ReadonlyArray<Rec> = []
  let failAtPage: number | null = null
  const source = Memory.MemorySource.layer(() => {
    const pages: Array<Source.Page> = []
    for (let i = 0; i < served.length; i += pageSize) {
      pages.push({ records: served.slice(i, i + pageSize), url: `model://p${i}`, retries: 0, bytes: 0 })
    }
    const ok = Stream.fromIterable(failAtPage === null ? pages : pages.slice(0, failAtPage))
    return failAtPage === null || failAtPage >= pages.length
      ? ok
      : Stream.concat(ok, Stream.fail(new SourceError({ stream: "items", url: "model://", status: 503, reason: "injected" })))
  })
  const layer = Layer.merge(Memory.layer(db), source)
  let n = 0
  const run = (records: ReadonlyArray<Rec>, faults: { failAtPage: number | null; failWrite: number | null }) =>
    Effect.gen(function*() {
      served = records
      failAtPage = faults.failAtPage
      const before = db.writes
      db.failWrite = (w) => faults.failWrite !== null && w - before === faults.failWrite
      const result = yield* Effect.either(syncStream(spec, { runId: `run-${++n}`, batch: { records: batchRecords } }))
      if (Either.isRight(result)) {
        const s = result.right
        expect(s.fetched).toBe(s.inserted + s.updated + s.unchanged + s.quarantined + s.alreadyQuarantined)
      }
      return result
    }).pipe(Effect.provide(layer))
  const table = () =>
    [...(db.state.tables.get("public.items")?.values() ?? [])].map((r) => ({ ...r.values, updated: String(r.values.updated) })).sort((a, b) =>
      JSON.stringify(a).localeCompare(JSON.stringify(b))
    )
  return { run, table }
}

const recordsOf = (size: number, version: number): Array<Rec> =>
  Array.from({ length: size }, (_, i) => ({ id: `r${i}`, name: `v${version}`, updated: version * 100 + i }))

const asRows = (records: ReadonlyArray<Rec>) =>
  records.map((r) => ({ id: r.id, name: r.name, updated: String(r.updated) })).sort((a, b) =>
    JSON.stringify(a).localeCompare(JSON.stringify(b))
  )

describe("write modes (property, in-memory layers)", () => {
  it.effect.prop(
    "replace: after every run the table is the old one or the source as the run read it, never a mix",
    [fc.array(runArb, { minLength: 1, maxLength: 6 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 10 })],
    ([runs, pageSize, batchRecords]) =>
      Effect.gen(function*() {
        const h = harness(specOf("replace"), pageSize, batchRecords)
        for (const r of runs) {
          const before = h.table()
          const records = recordsOf(r.size, r.version)
          const result = yield* h.run(records, r)
          const after = h.table()
          if (Either.isLeft(result) || records.length === 0) expect(after).toEqual(before)
          else expect(after).toEqual(asRows(records))
        }
      })
  )

  it.effect.prop(
    "append: every version served is a row, once; a run right after adds nothing",
    [fc.array(runArb, { minLength: 1, maxLength: 6 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 10 })],
    ([runs, pageSize, batchRecords]) =>
      Effect.gen(function*() {
        const h = harness(specOf("append"), pageSize, batchRecords)
        const versions = new Map<string, Rec>()
        let all: Array<Rec> = []
        for (const [k, r] of runs.entries()) {
          // the source holds every version so far (an event log, in cursor order: each run's are newer)
          all = [...all, ...recordsOf(r.size, k + 1)]
          yield* h.run(all, r)
        }
        for (const rec of all) versions.set(`${rec.id}@${rec.updated}`, rec)
        const clean = yield* h.run(all, { failAtPage: null, failWrite: null })
        expect(Either.isRight(clean)).toBe(true)
        expect(h.table()).toEqual(asRows([...versions.values()]))
        const again = yield* h.run(all, { failAtPage: null, failWrite: null })
        expect(Either.getOrThrow(again)).toMatchObject({ inserted: 0, updated: 0 })
      })
  )
})
