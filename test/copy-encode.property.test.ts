/**
 * CopyIn.encode writes each row through a line written out for its target's columns (Specialized.ts).
 * The guarantee checked: for any column names (quotes, backslashes, line separators, members of
 * Object.prototype, repeats) and any values (COPY's specials, numbers it cannot write, jsonb, lone
 * surrogates, missing and null), its text is exactly the generic loop's, and a row with no COPY text
 * refuses the page in both.
 */
import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { LosslessNumber } from "../src/domain/Json.js"
import * as CopyIn from "../src/sink/postgres/CopyIn.js"
import { type Column, columnTypes, type Row, type TargetSpec } from "../src/domain/StreamSpec.js"

const nameArb = fc.oneof(
  fc.constantFrom("id", "a", "b", "__proto__", "constructor", "toString", "\"", "\\", "\u2028", "\ud800", "`${x}`", "*/", "\n", "0"),
  fc.string({ maxLength: 4 })
)

const valueArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.string(),
  fc.constantFrom("a\tb", "a\\b", "line\nbreak", "\r", "\\N", "lone \ud800", "", "\u0000"),
  fc.double(),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.bigInt().map((n) => n),
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(new LosslessNumber("12345678901234567890"), new LosslessNumber("1e400"))
)

const targetArb: fc.Arbitrary<TargetSpec> = fc.array(
  fc.record({ name: nameArb, type: fc.constantFrom(...columnTypes) }),
  { minLength: 1, maxLength: 6 }
).map((columns) => ({
  schema: "public",
  table: "t",
  primaryKey: [columns[0]!.name],
  columns: columns.map((c): Column => ({ ...c, from: c.name })),
  cursorColumn: undefined
}))

/** rows whose values sit at the target's names (own properties, `__proto__` included), some missing */
const rowsArb = (target: TargetSpec): fc.Arbitrary<ReadonlyArray<Row>> =>
  fc.array(
    fc.array(fc.option(valueArb, { nil: undefined }), { minLength: target.columns.length, maxLength: target.columns.length }).map((vs) => {
      const values: Record<string, unknown> = {}
      target.columns.forEach((c, i) => {
        if (vs[i] !== undefined) Object.defineProperty(values, c.name, { value: vs[i], enumerable: true, writable: true, configurable: true })
      })
      return { key: "[1]", cursor: undefined, values }
    }),
    { maxLength: 5 }
  )

describe("CopyIn.encode written out per target", () => {
  it.prop("writes exactly the generic loop's text, or refuses where it refuses", [targetArb.chain((t) => fc.tuple(fc.constant(t), rowsArb(t)))], ([[target, rows]]) => {
    // the written-out line, not the loop (a generated source that failed would fall back silently)
    expect(CopyIn.lineOf(target).name).toBe("line")
    expect(CopyIn.encode(target, rows)).toBe(CopyIn.encodeGeneric(target, rows))
  }, { fastCheck: { numRuns: 3000 } })

  it("columns named like Object.prototype's members are written from the row's own values", () => {
    const target: TargetSpec = {
      schema: "public",
      table: "t",
      primaryKey: ["id"],
      columns: [{ name: "id", type: "text", from: "id" }, { name: "constructor", type: "text", from: "c" }, { name: "toString", type: "jsonb", from: "t" }],
      cursorColumn: undefined
    }
    expect(CopyIn.encode(target, [{ key: "[1]", cursor: undefined, values: { id: "1", constructor: null, toString: null } }])).toBe("1\t\\N\t\\N\n")
    expect(CopyIn.encode(target, [{ key: "[1]", cursor: undefined, values: { id: "a\tb", constructor: "x", toString: { y: 1 } } }])).toBe("a\\tb\tx\t{\"y\":1}\n")
  })

  it("a target whose columns are replaced in place is written in its new columns' order, as COPY's column list is", () => {
    // an application may change a target it built; COPY's statement lists CopyIn.columnNames(target) afresh
    const target = {
      schema: "public",
      table: "t",
      primaryKey: ["id"],
      columns: [{ name: "id", type: "text", from: "id" }, { name: "name", type: "text", from: "name" }],
      cursorColumn: undefined
    } as TargetSpec
    const row: Row = { key: "[1]", cursor: undefined, values: { id: "1", name: "a" } }
    expect(CopyIn.encode(target, [row])).toBe("1\ta\n")
    ;(target as { columns: TargetSpec["columns"] }).columns = [...target.columns].reverse()
    expect(CopyIn.columnNames(target)).toEqual(["name", "id"])
    expect(CopyIn.encode(target, [row])).toBe("a\t1\n")
  })
})
