/**
 * Json: numbers a double cannot hold come back with every digit, everything else as JSON.parse gives
 * it; text that is not JSON still throws; any depth serializes.
 */
import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import * as Json from "../src/domain/Json.js"

/** integer tokens of 1 to 30 digits: up to 15 a double holds, past that Json keeps the text */
const integerToken = fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 9 }), fc.array(fc.integer({ min: 0, max: 9 }), { maxLength: 29 }))
  .map(([negative, first, rest]) => `${negative ? "-" : ""}${first}${rest.join("")}`)

/** JSON text built by hand, so that its numbers are tokens as an API would write them */
const jsonText: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    integerToken,
    fc.string().map((s) => JSON.stringify(s)),
    // digits inside strings are never numbers
    integerToken.map((t) => JSON.stringify(`id ${t}`)),
    fc.constantFrom("true", "false", "null", "0.5", "1e400", "-1e-400", "12345678.123456789"),
    fc.array(tie("value"), { maxLength: 4 }).map((items) => `[${items.join(",")}]`),
    // keys that are array indices ("0") come first in any JavaScript object: not these
    fc.array(fc.tuple(fc.string().map((k) => `k${k}`), tie("value")), { maxLength: 4 }).map((members) =>
      `{${[...new Map(members).entries()].map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(",")}}`
    )
  )
})).value

describe("Json", () => {
  it.prop("parse then stringify gives the text back, every digit kept", [jsonText], ([text]) => {
    expect(Json.stringify(Json.parse(text))).toBe(text)
    expect(Json.stringifyExact(Json.parse(text))).toBe(text)
  }, { fastCheck: { numRuns: 2000 } })

  it("keeps what a double rounds, and leaves the rest to JSON.parse", () => {
    const value = Json.parse(`{"id":1234567890123456789,"n":7,"big":1e400,"s":"1234567890123456789"}`) as Record<string, unknown>
    expect(value.id).toEqual(new Json.LosslessNumber("1234567890123456789"))
    expect(value.big).toEqual(new Json.LosslessNumber("1e400"))
    expect(value.n).toBe(7)
    expect(value.s).toBe("1234567890123456789")
    // 16 digits: kept as text even under 2^53 (the rule counts digits, not magnitude)
    expect(Json.parse(`[1234567890123456]`)).toEqual([new Json.LosslessNumber("1234567890123456")])
  })

  it("text that is not JSON still throws, a long number where a key belongs too", () => {
    for (const text of [`{1234567890123456789:1}`, `[01234567890123456789]`, `[1234567890123456789`, `{"a":1e400,}`]) {
      expect(() => Json.parse(text), text).toThrow(SyntaxError)
    }
  })

  it("stringifyExact writes any depth, and what JSON cannot hold as JSON.stringify would or as strings", () => {
    let deep: unknown = new Json.LosslessNumber("1e400")
    for (let i = 0; i < 5000; i++) deep = [deep]
    expect(Json.stringifyExact(deep)).toBe(`${"[".repeat(5000)}1e400${"]".repeat(5000)}`)
    expect(Json.stringifyExact({ a: undefined, b: [undefined, () => 1], c: Infinity, d: "\u0000\udc00" }))
      .toBe(`{"b":[null,null],"c":"Infinity","d":"\\u0000\\udc00"}`)
    expect(Json.stringifyExact(42)).toBe("42")
  })
})
