/**
 * RowDecoder and JsonPath: what each column type accepts and refuses (the table below), missing keys and
 * cursors, and properties that the decoder (compiled once per stream, with fast paths) gives exactly the
 * result of a straightforward reference: the first implementation, kept below verbatim.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc } from "effect"
import { LosslessNumber } from "../src/domain/Json.js"
import { valueAt } from "../src/domain/JsonPath.js"
import * as RowDecoder from "../src/domain/RowDecoder.js"
import { type Column, type ColumnType, columnTypes, type Row, type TargetSpec } from "../src/domain/StreamSpec.js"
import { column, target } from "./support/streams.js"

// ---- the reference: the decoder as first written (one path split and one Either per value), with
// issue 10's changes: integers, bigints and uuids as Postgres writes them, keys by typed value ----

const refValueAt = (value: unknown, path: string): unknown => {
  if (path === "") return value
  let current = value
  for (const key of path.split(".")) {
    if (current === null || typeof current !== "object") return undefined
    if (!Object.prototype.hasOwnProperty.call(current, key)) return undefined
    current = (current as Record<string, unknown>)[key]
  }
  return current
}

const NUL = "\u0000"
const refMaxDepth = 128
const refIsObject = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)
const isoTimestamp = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?$/i
const isoDate = /^\d{4}-\d{2}-\d{2}$/
const uuid = /^\{?[0-9a-f]{4}(?:-?[0-9a-f]{4}){7}\}?$/i
const integerText = /^[-+]?\d+$/
const numericText = /^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/
const INT4 = 2 ** 31
const INT8 = 2n ** 63n

const refJsonProblem = (value: unknown, depth = 0): string | undefined => {
  if (depth > refMaxDepth) return `nested deeper than ${refMaxDepth} levels`
  if (typeof value === "string") return value.includes(NUL) ? "contains a NUL character (\\u0000)" : undefined
  if (typeof value === "number") return Number.isFinite(value) ? undefined : `is ${value}`
  if (Array.isArray(value)) {
    for (const item of value) {
      const problem = refJsonProblem(item, depth + 1)
      if (problem) return problem
    }
  } else if (refIsObject(value)) {
    for (const [key, item] of Object.entries(value)) {
      if (key.includes(NUL)) return "has a key with a NUL character (\\u0000)"
      const problem = refJsonProblem(item, depth + 1)
      if (problem) return problem
    }
  }
  return undefined
}

const refDescribe = (value: unknown): string =>
  value === null ? "null" : Array.isArray(value) ? "an array" : typeof value === "string" ? "a string" : `a ${typeof value}`

const refPad = (n: number, width = 2) => String(n).padStart(width, "0")

/**
 * A `timestamp` column stores a value with an offset as its UTC wall clock (the fraction as sent, then
 * `Z`); UTC and offset-less values, impossible days (02-30, left for Postgres to refuse) and instants
 * outside years 0–9999 stay as they are.
 */
const refUtcWallClock = (text: string): string => {
  const m = /^(\d{4})-(\d{2})-(\d{2})[T ]\d{2}:\d{2}(?::\d{2}(\.\d+)?)?[+-]\d{2}(?::?\d{2})?$/.exec(text)
  if (m === null) return text
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])]
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0
  if (day > [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]!) return text
  const t = new Date(Date.parse(text))
  if (t.getUTCFullYear() < 0 || t.getUTCFullYear() > 9999) return text
  return `${refPad(t.getUTCFullYear(), 4)}-${refPad(t.getUTCMonth() + 1)}-${refPad(t.getUTCDate())}T` +
    `${refPad(t.getUTCHours())}:${refPad(t.getUTCMinutes())}:${refPad(t.getUTCSeconds())}${m[4] ?? ""}Z`
}

const refConvert = (type: ColumnType, value: unknown): Either.Either<unknown, string> => {
  if (value === null || value === undefined) return Either.right(null)
  const wrong = (expected: string) => Either.left(`expected ${expected}, got ${refDescribe(value)}`)
  switch (type) {
    case "text":
      if (typeof value === "string") {
        return value.includes(NUL) ? Either.left("contains a NUL character (\\u0000), which Postgres text cannot store") : Either.right(value)
      }
      return typeof value === "number" || typeof value === "boolean" ? Either.right(String(value)) : wrong("text")
    case "integer": {
      const n = typeof value === "string" && integerText.test(value) ? Number(value) : value
      if (typeof n !== "number" || !Number.isInteger(n)) return wrong("an integer")
      return n >= -INT4 && n < INT4 ? Either.right(n) : Either.left(`${typeof value === "string" ? value : n} is out of range for integer`)
    }
    case "bigint": {
      const text = typeof value === "number" && Number.isInteger(value) ? String(value) : value
      if (typeof text !== "string" || !integerText.test(text)) return wrong("an integer")
      const n = BigInt(text)
      return n >= -INT8 && n < INT8 ? Either.right(n.toString()) : Either.left(`${text} is out of range for bigint`)
    }
    case "numeric":
    case "double precision":
    case "real":
      if (typeof value === "number") return Number.isFinite(value) ? Either.right(value) : wrong("a finite number")
      return typeof value === "string" && numericText.test(value) ? Either.right(value) : wrong("a number")
    case "boolean":
      return typeof value === "boolean" ? Either.right(value) : wrong("true or false")
    case "timestamptz":
      return typeof value === "string" && isoTimestamp.test(value) && !Number.isNaN(Date.parse(value))
        ? Either.right(value)
        : wrong("an ISO 8601 timestamp")
    case "timestamp":
      return Either.map(refConvert("timestamptz", value), (text) => refUtcWallClock(text as string))
    case "date":
      return typeof value === "string" && isoDate.test(value) && !Number.isNaN(Date.parse(value))
        ? Either.right(value)
        : wrong("a date (YYYY-MM-DD)")
    case "uuid":
      if (typeof value !== "string" || !uuid.test(value) || value.startsWith("{") !== value.endsWith("}")) return wrong("a UUID")
      return Either.right(value.replace(/[{}-]/g, "").toLowerCase().replace(/^(.{8})(.{4})(.{4})(.{4})/, "$1-$2-$3-$4-"))
    case "jsonb": {
      const problem = refJsonProblem(value)
      return problem === undefined ? Either.right(value) : Either.left(problem)
    }
  }
}

