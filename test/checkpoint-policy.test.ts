/**
 * The checkpoint rules of src/sync/CheckpointPolicy.ts, as pure functions, each test stating the
 * guarantee it checks (DESIGN.md "Guarantees"). The program's use of them is tested end to end in
 * sync.property.test.ts, checkpoint.test.ts and checkpoint-rules.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, FastCheck as fc, Option } from "effect"
import * as CheckpointPolicy from "../src/sync/CheckpointPolicy.js"
import type { Incremental, Row } from "../src/domain/StreamSpec.js"

const numberCursor = fc.integer({ min: -1000, max: 1000 }).map(String)
const maybeCursor = fc.option(numberCursor, { nil: undefined })
const byNumber = (a: string | undefined, b: string | undefined) =>
  a === undefined ? b : b === undefined ? a : Number(a) >= Number(b) ? a : b

const rowOf = (key: number, cursor: string | undefined): { readonly row: Row } => ({
  row: { key: String(key), cursor, values: {} }
})

const incremental = (over: Partial<Incremental>): Incremental => ({
  cursorField: "updated_at",
  cursorType: "timestamp",
  lookback: Duration.zero,
  order: "asc",
  ...over
})

describe("CheckpointPolicy", () => {
  it("asc: a committed batch moves the checkpoint to the greatest cursor committed, never backwards", () => {
    fc.assert(fc.property(maybeCursor, maybeCursor, (checkpoint, committed) => {
      const next = CheckpointPolicy.afterBatch("asc", "number", checkpoint, committed)
      const expected = byNumber(checkpoint, committed)
      expect(next).toBe(expected === checkpoint ? undefined : expected)
      if (next !== undefined && checkpoint !== undefined) expect(Number(next)).toBeGreaterThan(Number(checkpoint))
    }))
  })

  it("unsorted (or not incremental): no batch moves the checkpoint, whatever it committed", () => {
    fc.assert(fc.property(fc.constantFrom("unsorted" as const, undefined), maybeCursor, maybeCursor, (order, checkpoint, committed) => {
      expect(CheckpointPolicy.afterBatch(order, "number", checkpoint, committed)).toBeUndefined()
    }))
  })

  it("a run of batches: the checkpoint never decreases and ends at the greatest of where it started and what was committed", () => {
    fc.assert(fc.property(fc.constantFrom("asc" as const, "unsorted" as const), maybeCursor, fc.array(fc.array(maybeCursor)), (order, start, batches) => {
      let checkpoint = start
      let seen: string | undefined
      for (const cursors of batches) {
        seen = CheckpointPolicy.committed("number", seen, cursors.map((cursor) => ({ cursor })), [], [])
        const next = CheckpointPolicy.afterBatch(order, "number", checkpoint, seen)
        if (next !== undefined) expect(byNumber(next, checkpoint)).toBe(next)
        checkpoint = next ?? checkpoint
      }
      checkpoint = CheckpointPolicy.afterStream("number", checkpoint, seen) ?? checkpoint
      expect(checkpoint).toBe(batches.flat().reduce(byNumber, start))
    }))
  })

  it("after the whole stream it moves to the greatest cursor committed, only forward", () => {
    fc.assert(fc.property(maybeCursor, maybeCursor, (checkpoint, seen) => {
      const final = CheckpointPolicy.afterStream("number", checkpoint, seen)
      const expected = byNumber(checkpoint, seen)
      expect(final).toBe(expected === checkpoint ? undefined : expected)
    }))
  })

  it("timestamps compare as instants: a later instant with an earlier wall clock still moves it forward", () => {
    const next = CheckpointPolicy.afterStream("timestamp", "2024-03-10T09:30:00+02:00", "2024-03-10T08:00:00Z")
    expect(next).toBe("2024-03-10T08:00:00Z")
    expect(CheckpointPolicy.afterStream("timestamp", "2024-03-10T08:00:00Z", "2024-03-10T09:30:00+02:00")).toBeUndefined()
  })

  it("only rows the sink accepted count: a refused row's cursor is never committed", () => {
    const rowsWithRefusals = fc.array(fc.record({ cursor: maybeCursor, refused: fc.boolean() }), { minLength: 1 })
    fc.assert(fc.property(maybeCursor, rowsWithRefusals, (seen, spec) => {
      const rows = spec.map((r, i) => rowOf(i, r.cursor))
      const rejected = rows.filter((_, i) => spec[i]!.refused).map((r) => ({ ...r, reason: "refused" }))
      fc.pre(rejected.length > 0)
      // the pages' greatest cursors include the refused rows: they must not decide
      const pages = [{ cursor: spec.map((r) => r.cursor).reduce(byNumber, undefined) }]
      const accepted = spec.filter((r) => !r.refused).map((r) => r.cursor)
      expect(CheckpointPolicy.committed("number", seen, pages, rows, rejected)).toBe(accepted.reduce(byNumber, seen))
    }))
  })

  it("with no row refused, the pages' greatest cursors are what the batch committed", () => {
    fc.assert(fc.property(maybeCursor, fc.array(maybeCursor), (seen, cursors) => {
      const pages = cursors.map((cursor) => ({ cursor }))
      expect(CheckpointPolicy.committed("number", seen, pages, [], [])).toBe(cursors.reduce(byNumber, seen))
    }))
  })

  it("a stored checkpoint applies only to a table that holds rows; a legacy one is adopted there", () => {
    for (const legacy of [false, true]) {
      for (const dryRun of [false, true]) {
        expect(CheckpointPolicy.stored("filled", { cursor: "5", legacy }, "public.items", dryRun)).toEqual({
          _tag: "Applies",
          cursor: "5",
          adopted: legacy
        })
      }
    }
  })

  it("a created or empty table ignores it, says why, and forgets it unless it is legacy or the run is dry", () => {
    for (const table of ["created", "empty"] as const) {
      for (const legacy of [false, true]) {
        for (const dryRun of [false, true]) {
          const verdict = CheckpointPolicy.stored(table, { cursor: "5", legacy }, "public.items", dryRun)
          expect(verdict).toMatchObject({ _tag: "Ignored", cursor: "5", legacy, clear: !legacy && !dryRun })
          expect(verdict._tag === "Ignored" && verdict.reason).toBe(
            `${table === "created" ? "table public.items was created by this run" : "table public.items is empty"}: the run starts from initial`
          )
        }
      }
    }
  })

  it("a legacy checkpoint becomes the key's only when a real run finds the table filled", () => {
    expect(CheckpointPolicy.adoptsLegacy("filled", false)).toBe(true)
    expect(CheckpointPolicy.adoptsLegacy("filled", true)).toBe(false)
    expect(CheckpointPolicy.adoptsLegacy("empty", false)).toBe(false)
    expect(CheckpointPolicy.adoptsLegacy("created", false)).toBe(false)
  })

  it("a run starts from the checkpoint, else `initial` (always with a full refresh), less the lookback", () => {
    const inc = incremental({ initial: "2024-01-01T00:00:00Z", lookback: Duration.hours(1) })
    const at = "2024-06-01T12:00:00Z"
    expect(CheckpointPolicy.startFrom(inc, at, false)).toEqual(Option.some("2024-06-01T11:00:00.000Z"))
    expect(CheckpointPolicy.startFrom(inc, undefined, false)).toEqual(Option.some("2023-12-31T23:00:00.000Z"))
    expect(CheckpointPolicy.startFrom(inc, at, true)).toEqual(Option.some("2023-12-31T23:00:00.000Z"))
    expect(CheckpointPolicy.startFrom(incremental({}), undefined, false)).toEqual(Option.none())
    expect(CheckpointPolicy.startFrom(incremental({}), at, true)).toEqual(Option.none())
    expect(CheckpointPolicy.startFrom(undefined, at, false)).toEqual(Option.none())
  })
})
