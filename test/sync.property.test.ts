/**
 * Property tests of the sync program over in-memory layers (src/testing: MemorySink, MemoryCheckpoints, MemorySource).
 * The source is a model API: records with a numeric cursor (`updated`, with ties), filtered by
 * `updated >= from`, sorted or shuffled, split into pages, failing where the scenario says.
 *
 * Guarantees checked for any scenario:
 * - convergence: after the last clean run the table holds exactly the source's latest version of
 *   every record (no loss, no duplicate, no stale row), whatever failed before;
 * - monotonic: the stored checkpoint never decreases, across failed, successful and --full-refresh runs;
 * - idempotent: a run with no source change writes no row version;
 * - accounting: every summary has fetched = inserted + updated + unchanged + quarantined.
 * The in-memory sink has the bulk path PgSink has (first loads, refused when a key is stored already or
 * repeated), and half the model's pages can be parsed again (`reparse`) as HTTP pages can: the
 * guarantees hold through the bulk path, its refusals and the re-decoded rows alike.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, FastCheck as fc, Layer, Option, Stream } from "effect"
import * as Cursor from "../src/domain/Cursor.js"
import { SourceError } from "../src/domain/Errors.js"
import * as Memory from "../src/testing/index.js"
import type * as Source from "../src/Source.js"
import type { StreamSpec } from "../src/domain/StreamSpec.js"
import { syncStream } from "../src/sync/Sync.js"
import * as streams from "./support/streams.js"

interface SourceRecord {
  readonly id: string
  readonly name: string
  readonly updated: number
}

const target = streams.target({
  columns: [streams.column("id", "text"), streams.column("name", "text"), streams.column("updated", "numeric")],
  cursorColumn: "updated"
})

const specFor = (order: "asc" | "unsorted"): StreamSpec =>
  streams.streamSpec({
    source: {
      url: "http://model.invalid/items",
      incremental: streams.incremental({ cursorField: "updated", param: "since", order })
    },
    target
  })

type Step =
  | {
    readonly _tag: "run"
    readonly failAtPage: number | null
    readonly failWrite: number | null
    readonly fullRefresh: boolean
  }
  | {
    readonly _tag: "mutate"
    readonly updates: ReadonlyArray<number>
    readonly inserts: number
    readonly tick: boolean
  }

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    _tag: fc.constant("run" as const),
    failAtPage: fc.option(fc.nat(6), { nil: null }),
    failWrite: fc.option(fc.integer({ min: 1, max: 6 }), { nil: null }),
    fullRefresh: fc.boolean()
  }),
  fc.record({
    _tag: fc.constant("mutate" as const),
    updates: fc.array(fc.nat(40), { maxLength: 6 }),
    inserts: fc.nat(4),
    tick: fc.boolean()
  })
)

const scenarioArb = fc.record({
  initial: fc.integer({ min: 0, max: 25 }),
  /** initial cursors are drawn from a small range, so many records tie */
  initialCursors: fc.array(fc.nat(5), { minLength: 25, maxLength: 25 }),
  pageSize: fc.integer({ min: 1, max: 7 }),
  /** records per transaction: from one page per transaction to many pages in one */
  batchRecords: fc.integer({ min: 1, max: 20 }),
  order: fc.constantFrom("asc" as const, "unsorted" as const),
  steps: fc.array(stepArb, { maxLength: 8 }),
  shuffleSeed: fc.nat(),
  /** pages that overlap (offset pagination while records move): the first record comes again at the end */
  overlap: fc.boolean()
})

/** A deterministic shuffle, so "unsorted" sources differ between runs but reproduce from the seed. */
const shuffle = <A>(items: ReadonlyArray<A>, seed: number): Array<A> => {
  const out = [...items]
  let s = seed || 1
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) & 0x7fffffff
    const j = s % (i + 1)
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

/** bulk writes over all the scenarios, to check that the property covered both outcomes */
const bulkSeen = { written: 0, refused: 0 }