const refColumnSource = (target: TargetSpec, name: string): string =>
  target.columns.find((c) => c.name === name)?.from ?? name

const refRowFrom = (target: TargetSpec, record: unknown): Either.Either<Row, string> => {
  if (!refIsObject(record)) return Either.left(`record is ${refDescribe(record)}, not an object`)
  const values: Record<string, unknown> = {}
  for (const column of target.columns) {
    const converted = refConvert(column.type, refValueAt(record, column.from))
    if (Either.isLeft(converted)) return Either.left(`${column.from || "record"}: ${converted.left}`)
    Object.defineProperty(values, column.name, { value: converted.right, enumerable: true, writable: true, configurable: true })
  }
  const keyValues: Array<unknown> = []
  for (const name of target.primaryKey) {
    if (values[name] === null) return Either.left(`missing primary key field ${refColumnSource(target, name)}`)
    const type = target.columns.findLast((c) => c.name === name)?.type
    keyValues.push(type === undefined || values[name] === undefined ? values[name] : RowDecoder.keyPart(type, values[name]))
  }
  let cursor: string | undefined
  if (target.cursorColumn !== undefined) {
    const value = values[target.cursorColumn]
    if (value === null) return Either.left(`missing cursor field ${refColumnSource(target, target.cursorColumn)}`)
    cursor = String(value)
  }
  return Either.right({ key: JSON.stringify(keyValues), cursor, values })
}

// ---- helpers ----

/** An Either as plain data, so that results compare structurally (and -0 differs from 0). */
const plain = (e: Either.Either<unknown, string>) =>
  Either.isLeft(e) ? { left: e.left } : { right: e.right }

const accepts = (type: ColumnType, value: unknown) => plain(RowDecoder.convert(type, value))

const nested = (depth: number): unknown => {
  let value: unknown = 1
  for (let i = 0; i < depth; i++) value = [value]
  return value
}

// ---- the table ----

