/**
 * A JSON value checked against its column's Postgres type and converted to the form the sink sends,
 * here, so that one bad record is quarantined with a reason instead of failing the whole batch in
 * Postgres.
 */
import { Either } from "effect"
import { epochToIso, type TimeFormat } from "./Epoch.js"
import { LosslessNumber } from "./Json.js"
import type { ColumnType } from "./Target.js"

/** Postgres cannot store U+0000 in text or jsonb. */
const NUL = "\u0000"
/** Deeper documents are refused: Postgres' JSON parser has a stack limit, and no real API nests this deep. */
const maxDepth = 128

export const isObject = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

export const isoTimestamp = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?$/i
const isoDate = /^\d{4}-\d{2}-\d{2}$/
/** what Postgres' uuid input takes: 32 hex digits, a hyphen allowed after any group of 4, braces around */
const uuid = /^(?:\{[0-9a-f]{4}(?:-?[0-9a-f]{4}){7}\}|[0-9a-f]{4}(?:-?[0-9a-f]{4}){7})$/i
/** the form Postgres writes a uuid in */
const canonicalUuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const integerText = /^[-+]?\d+$/
export const numericText = /^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/
const INT4 = 2 ** 31
const INT8 = 2n ** 63n

/** Checks a JSON value for what jsonb refuses: NUL characters and runaway depth. */
const jsonProblem = (value: unknown, depth = 0): string | undefined => {
  if (depth > maxDepth) return `nested deeper than ${maxDepth} levels`
  if (typeof value === "string") return value.includes(NUL) ? "contains a NUL character (\\u0000)" : undefined
  if (typeof value === "number") return Number.isFinite(value) ? undefined : `is ${value}`
  if (value instanceof LosslessNumber) return undefined // jsonb keeps any JSON number exactly (as numeric)
  if (Array.isArray(value)) {
    for (const item of value) {
      const problem = jsonProblem(item, depth + 1)
      if (problem) return problem
    }
  } else if (isObject(value)) {
    // Object.keys, not Object.entries: same keys in the same order, without a pair per property
    const keys = Object.keys(value)
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!
      if (key.includes(NUL)) return "has a key with a NUL character (\\u0000)"
      const problem = jsonProblem(value[key], depth + 1)
      if (problem) return problem
    }
  }
  return undefined
}

export const describe = (value: unknown): string =>
  value === null ? "null" : Array.isArray(value) ? "an array" : typeof value === "string" ? "a string"
  : value instanceof LosslessNumber ? "a number" : `a ${typeof value}`

/**
 * Why a value does not fit its column. Converters return it instead of an `Either` so that a good value
 * (nearly every one) allocates nothing; the package does not export it, so no record can contain one.
 */
export class Problem {
  constructor(readonly message: string) {}
}

const wrong = (expected: string, value: unknown) => new Problem(`expected ${expected}, got ${describe(value)}`)

/** A column's check and conversion of a value that is neither null nor undefined. */
export type Converter = (value: unknown) => unknown

/**
 * `YYYY-MM-DD` with a month 01–12 and a day 01–31: every such string matches `isoDate` and Date.parse
 * accepts it (it rolls 02-30 over), so Date.parse is skipped. Anything else takes the slow path.
 */
const plainDate = /^\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])$/
/**
 * The shape `toISOString` writes, `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`, with every field in range (hour < 24):
 * accepted by `isoTimestamp` and by Date.parse, so Date.parse is skipped (checked exhaustively in the tests).
 */
const canonicalTimestamp = /^\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,9})?Z$/

/** Up to 18 digits is always inside bigint's range (±9.2e18): no BigInt needed. */
const surelyInt8 = (text: string) => text.length - (text.charCodeAt(0) === 45 ? 1 : 0) <= 18