describe("Sync (property, in-memory layers)", () => {
  it.effect.prop(
    "converges to the source's latest version, never moves the checkpoint back, and a no-change run writes nothing",
    [scenarioArb],
    ([scenario]) =>
      Effect.gen(function*() {
        const spec = specFor(scenario.order)
        const db = Memory.make()
        const truth = new Map<string, SourceRecord>()
        let clock = 5
        let nextId = 0
        const insert = () => {
          const id = `r${nextId++}`
          truth.set(id, { id, name: `${id}-v0`, updated: clock })
        }
        for (let i = 0; i < scenario.initial; i++) {
          const id = `r${nextId++}`
          truth.set(id, { id, name: `${id}-v0`, updated: scenario.initialCursors[i]! })
        }

        let failAtPage: number | null = null
        let runNumber = 0
        const source = Memory.MemorySource.layer((_stream, from) => {
          const since = Option.map(from, Number)
          const visible = [...truth.values()].filter((r) => Option.isNone(since) || r.updated >= since.value)
          const ordered = scenario.order === "asc"
            ? visible.sort((a, b) => a.updated - b.updated || a.id.localeCompare(b.id))
            : shuffle(visible, scenario.shuffleSeed + runNumber)
          const pages: Array<Source.Page> = []
          for (let i = 0; i < ordered.length; i += scenario.pageSize) {
            const records = ordered.slice(i, i + scenario.pageSize)
            // every other page can be parsed again, like an HTTP page: Sync may then drop its rows
            const reparse = pages.length % 2 === 0 ? () => records.map((r) => ({ ...r })) : undefined
            pages.push({ records, url: `model://items?page=${pages.length}`, retries: 0, bytes: 0, reparse })
          }
          if (scenario.overlap && pages.length >= 2) {
            const last = pages[pages.length - 1]!
            pages[pages.length - 1] = { ...last, records: [...last.records, ordered[0]!], reparse: undefined }
          }
          const failAt = failAtPage
          const served = failAt === null ? pages : pages.slice(0, failAt)
          const stream = Stream.fromIterable(served)
          return failAt === null || failAt >= pages.length
            ? stream
            : Stream.concat(
              stream,
              Stream.fail(new SourceError({ stream: "items", url: "model://items", status: 503, reason: "injected" }))
            )
        })
        const layer = Layer.merge(Memory.layer(db), source)

        let lastCheckpoint: string | undefined
        const compareCursor = Cursor.compare("number")
        const run = (faults: { failAtPage: number | null; failWrite: number | null; fullRefresh?: boolean }) =>
          Effect.gen(function*() {
            runNumber++
            failAtPage = faults.failAtPage
            const writesBefore = db.writes
            db.failWrite = (n) => faults.failWrite !== null && n - writesBefore === faults.failWrite
            const result = yield* Effect.either(
              syncStream(spec, {
                runId: `run-${runNumber}`,
                fullRefresh: faults.fullRefresh === true,
                batch: { records: scenario.batchRecords }
              })
            )
            const checkpoint = db.state.checkpoints.get("items@public.items")
            if (lastCheckpoint !== undefined) {
              expect(checkpoint).toBeDefined()
              expect(compareCursor(checkpoint!, lastCheckpoint)).toBeGreaterThanOrEqual(0)
            }
            lastCheckpoint = checkpoint
            if (Either.isRight(result)) {
              const s = result.right
              expect(s.fetched).toBe(s.inserted + s.updated + s.unchanged + s.quarantined)
            }
            return result
          }).pipe(Effect.provide(layer))

        for (const step of scenario.steps) {
          if (step._tag === "run") {
            yield* run(step)
          } else {
            if (step.tick) clock++
            for (const n of step.updates) {
              const id = `r${n}`
              const current = truth.get(id)
              if (current) truth.set(id, { id, name: `${current.name}+`, updated: clock })
            }
            for (let i = 0; i < step.inserts; i++) insert()
          }
        }

        // A clean run converges to the source exactly.
        const final = yield* run({ failAtPage: null, failWrite: null })
        expect(Either.isRight(final)).toBe(true)
        const table = db.state.tables.get("public.items") ?? new Map()
        expect(table.size).toBe(truth.size)
        for (const record of truth.values()) {
          const stored = table.get(JSON.stringify([record.id]))
          expect(stored?.values).toEqual({ id: record.id, name: record.name, updated: record.updated })
        }
        if (truth.size > 0) {
          const maxCursor = Math.max(...[...truth.values()].map((r) => r.updated))
          expect(Number(db.state.checkpoints.get("items@public.items"))).toBe(maxCursor)
        }

        // Nothing changed at the source: nothing is written.
        const versions = db.state.rowVersions
        const again = yield* run({ failAtPage: null, failWrite: null })
        expect(Either.isRight(again)).toBe(true)
        if (Either.isRight(again)) {
          expect(again.right.inserted + again.right.updated).toBe(0)
        }
        expect(db.state.rowVersions).toBe(versions)
        bulkSeen.written += db.bulk.written
        bulkSeen.refused += db.bulk.refused
      }),
    { fastCheck: { numRuns: 300 } }
  )

  it("the scenarios above went through the bulk path and through its refusal", () => {
    expect(bulkSeen.written).toBeGreaterThan(0)
    expect(bulkSeen.refused).toBeGreaterThan(0)
  })

  it.effect.prop(
    "a row the database refuses never moves the checkpoint: the next run still loads every record it accepts",
    [fc.record({
      /** cursors from a small range; `refused` rows are refused at write time (a value out of range) */
      first: fc.array(fc.record({ updated: fc.nat(20), refused: fc.boolean() }), { minLength: 1, maxLength: 20 }),
      /** cursors from the greatest accepted one on (an older one would be missed by any incremental read) */
      later: fc.array(fc.record({ updated: fc.nat(10), refused: fc.boolean() }), { maxLength: 10 }),
      pageSize: fc.integer({ min: 1, max: 5 }),
      batchRecords: fc.integer({ min: 1, max: 12 }),
      order: fc.constantFrom("asc" as const, "unsorted" as const)
    })],
    ([scenario]) =>
      Effect.gen(function*() {
        const spec = { ...specFor(scenario.order), maxInvalid: 1_000 }
        const db = Memory.make()
        db.refuse = (row) => (String(row.values.name).startsWith("!") ? "value out of range" : undefined)
        const truth: Array<SourceRecord> = []
        const add = (records: ReadonlyArray<{ updated: number; refused: boolean }>) => {
          for (const r of records) {
            const id = `r${truth.length}`
            truth.push({ id, name: r.refused ? `!${id}` : id, updated: r.updated })
          }
        }
        const source = Memory.MemorySource.layer((_stream, from) => {
          const since = Option.map(from, Number)
          const visible = truth
            .filter((r) => Option.isNone(since) || r.updated >= since.value)
            .sort((a, b) => a.updated - b.updated || a.id.localeCompare(b.id))
          const pages: Array<Source.Page> = []
          for (let i = 0; i < visible.length; i += scenario.pageSize) {
            const records = visible.slice(i, i + scenario.pageSize)
            pages.push({ records, url: `model://items?page=${pages.length}`, retries: 0, bytes: 0 })
          }
          return Stream.fromIterable(pages)
        })
        const run = (n: number) =>
          syncStream(spec, { runId: `run-${n}`, batch: { records: scenario.batchRecords } }).pipe(
            Effect.provide(Layer.merge(Memory.layer(db), source))
          )
        const accepted = () => truth.filter((r) => !r.name.startsWith("!"))
        const expectLoaded = (summary: { checkpoint: string | undefined; fetched: number; inserted: number; updated: number; unchanged: number; quarantined: number; alreadyQuarantined: number }) => {
          expect(summary.fetched).toBe(
            summary.inserted + summary.updated + summary.unchanged + summary.quarantined + summary.alreadyQuarantined
          )
          const table = db.state.tables.get("public.items") ?? new Map()
          expect([...table.keys()].sort()).toEqual(accepted().map((r) => JSON.stringify([r.id])).sort())
          const greatest = accepted().reduce<number | undefined>((m, r) => Math.max(m ?? r.updated, r.updated), undefined)
          expect(summary.checkpoint).toBe(greatest === undefined ? undefined : String(greatest))
          expect(db.state.checkpoints.get(Memory.MemorySink.checkpointKey({ stream: "items", target: "public.items" }))).toBe(summary.checkpoint)
        }
        add(scenario.first)
        expectLoaded(yield* run(1))
        const base = Math.max(0, ...accepted().map((r) => r.updated))
        add(scenario.later.map((r) => ({ ...r, updated: base + r.updated })))
        expectLoaded(yield* run(2))
      }),
    { fastCheck: { numRuns: 200 } }
  )

  it.effect.prop(
    "invalid records are quarantined once, never dropped: fetched = written + unchanged + quarantined + already_quarantined",
    [fc.array(fc.oneof(
      fc.record({ id: fc.string({ minLength: 1, maxLength: 4 }), name: fc.string(), updated: fc.nat(9) }),
      fc.record({ name: fc.string(), updated: fc.nat(9) }),
      fc.record({ id: fc.string({ minLength: 1 }), name: fc.string(), updated: fc.constant("soon") }),
      fc.constant(null)
    ), { maxLength: 30 })],
    ([records]) =>
      Effect.gen(function*() {
        const db = Memory.make()
        const spec = { ...specFor("unsorted"), maxInvalid: 1_000 }
        const source = Memory.MemorySource.layer(() =>
          Stream.make({ records, url: "model://items", retries: 0, bytes: 0 })
        )
        const summary = yield* syncStream(spec, { runId: "r1" }).pipe(
          Effect.provide(Layer.merge(Memory.layer(db), source))
        )
        const invalid = records.filter((r) => Either.isLeft(spec.decode(r)))
        // the same invalid text twice is stored (and counted against maxInvalid) once
        const distinct = new Set(invalid.map((r) => JSON.stringify(r))).size
        expect(summary.fetched).toBe(records.length)
        expect(summary.quarantined).toBe(distinct)
        expect(summary.alreadyQuarantined).toBe(invalid.length - distinct)
        expect(db.state.quarantine.length).toBe(distinct)
        expect(summary.inserted + summary.updated + summary.unchanged + summary.quarantined + summary.alreadyQuarantined)
          .toBe(records.length)
        // read again by the next run: none stored or counted again
        const again = yield* syncStream(spec, { runId: "r2" }).pipe(
          Effect.provide(Layer.merge(Memory.layer(db), source))
        )
        expect(again).toMatchObject({ quarantined: 0, alreadyQuarantined: invalid.length })
        expect(db.state.quarantine.length).toBe(distinct)
      }),
    { fastCheck: { numRuns: 200 } }
  )
})
