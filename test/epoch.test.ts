/**
 * Epoch times (issue 14 item 5), unit level: Unix seconds and milliseconds convert exactly to the
 * instant a column stores; anything else is a reason, never a wrong instant; an epoch cursor moves
 * back by the lookback in its own unit and form.
 */
import { Duration, Either } from "effect"
import { describe, expect, it } from "vitest"
import { converterOf } from "../src/domain/ColumnValue.js"
import * as Cursor from "../src/domain/Cursor.js"
import { epochMinus, epochOfInitial, epochToIso } from "../src/domain/Epoch.js"
import { LosslessNumber } from "../src/domain/Json.js"
import { rowFrom } from "../src/domain/RowDecoder.js"
import { TargetSpec } from "../src/domain/Target.js"

describe("epochToIso", () => {
  it("reads seconds, fractional seconds, milliseconds and digit strings exactly", () => {
    expect(epochToIso(1700000000, "unix")).toBe("2023-11-14T22:13:20Z")
    expect(epochToIso("1700000000", "unix")).toBe("2023-11-14T22:13:20Z")
    expect(epochToIso(1700000000.25, "unix")).toBe("2023-11-14T22:13:20.25Z")
    expect(epochToIso("1700000000.123456789", "unix")).toBe("2023-11-14T22:13:20.123456789Z")
    expect(epochToIso(1700000000123, "unix_ms")).toBe("2023-11-14T22:13:20.123Z")
    expect(epochToIso("1700000000123", "unix_ms")).toBe("2023-11-14T22:13:20.123Z")
    expect(epochToIso(new LosslessNumber("1700000000123.5"), "unix_ms")).toBe("2023-11-14T22:13:20.1235Z")
    expect(epochToIso(0, "unix")).toBe("1970-01-01T00:00:00Z")
  })
  it("reads negative (pre-1970) values, fractions included", () => {
    expect(epochToIso(-1, "unix")).toBe("1969-12-31T23:59:59Z")
    expect(epochToIso("-1.5", "unix")).toBe("1969-12-31T23:59:58.5Z")
    expect(epochToIso(-86400000, "unix_ms")).toBe("1969-12-31T00:00:00Z")
  })
  it("refuses garbage, too many decimals and years outside 0001-9999 with a reason", () => {
    for (const bad of ["2024-01-01", "abc", "", "1e9", "0x10", true, null, {}, Number.NaN]) {
      expect(epochToIso(bad, "unix")).toHaveProperty("problem")
    }
    expect(epochToIso("1.0000000001", "unix")).toHaveProperty("problem")
    expect(epochToIso(253402300800, "unix")).toEqual({ problem: "253402300800 is outside the years 0001–9999" })
    // a millisecond value past 2^53 (as a lossless number) is refused, not rounded into some year
    expect(epochToIso(new LosslessNumber("99999999999999999999"), "unix_ms")).toHaveProperty("problem")
    expect(epochToIso(253402300799999, "unix_ms")).toBe("9999-12-31T23:59:59.999Z")
  })
})

describe("converterOf", () => {
  it("stores the instant, the UTC clock time, or the UTC date", () => {
    expect(converterOf("timestamptz", "unix")(1700000000)).toBe("2023-11-14T22:13:20Z")
    expect(converterOf("timestamp", "unix_ms")(1700000000000)).toBe("2023-11-14T22:13:20Z")
    expect(converterOf("date", "unix")(1700000000)).toBe("2023-11-14")
    // iso, or no format: the column type's own converter, unchanged
    expect(converterOf("timestamptz", "iso")("2024-01-01T00:00:00Z")).toBe("2024-01-01T00:00:00Z")
  })
  it("makes a non-number an invalid record naming the column", () => {
    const target = TargetSpec.make({
      schema: "public",
      table: "t",
      primaryKey: ["id"],
      columns: [{ name: "id", type: "text", from: "id" }, { name: "created", type: "timestamptz", from: "created_at", format: "unix" }],
      cursorColumn: "created"
    })
    const bad = rowFrom(target, { id: "1", created_at: "2024-01-01T00:00:00Z" })
    expect(Either.isLeft(bad) && bad.left).toMatch(/^created_at: expected Unix seconds/)
    const good = rowFrom(target, { id: "1", created_at: 1700000000 })
    // the row stores the instant; its cursor is the value as the API sent it
    expect(Either.getOrThrow(good).values.created).toBe("2023-11-14T22:13:20Z")
    expect(Either.getOrThrow(good).cursor).toBe("1700000000")
  })
})

describe("an epoch cursor", () => {
  it("is sent back less the lookback, in its own unit, exactly", () => {
    expect(Cursor.minusLookback("number", "1700000000", Duration.minutes(5), "unix")).toBe("1699999700")
    expect(Cursor.minusLookback("number", "1700000000.5", Duration.seconds(1), "unix")).toBe("1699999999.5")
    expect(Cursor.minusLookback("number", "1700000000123", Duration.seconds(1), "unix_ms")).toBe("1699999999123")
    expect(Cursor.minusLookback("number", "10", Duration.seconds(12.5), "unix")).toBe("-2.5")
    expect(Cursor.minusLookback("number", "1700000000", Duration.zero, "unix")).toBe("1700000000")
    expect(epochMinus("0.25", "unix", 1000)).toBe("-0.75")
  })
  it("compares as a number: later instants are greater", () => {
    expect(Cursor.greatest("number", "999999999", ["1000000000", "1700000000.5", "1700000000"])).toBe("1700000000.5")
  })
  it("takes initial as an epoch value or as ISO", () => {
    expect(epochOfInitial("1700000000", "unix")).toBe("1700000000")
    expect(epochOfInitial("2023-11-14T22:13:20Z", "unix")).toBe("1700000000")
    expect(epochOfInitial("2023-11-14T22:13:20.5Z", "unix_ms")).toBe("1700000000500")
    expect(epochOfInitial("2024-01-01", "unix")).toBe("1704067200")
    expect(epochOfInitial("yesterday", "unix")).toBeUndefined()
  })
})
