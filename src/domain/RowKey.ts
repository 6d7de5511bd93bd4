/**
 * Row keys: two values Postgres' unique index holds equal must make one key, or one upsert would
 * touch a row twice. Converters (`ColumnValue.ts`) already write integers, bigints and uuids the one
 * way Postgres does; these cover the types where equal values keep different texts.
 */
import type { ColumnType } from "./Target.js"

/** A primary key column's converted value as the key compares it. */
export type KeyPart = (value: unknown) => unknown

const decimalParts = /^([-+]?)(\d*)(?:\.(\d*))?(?:[eE]([-+]?\d+))?$/

/** numeric: 1 = 1.0 = 1.00 = 1e0 in a unique index; the digits without zeros at either end, and the exponent */
export const canonicalDecimal = (text: string): string => {
  const m = decimalParts.exec(text)
  if (m === null) return text
  const all = `${m[2]}${m[3] ?? ""}`.replace(/^0+/, "")
  if (all === "") return "0"
  const digits = all.replace(/0+$/, "")
  const exponent = Number(m[4] ?? 0) - (m[3]?.length ?? 0) + (all.length - digits.length)
  return `${m[1] === "-" ? "-" : ""}${digits}e${exponent}`
}

const timestampParts = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?(Z|[+-]\d{2}(?::?\d{2})?)?$/i

const isoOffset = (zone: string): string =>
  zone.length === 1 ? "Z" : zone.length === 3 ? `${zone}:00` : zone.length === 5 ? `${zone.slice(0, 3)}:${zone.slice(3)}` : zone

/**
 * The instant, to the microsecond as Postgres rounds it. A text without an offset is UTC, as in
 * Ferry's sessions (TimeZone=UTC); a `timestamp` column's values are UTC wall clocks already (toUtcTimestamp).
 */
const timestampKey: KeyPart = (value) => {
  const text = String(value)
  const m = timestampParts.exec(text)
  if (m === null) return text
  const [, date, hm, ss, fraction, zone] = m
  let micros = fraction === undefined ? 0 : Math.round(Number(fraction.padEnd(9, "0")) / 1000)
  let ms = Date.parse(`${date}T${hm ?? "00:00"}:${ss ?? "00"}${zone === undefined ? "Z" : isoOffset(zone)}`)
  if (Number.isNaN(ms)) return text
  if (micros === 1_000_000) {
    ms += 1000
    micros = 0
  }
  return `${ms}.${micros}`
}

/** floats compare by value: "1.0" = 1, -0 = 0; real at float4's precision */
const floatKey = (round: (n: number) => number): KeyPart => (value) => {
  const n = round(Number(value))
  return n === 0 ? 0 : n
}

export const keyParts: Partial<Record<ColumnType, KeyPart>> = {
  numeric: (value) => canonicalDecimal(String(value)),
  "double precision": floatKey((n) => n),
  real: floatKey(Math.fround),
  timestamptz: timestampKey,
  timestamp: timestampKey
}

/** A converted, non-null primary key value as the row key compares it (`keyOf`, one column's part). */
export const keyPart = (type: ColumnType, value: unknown): unknown => keyParts[type]?.(value) ?? value