/**
 * An integer's digits as Postgres writes them: no `+`, no leading zeros, `0` for `-0`. Postgres stores
 * `"01"` and `1` as the same bigint, so the row key must see one value (a second spelling in one
 * upsert would be "cannot affect row a second time").
 */
const canonicalInteger = (text: string): string => {
  const c = text.charCodeAt(0)
  if (c >= 49 && c <= 57) return text // starts with 1-9: already so
  const digits = text.slice(c === 45 || c === 43 ? 1 : 0).replace(/^0+/, "")
  return digits === "" ? "0" : c === 45 ? `-${digits}` : digits
}

const toText: Converter = (value) => {
  if (typeof value === "string") {
    return value.includes(NUL) ? new Problem("contains a NUL character (\\u0000), which Postgres text cannot store") : value
  }
  if (value instanceof LosslessNumber) return value.text
  return typeof value === "number" || typeof value === "boolean" ? String(value) : wrong("text", value)
}

/** a long number that is an integer, or too large for a double (`1e400`): out of any integer's range */
const hugeInteger = (n: LosslessNumber): boolean => integerText.test(n.text) || !Number.isFinite(Number(n.text))

const toInteger: Converter = (value) => {
  if (value instanceof LosslessNumber) {
    // more than 15 digits, or an exponent past a double's range: never an int4
    return hugeInteger(value) ? new Problem(`${value.text} is out of range for integer`) : wrong("an integer", value)
  }
  const n = typeof value === "number" ? value : typeof value === "string" && integerText.test(value) ? Number(value) : value
  if (typeof n !== "number" || !Number.isInteger(n)) return wrong("an integer", value)
  return n >= -INT4 && n < INT4 ? n : new Problem(`${typeof value === "string" ? value : n} is out of range for integer`)
}

const toBigint: Converter = (value) => {
  // a safe integer's decimal form is all digits and in range
  if (typeof value === "number" && Number.isSafeInteger(value)) return String(value)
  const text = typeof value === "string" ? value
    : value instanceof LosslessNumber ? value.text
    // an integral double past 2^53 came from a token of at most 15 digits (Json.parse keeps longer
    // ones exact): its shortest form, all digits below 1e21, is that token's value
    : typeof value === "number" && Number.isInteger(value) ? String(value)
    : undefined
  if (text === undefined || !integerText.test(text)) {
    return value instanceof LosslessNumber && hugeInteger(value)
      ? new Problem(`${value.text} is out of range for bigint`)
      : wrong("an integer", value)
  }
  const digits = canonicalInteger(text)
  if (surelyInt8(digits)) return digits
  const n = BigInt(digits)
  return n >= -INT8 && n < INT8 ? digits : new Problem(`${text} is out of range for bigint`)
}

/** numeric: a number, or the exact text of a long one or of a numeric string (Postgres keeps every digit) */
const toNumber: Converter = (value) => {
  if (typeof value === "number") return Number.isFinite(value) ? value : wrong("a finite number", value)
  if (value instanceof LosslessNumber) return value.text
  return typeof value === "string" && numericText.test(value) ? value : wrong("a number", value)
}

/** A long number for a float column: rounded (a float is lossy by nature), unless out of its range. */
const toFloat = (type: "double precision" | "real", round: (n: number) => number): Converter => (value) => {
  if (!(value instanceof LosslessNumber)) return toNumber(value)
  const n = round(Number(value.text))
  // Postgres refuses what overflows to Infinity or underflows to 0 from a non-zero text
  const underflow = n === 0 && /[1-9]/.test(value.text.split(/[eE]/)[0]!)
  return Number.isFinite(n) && !underflow ? n : new Problem(`${value.text} is out of range for ${type}`)
}

const toBoolean: Converter = (value) => typeof value === "boolean" ? value : wrong("true or false", value)

const toTimestamp: Converter = (value) =>
  typeof value === "string" &&
    (canonicalTimestamp.test(value) || (isoTimestamp.test(value) && !Number.isNaN(Date.parse(value))))
    ? value
    : wrong("an ISO 8601 timestamp", value)