/** [type, value, expected]: `{ right }` is the stored value, `{ left }` the exact reason. */
const cases: ReadonlyArray<readonly [ColumnType, unknown, { right: unknown } | { left: string }]> = [
  // null and missing stay null for every type
  ["text", null, { right: null }],
  ["bigint", undefined, { right: null }],
  ["jsonb", null, { right: null }],
  // text
  ["text", "hello", { right: "hello" }],
  ["text", "", { right: "" }],
  ["text", "a\u0000b", { left: "contains a NUL character (\\u0000), which Postgres text cannot store" }],
  ["text", 42, { right: "42" }],
  ["text", 1.5, { right: "1.5" }],
  ["text", true, { right: "true" }],
  ["text", { a: 1 }, { left: "expected text, got a object" }],
  ["text", [1], { left: "expected text, got an array" }],
  // integer
  ["integer", 0, { right: 0 }],
  ["integer", "42", { right: 42 }],
  ["integer", "-7", { right: -7 }],
  ["integer", 2147483647, { right: 2147483647 }],
  ["integer", -2147483648, { right: -2147483648 }],
  ["integer", 2147483648, { left: "2147483648 is out of range for integer" }],
  ["integer", -2147483649, { left: "-2147483649 is out of range for integer" }],
  ["integer", "2147483648", { left: "2147483648 is out of range for integer" }],
  ["integer", "99999999999999999999", { left: "99999999999999999999 is out of range for integer" }],
  ["integer", 1.5, { left: "expected an integer, got a number" }],
  ["integer", "1.5", { left: "expected an integer, got a string" }],
  ["integer", "1e5", { left: "expected an integer, got a string" }],
  ["integer", " 1", { left: "expected an integer, got a string" }],
  ["integer", "", { left: "expected an integer, got a string" }],
  ["integer", true, { left: "expected an integer, got a boolean" }],
  ["integer", 1e5, { right: 100000 }],
  // bigint: kept as text, range-checked exactly
  ["bigint", 42, { right: "42" }],
  ["bigint", -0, { right: "0" }],
  ["bigint", Number.MAX_SAFE_INTEGER, { right: "9007199254740991" }],
  ["bigint", Number.MIN_SAFE_INTEGER, { right: "-9007199254740991" }],
  ["bigint", 2 ** 53, { right: "9007199254740992" }],
  ["bigint", 1e18, { right: "1000000000000000000" }],
  ["bigint", 1e19, { left: "10000000000000000000 is out of range for bigint" }],
  ["bigint", 1.5, { left: "expected an integer, got a number" }],
  ["bigint", "9223372036854775807", { right: "9223372036854775807" }],
  ["bigint", "-9223372036854775808", { right: "-9223372036854775808" }],
  ["bigint", "9223372036854775808", { left: "9223372036854775808 is out of range for bigint" }],
  ["bigint", "-9223372036854775809", { left: "-9223372036854775809 is out of range for bigint" }],
  ["bigint", "00000000000000000000000001", { right: "1" }],
  ["bigint", "-0000000000000000000009223372036854775808", { right: "-9223372036854775808" }],
  ["bigint", "-0", { right: "0" }],
  ["bigint", "007", { right: "7" }],
  ["bigint", "999999999999999999", { right: "999999999999999999" }],
  ["bigint", "-999999999999999999", { right: "-999999999999999999" }],
  ["bigint", "9999999999999999999", { left: "9999999999999999999 is out of range for bigint" }],
  ["bigint", "1e5", { left: "expected an integer, got a string" }],
  ["bigint", "-", { left: "expected an integer, got a string" }],
  ["bigint", "+1", { right: "1" }],
  ["bigint", false, { left: "expected an integer, got a boolean" }],
  // numeric, double precision, real
  ["numeric", 1.25, { right: 1.25 }],
  ["numeric", "1.25", { right: "1.25" }],
  ["numeric", "1e5", { right: "1e5" }],
  ["numeric", "-.5E-3", { right: "-.5E-3" }],
  ["numeric", "5.", { right: "5." }],
  ["numeric", "NaN", { left: "expected a number, got a string" }],
  ["numeric", "Infinity", { left: "expected a number, got a string" }],
  ["numeric", NaN, { left: "expected a finite number, got a number" }],
  ["double precision", Infinity, { left: "expected a finite number, got a number" }],
  ["real", "1,5", { left: "expected a number, got a string" }],
  ["real", "", { left: "expected a number, got a string" }],
  ["double precision", true, { left: "expected a number, got a boolean" }],
  // boolean
  ["boolean", true, { right: true }],
  ["boolean", false, { right: false }],
  ["boolean", "true", { left: "expected true or false, got a string" }],
  ["boolean", 1, { left: "expected true or false, got a number" }],
  // timestamps
  ["timestamptz", "2024-01-01T00:00:00.000Z", { right: "2024-01-01T00:00:00.000Z" }],
  ["timestamptz", "2024-01-01T00:00:00Z", { right: "2024-01-01T00:00:00Z" }],
  ["timestamptz", "2024-01-01T00:00:00.123456789Z", { right: "2024-01-01T00:00:00.123456789Z" }],
  ["timestamptz", "2024-01-01T00:00:00.1234567890Z", { left: "expected an ISO 8601 timestamp, got a string" }],
  ["timestamptz", "2024-01-01T00:00:00.Z", { left: "expected an ISO 8601 timestamp, got a string" }],
  ["timestamptz", "2024-01-01T10:00:00+01:00", { right: "2024-01-01T10:00:00+01:00" }],
  ["timestamptz", "2024-01-01T10:00+0100", { right: "2024-01-01T10:00+0100" }],
  ["timestamptz", "2024-01-01 10:00", { right: "2024-01-01 10:00" }],
  ["timestamptz", "2024-01-01t10:00z", { right: "2024-01-01t10:00z" }],
  ["timestamp", "2024-01-01T10:00:00", { right: "2024-01-01T10:00:00" }],
  ["timestamp", "2024-01-01", { right: "2024-01-01" }],
  ["timestamptz", "2024-01-01T24:00:00Z", { right: "2024-01-01T24:00:00Z" }],
  ["timestamptz", "2024-01-01T24:00:01Z", { left: "expected an ISO 8601 timestamp, got a string" }],
  ["timestamptz", "2024-01-01T23:60:00Z", { left: "expected an ISO 8601 timestamp, got a string" }],
  ["timestamptz", "2024-01-01T23:59:60Z", { left: "expected an ISO 8601 timestamp, got a string" }],
  ["timestamptz", "2020-13-01T00:00:00Z", { left: "expected an ISO 8601 timestamp, got a string" }],
  ["timestamptz", "2020-00-01T00:00:00Z", { left: "expected an ISO 8601 timestamp, got a string" }],
  ["timestamptz", "2020-01-32T00:00:00Z", { left: "expected an ISO 8601 timestamp, got a string" }],
  ["timestamptz", "2020-01-00T00:00:00Z", { left: "expected an ISO 8601 timestamp, got a string" }],
  ["timestamptz", "2020-02-30T00:00:00Z", { right: "2020-02-30T00:00:00Z" }], // as the reference: Date.parse rolls it over
  ["timestamptz", "2020-13-01", { left: "expected an ISO 8601 timestamp, got a string" }],
  ["timestamptz", "2024-01-01T10:00:00+25:00", { left: "expected an ISO 8601 timestamp, got a string" }],
  ["timestamptz", "2024-01-01T10:00+01", { left: "expected an ISO 8601 timestamp, got a string" }],
  ["timestamptz", "Mon, 01 Jan 2024 00:00:00 GMT", { left: "expected an ISO 8601 timestamp, got a string" }],
  ["timestamptz", "2024-1-1", { left: "expected an ISO 8601 timestamp, got a string" }],
  ["timestamptz", 1704067200000, { left: "expected an ISO 8601 timestamp, got a number" }],
  // dates
  ["date", "2024-02-29", { right: "2024-02-29" }],
  ["date", "2020-13-01", { left: "expected a date (YYYY-MM-DD), got a string" }],
  ["date", "2020-12-32", { left: "expected a date (YYYY-MM-DD), got a string" }],
  ["date", "2024-01-01T00:00:00Z", { left: "expected a date (YYYY-MM-DD), got a string" }],
  ["date", 20240101, { left: "expected a date (YYYY-MM-DD), got a number" }],
  // uuids
  ["uuid", "123e4567-e89b-12d3-a456-426614174000", { right: "123e4567-e89b-12d3-a456-426614174000" }],
  ["uuid", "123E4567E89B12D3A456426614174000", { right: "123e4567-e89b-12d3-a456-426614174000" }],
  ["uuid", "{123e4567-e89b-12d3-a456-426614174000}", { right: "123e4567-e89b-12d3-a456-426614174000" }],
  ["uuid", "123e-4567-e89b-12d3-a456-4266-1417-4000", { right: "123e4567-e89b-12d3-a456-426614174000" }],
  ["uuid", "{123e4567-e89b-12d3-a456-426614174000", { left: "expected a UUID, got a string" }],
  ["uuid", "123e4567-e89b-12d3-a456-42661417400", { left: "expected a UUID, got a string" }],
  ["uuid", "123e4567-e89b-12d3-a456-42661417400g", { left: "expected a UUID, got a string" }],
  ["uuid", 5, { left: "expected a UUID, got a number" }],
  // jsonb
  ["jsonb", { a: [1, "x", { b: null }] }, { right: { a: [1, "x", { b: null }] } }],
  ["jsonb", "plain", { right: "plain" }],
  ["jsonb", 3, { right: 3 }],
  ["jsonb", { a: "x\u0000" }, { left: "contains a NUL character (\\u0000)" }],
  ["jsonb", { "k\u0000": 1 }, { left: "has a key with a NUL character (\\u0000)" }],
  ["jsonb", [[{ deep: "\u0000" }]], { left: "contains a NUL character (\\u0000)" }],
  ["jsonb", { a: NaN }, { left: "is NaN" }],
  ["jsonb", nested(128), { right: nested(128) }],
  ["jsonb", nested(129), { left: "nested deeper than 128 levels" }]
]

