/**
 * Epoch times: a timestamp an API sends as Unix seconds (`format: unix`, a fraction allowed) or
 * milliseconds (`unix_ms`), as a number or a string of digits. Converted exactly (BigInt, never a
 * double's rounding) to the ISO form the columns hold, and back for the cursor sent to the API.
 */
import { Schema } from "effect"

const timeFormats = ["iso", "unix", "unix_ms"] as const
export const TimeFormat = Schema.Literal(...timeFormats).annotations({
  message: () => ({ message: `expected one of ${timeFormats.join(", ")}`, override: true })
})
export type TimeFormat = typeof TimeFormat.Type

const epochText = /^(-?)(\d+)(?:\.(\d+))?$/
const NANOS = 1_000_000_000n
/** fraction digits each form may carry: down to the nanosecond */
const scale = { unix: 9, unix_ms: 6 } as const
/** 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, in seconds */
const minSeconds = -62135596800n
const maxSeconds = 253402300799n

/** the text of a number or a digit string, or undefined */
const textOf = (value: unknown): string | undefined =>
  typeof value === "string" ? value
  : typeof value === "number" ? (Number.isFinite(value) ? String(value) : undefined)
  : typeof value === "object" && value !== null && "text" in value && typeof value.text === "string" ? value.text
  : undefined

/** an epoch value in nanoseconds, or why it is none */
const nanosOf = (value: unknown, format: "unix" | "unix_ms"): bigint | string => {
  const text = textOf(value)
  const m = text === undefined ? null : epochText.exec(text.trim())
  const unit = format === "unix" ? "Unix seconds" : "Unix milliseconds"
  if (m === null) return `expected ${unit} (a number or a string of digits), got ${text === undefined ? "a " + typeof value : JSON.stringify(text)}`
  const [, sign, whole, fraction = ""] = m
  const digits = scale[format]
  if (fraction.length > digits) return `${text} has more than ${digits} decimals for ${unit}`
  const nanos = BigInt(whole! + fraction.padEnd(digits, "0"))
  return sign === "-" ? -nanos : nanos
}

const floorDiv = (a: bigint, b: bigint): bigint => (a >= 0n ? a / b : -((-a + b - 1n) / b))

/** nanoseconds as `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, or why they are out of range */
const isoOfNanos = (nanos: bigint, text: string): string | { readonly problem: string } => {
  const seconds = floorDiv(nanos, NANOS)
  if (seconds < minSeconds || seconds > maxSeconds) return { problem: `${text} is outside the years 0001–9999` }
  const rest = nanos - seconds * NANOS
  const fraction = rest === 0n ? "" : `.${rest.toString().padStart(9, "0").replace(/0+$/, "")}`
  return `${new Date(Number(seconds) * 1000).toISOString().slice(0, 19)}${fraction}Z`
}

/** An epoch value as an ISO instant (UTC), or why it is none. */
export const epochToIso = (value: unknown, format: "unix" | "unix_ms"): string | { readonly problem: string } => {
  const nanos = nanosOf(value, format)
  return typeof nanos === "string" ? { problem: nanos } : isoOfNanos(nanos, textOf(value)!)
}

/** nanoseconds in the form `format` writes: whole units, a fraction only when there is one */
const formatNanos = (nanos: bigint, format: "unix" | "unix_ms"): string => {
  const per = format === "unix" ? NANOS : 1_000_000n
  const whole = floorDiv(nanos, per)
  const rest = nanos - whole * per
  if (rest === 0n) return whole.toString()
  const fraction = rest.toString().padStart(scale[format], "0").replace(/0+$/, "")
  // -1.5 s is whole -2 and rest 0.5: written as the exact sum
  return whole < 0n ? `-${(-whole - 1n).toString()}.${(per - rest).toString().padStart(scale[format], "0").replace(/0+$/, "")}` : `${whole}.${fraction}`
}

/** An epoch cursor less `millis`, in the same form (exact); the cursor unchanged if it is none. */
export const epochMinus = (cursor: string, format: "unix" | "unix_ms", millis: number): string => {
  const nanos = nanosOf(cursor, format)
  return typeof nanos === "string" ? cursor : formatNanos(nanos - BigInt(Math.round(millis)) * 1_000_000n, format)
}

/**
 * An `initial` cursor in the epoch form: an ISO timestamp converted (`2024-01-01` → `1704067200`),
 * an epoch value kept as written; undefined if it is neither.
 */
export const epochOfInitial = (initial: string, format: "unix" | "unix_ms"): string | undefined => {
  if (typeof nanosOf(initial, format) !== "string") return initial.trim()
  const iso = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.(\d{1,9}))?)?)?(Z|[+-]\d{2}(?::?\d{2})?)?$/i.exec(initial)
  if (iso === null) return undefined
  const ms = Date.parse(iso[2] === undefined && initial.length > 10 ? `${initial}Z` : initial)
  if (Number.isNaN(ms)) return undefined
  const sub = BigInt((iso[1] ?? "").padEnd(9, "0").slice(3) || "0")
  return formatNanos(BigInt(ms) * 1_000_000n + sub, format)
}
