/**
 * Cursor: comparing cursors by the stream's cursor type, and `greatest`, the page's greatest cursor with
 * its shortcuts (each timestamp parsed once, plain UTC texts compared as text), which must pick exactly
 * what folding `Cursor.max` over the same cursors picks.
 */
import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import * as Cursor from "../src/domain/Cursor.js"
import type { CursorType } from "../src/domain/StreamSpec.js"

const pad = (n: number, width: number) => String(n).padStart(width, "0")

/** timestamps an API might send: plain UTC of every fraction length, days that roll over, offsets, junk */
const timestampArb: fc.Arbitrary<string> = fc.oneof(
  fc.record({
    year: fc.constantFrom(0, 1999, 2024, 2025, 9999),
    month: fc.integer({ min: 1, max: 12 }),
    // 29–31 exist in some months only: Date.parse rolls 02-30 over into March
    day: fc.integer({ min: 1, max: 31 }),
    hour: fc.integer({ min: 0, max: 23 }),
    minute: fc.constantFrom(0, 1, 59),
    second: fc.constantFrom(0, 30, 59),
    fraction: fc.constantFrom("", ".0", ".5", ".123", ".999", ".1234", ".123456789", ".000001"),
    zone: fc.constantFrom("Z", "Z", "Z", "Z", "+00:00", "+01:00", "-05:30", "z", "")
  }).map(({ day, fraction, hour, minute, month, second, year, zone }) =>
    `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}T${pad(hour, 2)}:${pad(minute, 2)}:${pad(second, 2)}${fraction}${zone}`
  ),
  fc.constantFrom("2024-01-01", "2024-01-01 10:00:00Z", "soon", "", "2024-13-01T00:00:00Z", "2024-02-30T00:00:00Z")
)

/**
 * The same shapes on a handful of instants, so that a page often holds texts of one instant written
 * differently (with and without a fraction, Feb 30 and Mar 1) and days either side of a month's end.
 */
const nearbyArb: fc.Arbitrary<string> = fc.record({
  monthDay: fc.constantFrom("02-28", "02-29", "02-30", "02-31", "03-01", "03-02", "03-03", "04-30", "04-31", "05-01"),
  time: fc.constantFrom("00:00:00", "23:59:59"),
  fraction: fc.constantFrom("", ".0", ".5", ".50", ".000", ".999999"),
  zone: fc.constantFrom("Z", "Z", "+00:00")
}).map(({ fraction, monthDay, time, zone }) => `2024-${monthDay}T${time}${fraction}${zone}`)

const fold = (type: CursorType, start: string | undefined, cursors: ReadonlyArray<string | undefined>) =>
  cursors.reduce<string | undefined>((best, c) => Cursor.max(type)(best, c), start)

describe("Cursor.greatest", () => {
  it("picks what folding Cursor.max picks, for timestamps of every shape", () => {
    let fastPathPairs = 0
    fc.assert(
      fc.property(
        fc.option(timestampArb, { nil: undefined }),
        fc.array(fc.option(timestampArb, { nil: undefined, freq: 10 }), { maxLength: 12 }),
        (start, cursors) => {
          expect(Cursor.greatest("timestamp", start, cursors)).toBe(fold("timestamp", start, cursors))
          if (cursors.filter((c) => c?.endsWith("Z") && c.length === 24).length > 1) fastPathPairs++
        }
      ),
      { numRuns: 5000 }
    )
    // the shortcut (plain UTC texts of one length) was exercised, not only the general path
    expect(fastPathPairs).toBeGreaterThan(100)
  })

  it("picks what folding Cursor.max picks where texts of one instant differ and months end", () => {
    fc.assert(
      fc.property(fc.option(nearbyArb, { nil: undefined }), fc.array(nearbyArb, { maxLength: 8 }), (start, cursors) => {
        expect(Cursor.greatest("timestamp", start, cursors)).toBe(fold("timestamp", start, cursors))
      }),
      { numRuns: 5000 }
    )
  })

  it("keeps the first of equal instants, and orders fractions past the millisecond", () => {
    expect(Cursor.greatest("timestamp", undefined, ["2024-01-01T00:00:00Z", "2024-01-01T00:00:00+00:00"]))
      .toBe("2024-01-01T00:00:00Z")
    expect(Cursor.greatest("timestamp", "2024-01-01T00:00:00.0001Z", ["2024-01-01T00:00:00.0002Z", "2024-01-01T00:00:00.0000Z"]))
      .toBe("2024-01-01T00:00:00.0002Z")
    // Feb 30 is March 1 to Date.parse: later than Feb 28 and equal to March 1, though it sorts before both as text
    expect(Cursor.greatest("timestamp", undefined, ["2024-02-28T00:00:00Z", "2024-02-30T00:00:00Z"]))
      .toBe("2024-02-30T00:00:00Z")
  })

  it("picks what folding Cursor.max picks, for numbers and text", () => {
    const numberArb = fc.oneof(fc.integer().map(String), fc.bigInt().map(String), fc.double({ noNaN: true }).map(String))
    fc.assert(
      fc.property(fc.option(numberArb, { nil: undefined }), fc.array(fc.option(numberArb, { nil: undefined })), (start, cursors) => {
        expect(Cursor.greatest("number", start, cursors)).toBe(fold("number", start, cursors))
      }),
      { numRuns: 1000 }
    )
    fc.assert(
      fc.property(fc.option(fc.string(), { nil: undefined }), fc.array(fc.option(fc.string(), { nil: undefined })), (start, cursors) => {
        expect(Cursor.greatest("string", start, cursors)).toBe(fold("string", start, cursors))
      }),
      { numRuns: 1000 }
    )
  })
})

describe("Cursor.compare for numbers past a double's precision", () => {
  const cmp = Cursor.compare("number")
  it("orders integers and decimals that are one double by their digits", () => {
    expect(cmp("1234567890123456789", "1234567890123456788")).toBe(1)
    expect(cmp("12345678.123456788", "12345678.123456789")).toBe(-1)
    expect(cmp("0.10000000000000000001", "0.1")).toBe(1)
    expect(cmp("1.0000000000000000000", "1")).toBe(0)
    expect(cmp("1e400", "1.0e400")).toBe(0)
    expect(cmp("2e400", "1e400")).toBe(1)
    expect(Cursor.max("number")("9007199254740993", "9007199254740992")).toBe("9007199254740993")
  })
})