describe("RowDecoder.convert", () => {
  it.each(cases.map(([type, value, expected]) => ({ type, value, expected, name: `${type} ${JSON.stringify(value)}` })))(
    "$name",
    ({ expected, type, value }) => {
      expect(accepts(type, value)).toEqual(expected)
      expect(plain(refConvert(type, value))).toEqual(expected) // the table describes the reference too
    }
  )
})

describe("long numbers: Json.parse keeps them exact, each column type takes them as Postgres would", () => {
  const long = new LosslessNumber("1234567890123456789")
  const cases: ReadonlyArray<readonly [ColumnType, unknown, { right: unknown } | { left: string }]> = [
    ["text", long, { right: "1234567890123456789" }],
    ["text", new LosslessNumber("1e400"), { right: "1e400" }],
    ["bigint", long, { right: "1234567890123456789" }],
    ["bigint", new LosslessNumber("-9223372036854775808"), { right: "-9223372036854775808" }],
    ["bigint", new LosslessNumber("9223372036854775808"), { left: "9223372036854775808 is out of range for bigint" }],
    ["bigint", new LosslessNumber("1.2345678901234567"), { left: "expected an integer, got a number" }],
    ["bigint", new LosslessNumber("1e400"), { left: "1e400 is out of range for bigint" }],
    ["numeric", long, { right: "1234567890123456789" }],
    ["numeric", new LosslessNumber("12345678.123456789"), { right: "12345678.123456789" }],
    ["numeric", new LosslessNumber("1e400"), { right: "1e400" }],
    ["integer", long, { left: "1234567890123456789 is out of range for integer" }],
    ["integer", new LosslessNumber("1.2345678901234567"), { left: "expected an integer, got a number" }],
    ["integer", new LosslessNumber("-1e400"), { left: "-1e400 is out of range for integer" }],
    ["double precision", long, { right: 1234567890123456789 }],
    ["double precision", new LosslessNumber("1e400"), { left: "1e400 is out of range for double precision" }],
    ["double precision", new LosslessNumber("1e-400"), { left: "1e-400 is out of range for double precision" }],
    ["real", new LosslessNumber("1e300"), { left: "1e300 is out of range for real" }],
    ["boolean", long, { left: "expected true or false, got a number" }],
    ["jsonb", { id: long }, { right: { id: long } }]
  ]
  it.each(cases.map(([type, value, expected]) => ({ type, value, expected, name: `${type} ${String(value)}` })))(
    "$name",
    ({ expected, type, value }) => expect(accepts(type, value)).toEqual(expected)
  )
})