/** a timestamp with an offset: its date, its seconds' fraction, and the offset */
const offsetForm = /^(\d{4})-(\d{2})-(\d{2})[T ]\d{2}:\d{2}(?::\d{2}(\.\d{1,9})?)?(?:[+-]\d{2}(?::?\d{2})?)$/

/**
 * A `timestamp` (without time zone) column: a value with an offset is stored as its UTC wall clock
 * (`2024-10-27T02:10:00+01:00` -> `2024-10-27T01:10:00Z`; Postgres ignores the `Z` there), so that the
 * stored values order as instants do, as the checkpoint orders them (the upsert's guard compares them).
 * Without an offset a value is UTC already (Ferry's rule), and `Z` needs nothing. The fraction is kept
 * digit for digit. A date that does not exist (02-30) is left as it is: Postgres refuses it.
 */
const toUtcTimestamp: Converter = (value) => {
  const checked = toTimestamp(value)
  if (checked instanceof Problem || typeof value !== "string" || value.endsWith("Z") || value.endsWith("z")) return checked
  const parts = offsetForm.exec(value)
  if (parts === null) return value
  const [, year, month, day, fraction] = parts
  // the month's length (years 2000–2399 have the same leap years as year % 400; Date.UTC reads 0–99 as 19xx)
  if (Number(day) > new Date(Date.UTC(2000 + (Number(year) % 400), Number(month), 0)).getUTCDate()) return value
  const utc = new Date(Date.parse(value)).toISOString()
  // a year that leaves 0000–9999 has no plain ISO form (`+010000-…`): Postgres decides on the original
  return utc.length === 24 ? `${utc.slice(0, 19)}${fraction ?? ""}Z` : value
}

const toDate: Converter = (value) =>
  typeof value === "string" &&
    (plainDate.test(value) || (isoDate.test(value) && !Number.isNaN(Date.parse(value))))
    ? value
    : wrong("a date (YYYY-MM-DD)", value)

/** in the form Postgres stores it (lower case, hyphenated): upper and lower case are one key */
const toUuid: Converter = (value) => {
  if (typeof value !== "string") return wrong("a UUID", value)
  if (canonicalUuid.test(value)) return value
  if (!uuid.test(value)) return wrong("a UUID", value)
  const hex = value.replace(/[{}-]/g, "").toLowerCase()
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

const toJsonb: Converter = (value) => {
  const problem = jsonProblem(value)
  return problem === undefined ? value : new Problem(problem)
}

const converters: Record<ColumnType, Converter> = {
  text: toText,
  integer: toInteger,
  bigint: toBigint,
  numeric: toNumber,
  "double precision": toFloat("double precision", (n) => n),
  real: toFloat("real", Math.fround),
  boolean: toBoolean,
  timestamptz: toTimestamp,
  timestamp: toUtcTimestamp,
  date: toDate,
  uuid: toUuid,
  jsonb: toJsonb
}

/**
 * The converter of a column with a `format`: an epoch value as its instant (`timestamptz`), its UTC
 * clock time (`timestamp`) or its UTC date (`date`). `iso` (or none) is the column type's own.
 */
export const converterOf = (type: ColumnType, format: TimeFormat | undefined): Converter => {
  if (format === undefined || format === "iso") return converters[type]
  return (value) => {
    const iso = epochToIso(value, format)
    return typeof iso !== "string" ? new Problem(iso.problem) : type === "date" ? iso.slice(0, 10) : iso
  }
}

/** The value converted for a column of `type`, or why it does not fit. `null` stays null. */
export const convert = (type: ColumnType, value: unknown): Either.Either<unknown, string> => {
  if (value === null || value === undefined) return Either.right(null)
  const converted = converters[type](value)
  return converted instanceof Problem ? Either.left(converted.message) : Either.right(converted)
}