describe("row keys compare as Postgres compares the typed values", () => {
  const keyOf = (type: ColumnType, value: unknown) => {
    const t = target({ table: "t", primaryKey: ["k"], columns: [column("k", type)] })
    return Either.getOrThrow(RowDecoder.rowFrom(t, { k: value })).key
  }
  const same: ReadonlyArray<readonly [ColumnType, ReadonlyArray<unknown>]> = [
    ["bigint", [1, "1", "01", "+1", "0001"]],
    ["bigint", [new LosslessNumber("1234567890123456789"), "1234567890123456789", "+01234567890123456789"]],
    ["integer", [1, "1", "01", "+1"]],
    ["numeric", [1, "1", "1.0", "1.00", "01", "1e0", "0.1e1", "+1"]],
    ["numeric", [new LosslessNumber("1234567890123456789.0"), "1234567890123456789"]],
    ["double precision", [1, "1", "1.0", "1e0"]],
    ["double precision", [0, "-0", -0]],
    ["uuid", ["123e4567-e89b-12d3-a456-426614174000", "123E4567-E89B-12D3-A456-426614174000", "{123e4567e89b12d3a456426614174000}"]],
    ["timestamptz", ["2024-01-01T00:00:00Z", "2024-01-01T02:00:00+02:00", "2024-01-01 00:00:00.0000001+00", "2023-12-31T19:00:00-0500", "2024-01-01T00:00:00"]],
    // a timestamp column stores an offset's value as its UTC wall clock
    ["timestamp", ["2024-01-01T00:00:00", "2024-01-01 00:00:00Z", "2024-01-01T05:00:00+05:00", "2024-01-01T00:00"]]
  ]
  it.each(same.map(([type, values]) => ({ type, values, name: `${type}: ${values.map(String).join(" = ")}` })))(
    "$name",
    ({ type, values }) => expect(new Set(values.map((v) => keyOf(type, v))).size).toBe(1)
  )
  const different: ReadonlyArray<readonly [ColumnType, ReadonlyArray<unknown>]> = [
    ["text", ["1", "01", "A", "a"]],
    ["bigint", [new LosslessNumber("1234567890123456789"), new LosslessNumber("1234567890123456788"), "1234567890123456787"]],
    ["numeric", ["1", "1.0000000000000000001", "10", "0.1"]],
    ["timestamptz", ["2024-01-01T00:00:00Z", "2024-01-01T00:00:00.000001Z", "2024-01-01T00:00:00+00:01"]],
    ["timestamp", ["2024-01-01T00:00:00", "2024-01-01T00:00:00+05:00"]],
    ["date", ["2024-01-01", "2024-01-02"]]
  ]
  it.each(different.map(([type, values]) => ({ type, values, name: `${type}: ${values.map(String).join(" ≠ ")}` })))(
    "$name",
    ({ type, values }) => expect(new Set(values.map((v) => keyOf(type, v))).size).toBe(values.length)
  )
  it("canonicalDecimal", () => {
    expect(RowDecoder.canonicalDecimal("0.000")).toBe("0")
    expect(RowDecoder.canonicalDecimal("-12.3400e2")).toBe("-1234e0")
    expect(RowDecoder.canonicalDecimal("1200")).toBe("12e2")
  })
})

// ---- rows ----

const orders = target({
  table: "orders",
  columns: [
    column("id", "bigint"),
    column("name", "text"),
    column("amount", "numeric"),
    { name: "customer_email", type: "text", from: "customer.email" },
    { name: "first_tag", type: "text", from: "tags.0" },
    column("updated_at", "timestamptz"),
    { name: "record", type: "jsonb", from: "" }
  ],
  cursorColumn: "updated_at"
})

const record = {
  id: 7,
  name: "seven",
  amount: 12.5,
  customer: { email: "x@example.com" },
  tags: ["a", "b"],
  updated_at: "2024-01-01T00:00:07.000Z"
}

describe("RowDecoder rows", () => {
  const decode = RowDecoder.fromColumns(orders, undefined)

  it("decodes a record into key, cursor and values", () => {
    expect(plain(decode(record))).toEqual({
      right: {
        key: "[\"7\"]",
        cursor: "2024-01-01T00:00:07.000Z",
        values: {
          id: "7",
          name: "seven",
          amount: 12.5,
          customer_email: "x@example.com",
          first_tag: "a",
          updated_at: "2024-01-01T00:00:07.000Z",
          record
        }
      }
    })
    expect(plain(RowDecoder.rowFrom(orders, record))).toEqual(plain(decode(record)))
  })

  it("refuses a missing primary key, a missing cursor and a record that is not an object", () => {
    const { id: _id, ...noId } = record
    expect(plain(decode(noId))).toEqual({ left: "missing primary key field id" })
    expect(plain(decode({ ...record, id: null }))).toEqual({ left: "missing primary key field id" })
    const { updated_at: _u, ...noCursor } = record
    expect(plain(decode(noCursor))).toEqual({ left: "missing cursor field updated_at" })
    expect(plain(decode([record]))).toEqual({ left: "record is an array, not an object" })
    expect(plain(decode(null))).toEqual({ left: "record is null, not an object" })
    expect(plain(decode("x"))).toEqual({ left: "record is a string, not an object" })
  })

  it("names the path of a bad value, and `record` for the whole record", () => {
    expect(plain(decode({ ...record, customer: { email: "a\u0000" } }))).toEqual({
      left: "customer.email: contains a NUL character (\\u0000), which Postgres text cannot store"
    })
    expect(plain(decode({ ...record, extra: "\u0000" }))).toEqual({ left: "record: contains a NUL character (\\u0000)" })
    expect(plain(decode({ ...record, id: "9223372036854775808" }))).toEqual({
      left: "id: 9223372036854775808 is out of range for bigint"
    })
  })

  it("a missing cursor is reported by the column's source path", () => {
    const renamed = target({
      ...orders,
      columns: orders.columns.map((c) => c.name === "updated_at" ? { ...c, from: "meta.updated" } : c)
    })
    expect(plain(RowDecoder.fromColumns(renamed, undefined)(record))).toEqual({ left: "missing cursor field meta.updated" })
    expect(plain(RowDecoder.rowFrom(renamed, record))).toEqual({ left: "missing cursor field meta.updated" })
  })

  it("a composite key keeps the key's order; a key that is not a column encodes as null", () => {
    const composite = target({ ...orders, primaryKey: ["name", "id"], cursorColumn: undefined })
    expect(Either.getOrThrow(RowDecoder.rowFrom(composite, record)).key).toBe("[\"seven\",\"7\"]")
    expect(Either.getOrThrow(RowDecoder.rowFrom(composite, record)).cursor).toBeUndefined()
    const unknownKey = target({ ...orders, primaryKey: ["nope"] })
    expect(Either.getOrThrow(RowDecoder.fromColumns(unknownKey, undefined)(record)).key).toBe("[null]")
  })

  it("reads own properties only", () => {
    const t = target({
      table: "t",
      primaryKey: ["k"],
      columns: [{ name: "k", type: "text", from: "constructor" }, { name: "len", type: "integer", from: "a.length" }]
    })
    expect(plain(RowDecoder.rowFrom(t, { a: [1, 2] }))).toEqual({ left: "missing primary key field constructor" })
    expect(plain(RowDecoder.fromColumns(t, undefined)({ constructor: "c", a: [1, 2] }))).toEqual({
      right: { key: "[\"c\"]", cursor: undefined, values: { k: "c", len: 2 } }
    })
  })
})

describe("JsonPath.valueAt", () => {
  it("follows dotted paths, own properties only", () => {
    const doc = { a: { b: [10, { c: "x" }] }, "": { "": 5 } }
    expect(valueAt(doc, "")).toBe(doc)
    expect(valueAt(doc, "a.b.0")).toBe(10)
    expect(valueAt(doc, "a.b.1.c")).toBe("x")
    expect(valueAt(doc, "a.b.2")).toBeUndefined()
    expect(valueAt(doc, "a.b.1.c.length")).toBeUndefined()
    expect(valueAt(doc, "a.toString")).toBeUndefined()
    expect(valueAt(doc, "__proto__")).toBeUndefined()
    expect(valueAt(doc, ".")).toBe(5)
    expect(valueAt(doc, "a.b.length")).toBe(2)
    expect(valueAt(null, "a")).toBeUndefined()
    expect(valueAt("str", "length")).toBeUndefined()
  })
})

// ---- properties: the decoder against the reference ----

const types: ReadonlyArray<ColumnType> = columnTypes

const digits = (min: number, max: number) =>
  fc.array(fc.constantFrom("0", "1", "2", "3", "4", "5", "6", "7", "8", "9"), { minLength: min, maxLength: max }).map((d) =>
    d.join("")
  )
const twoDigits = (max: number) =>
  fc.oneof(fc.integer({ min: 0, max }).map((n) => String(n).padStart(2, "0")), digits(2, 2))

/** Timestamps in and near the canonical `toISOString` shape, valid or nearly. */
const timestampArb = fc.tuple(
  fc.oneof(digits(4, 4), fc.constantFrom("0000", "1970", "2020", "9999")),
  twoDigits(13),
  twoDigits(32),
  fc.constantFrom("T", "t", " ", "X"),
  twoDigits(25),
  twoDigits(61),
  twoDigits(61),
  fc.option(digits(0, 11), { nil: undefined }),
  fc.constantFrom("Z", "z", "", "+01:00", "-0130", "+01", "ZZ")
).map(([y, mo, d, t, h, mi, s, frac, zone]) => `${y}-${mo}-${d}${t}${h}:${mi}:${s}${frac === undefined ? "" : `.${frac}`}${zone}`)

const integerStringArb = fc.tuple(fc.constantFrom("", "-", "+", " "), digits(0, 22), fc.constantFrom("", ".0", "e5", " "))
  .map(([sign, d, tail]) => `${sign}${d}${tail}`)

const interestingValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.string(),
  fc.constantFrom("\u0000", "a\u0000", "NaN", "Infinity", "1e5", "-.5", "5.", "true", "", "2020-13-01", "2024-02-29"),
  fc.uuid(),
  fc.uuid().map((u) => u.replace(/-/g, "").toUpperCase()),
  timestampArb,
  timestampArb.map((t) => t.slice(0, 10)),
  integerStringArb,
  fc.integer(),
  fc.constantFrom(2 ** 31, -(2 ** 31), 2 ** 31 - 1, -(2 ** 31) - 1, 2 ** 53, 2 ** 53 - 1, -(2 ** 53), 1e21, -0, 0.5),
  fc.double(),
  fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n }).map(String),
  fc.boolean(),
  fc.constant(null),
  fc.dictionary(fc.constantFrom("a", "b\u0000", "c"), fc.oneof(fc.string(), fc.integer()), { maxKeys: 3 }),
  fc.integer({ min: 120, max: 135 }).map(nested)
)

const keyArb = fc.constantFrom("a", "b", "c", "0", "", "constructor", "length")
const pathArb = fc.array(keyArb, { minLength: 0, maxLength: 3 }).map((keys) => keys.join("."))

/** Records whose values sit at a few short keys, nested a little. */
const recordArb: fc.Arbitrary<unknown> = fc.letrec<{ node: unknown; record: unknown }>((tie) => ({
  node: fc.oneof({ depthSize: "small", withCrossShrink: true }, interestingValue, tie("record"), fc.array(tie("node"), { maxLength: 3 })),
  record: fc.dictionary(keyArb, tie("node"), { maxKeys: 5 })
})).record

const columnArb: fc.Arbitrary<Column> = fc.record({
  name: fc.constantFrom("a", "b", "c", "d", "__proto__"),
  type: fc.constantFrom(...types),
  from: pathArb
})

const targetArb: fc.Arbitrary<TargetSpec> = fc.array(columnArb, { minLength: 1, maxLength: 6 }).chain((columns) => {
  // a key or cursor may name no column: nothing, or a member every object inherits
  const names = [...columns.map((c) => c.name), "missing", "constructor"]
  return fc.record({
    schema: fc.constant("public"),
    table: fc.constant("t"),
    primaryKey: fc.uniqueArray(fc.constantFrom(...names), { maxLength: 2 }),
    columns: fc.constant(columns),
    cursorColumn: fc.option(fc.constantFrom(...names), { nil: undefined })
  })
})

describe("RowDecoder against the reference", () => {
  it.prop("every column type converts every value as the reference does", [fc.constantFrom(...types), interestingValue], ([type, value]) => {
    expect(plain(RowDecoder.convert(type, value))).toEqual(plain(refConvert(type, value)))
  }, { fastCheck: { numRuns: 3000 } })

  it.prop("timestamps near the ISO shape are accepted and refused as the reference does", [timestampArb], ([text]) => {
    expect(plain(RowDecoder.convert("timestamptz", text))).toEqual(plain(refConvert("timestamptz", text)))
    expect(plain(RowDecoder.convert("date", text.slice(0, 10)))).toEqual(plain(refConvert("date", text.slice(0, 10))))
  }, { fastCheck: { numRuns: 5000 } })

  it.prop("integer-like strings are accepted and refused as the reference does", [integerStringArb], ([text]) => {
    for (const type of ["integer", "bigint", "numeric", "text"] as const) {
      expect(plain(RowDecoder.convert(type, text))).toEqual(plain(refConvert(type, text)))
    }
  }, { fastCheck: { numRuns: 3000 } })

  it.prop("paths resolve as the reference does", [recordArb, pathArb], ([doc, path]) => {
    expect(valueAt(doc, path)).toBe(refValueAt(doc, path))
  }, { fastCheck: { numRuns: 2000 } })

  it.prop("a compiled decoder and rowFrom give the reference's row or reason", [targetArb, fc.array(recordArb, { minLength: 1, maxLength: 4 })], ([t, records]) => {
    const decode = RowDecoder.fromColumns(t, undefined)
    for (const raw of records) {
      const expected = plain(refRowFrom(t, raw))
      expect(plain(decode(raw))).toEqual(expected)
      expect(plain(RowDecoder.rowFrom(t, raw))).toEqual(expected)
    }
  }, { fastCheck: { numRuns: 1500 } })

  it("every field of a canonical timestamp in range is accepted, as the reference accepts it", () => {
    // exhaustive over month × day × a few years, and over every time of one day (the fast path's whole domain)
    for (const year of ["0000", "1970", "2019", "2020", "9999"]) {
      for (let m = 0; m <= 13; m++) {
        for (let d = 0; d <= 32; d++) {
          const text = `${year}-${String(m).padStart(2, "0")}-${String(d).padStart(2, "0")}T12:34:56.789Z`
          expect(plain(RowDecoder.convert("timestamptz", text))).toEqual(plain(refConvert("timestamptz", text)))
        }
      }
    }
    for (let h = 0; h <= 25; h++) {
      for (let mi = 0; mi <= 60; mi++) {
        for (let s = 0; s <= 60; s += 1) {
          const text = `2024-02-29T${String(h).padStart(2, "0")}:${String(mi).padStart(2, "0")}:${String(s).padStart(2, "0")}Z`
          expect(RowDecoder.convert("timestamptz", text)._tag).toBe(refConvert("timestamptz", text)._tag)
        }
      }
    }
  })
})

// ---- the decoder written out per target (Specialized.ts) against the generic loop ----

/** keys that stress a generated source: quotes, backslashes, line separators, a lone surrogate, members of Object.prototype */
const oddKeyArb = fc.oneof(
  keyArb,
  fc.constantFrom("__proto__", "toString", "hasOwnProperty", "\"", "\\", "'", "`${x}`", "\u2028", "\u2029", "\ud800", "a\"+b", "*/", "\n", "0", "-1", "1e3"),
  fc.string({ maxLength: 4 })
)
const oddPathArb = fc.array(oddKeyArb.filter((k) => !k.includes(".")), { minLength: 0, maxLength: 3 }).map((keys) => keys.join("."))
const oddRecordArb: fc.Arbitrary<unknown> = fc.letrec<{ node: unknown; record: unknown }>((tie) => ({
  node: fc.oneof({ depthSize: "small", withCrossShrink: true }, interestingValue, tie("record"), fc.array(tie("node"), { maxLength: 3 })),
  record: fc.dictionary(oddKeyArb, tie("node"), { maxKeys: 6 })
})).record
/** any column: a path, a parent's value or the extra fields; an epoch format on some */
const oddColumnArb: fc.Arbitrary<Column> = fc.record(
  {
    name: oddKeyArb,
    type: fc.constantFrom(...types),
    from: fc.oneof(oddPathArb, fc.constant("{parent.id}")),
    format: fc.constantFrom("unix" as const, "unix_ms" as const, "iso" as const)
  },
  { requiredKeys: ["name", "type", "from"] }
)
const oddTargetArb: fc.Arbitrary<TargetSpec> = fc.array(oddColumnArb, { minLength: 1, maxLength: 6 }).chain((columns) => {
  const names = [...columns.map((c) => c.name), "missing", "constructor", "__proto__"]
  return fc.record({
    schema: fc.constant("public"),
    table: fc.constant("t"),
    primaryKey: fc.uniqueArray(fc.constantFrom(...names), { maxLength: 2 }),
    columns: fc.constant(columns),
    cursorColumn: fc.option(fc.constantFrom(...names), { nil: undefined }),
    extra: fc.option(fc.constantFrom(...names), { nil: undefined })
  }, { requiredKeys: ["schema", "table", "primaryKey", "columns", "cursorColumn"] })
})

/** a row's values exactly: own keys in order, each property's descriptor, the prototype; or what it threw */
const exactly = (decode: (raw: unknown) => Either.Either<Row, string>, raw: unknown) => {
  let e: Either.Either<Row, string>
  try {
    e = decode(raw)
  } catch (error) {
    // (a cursor column holding an object without a prototype cannot be a string: both throw alike)
    return { threw: String(error) }
  }
  return Either.isLeft(e) ? { left: e.left } : {
    key: e.right.key,
    cursor: e.right.cursor,
    prototype: Object.getPrototypeOf(e.right.values) === Object.prototype,
    keys: Reflect.ownKeys(e.right.values),
    // as pairs: a descriptors object with an own `constructor` confuses toStrictEqual's type check
    descriptors: Object.entries(Object.getOwnPropertyDescriptors(e.right.values))
  }
}

describe("RowDecoder written out per target", () => {
  it.prop("gives the generic loop's row or reason, exactly, whatever the names and paths", [oddTargetArb, fc.array(oddRecordArb, { minLength: 1, maxLength: 4 })], ([t, records]) => {
    const written = RowDecoder.fromColumns(t, undefined)
    // the written-out function, not the loop (a generated source that failed would fall back silently)
    expect(written.name).toBe("decodeRow")
    const generic = RowDecoder.genericDecoder(t)
    for (const raw of records) {
      expect(exactly(written, raw)).toStrictEqual(exactly(generic, raw))
    }
  }, { fastCheck: { numRuns: 2000 } })

  it("reads a path's own properties only, never what every object inherits", () => {
    const t: TargetSpec = {
      schema: "public",
      table: "t",
      primaryKey: ["id"],
      columns: [
        column("id", "text"),
        { name: "c", type: "text", from: "constructor" },
        { name: "p", type: "jsonb", from: "__proto__" },
        { name: "s", type: "text", from: "a.toString" }
      ],
      cursorColumn: undefined
    }
    const decode = RowDecoder.fromColumns(t, undefined)
    expect(decode.name).toBe("decodeRow")
    expect(plain(decode({ id: "1", a: {} }))).toEqual({ right: { key: "[\"1\"]", cursor: undefined, values: { id: "1", c: null, p: null, s: null } } })
    expect(plain(decode(JSON.parse("{\"id\":\"2\",\"constructor\":\"x\",\"__proto__\":{\"y\":1}}")))).toEqual({
      right: { key: "[\"2\"]", cursor: undefined, values: { id: "2", c: "x", p: { y: 1 }, s: null } }
    })
  })
})
