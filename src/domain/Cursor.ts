/**
 * Cursor values are kept as the text the source sent. They compare by the stream's cursor type:
 * timestamps as instants (so `...Z` and `...+00:00` agree; no offset means UTC), numbers as numbers,
 * the rest as text.
 */
import { Duration } from "effect"
import { epochMinus, type TimeFormat } from "./Epoch.js"
import type { CursorType } from "./Incremental.js"
import type { Row } from "./RowDecoder.js"
import type { StreamSpec } from "./StreamSpec.js"

const integer = /^-?\d+$/
const decimal = /^([-+]?)(\d*)(?:\.(\d*))?(?:[eE]([-+]?\d+))?$/

/** a decimal text as digits × 10^exponent, exactly */
const scaled = (text: string): { readonly digits: bigint; readonly exponent: number } | undefined => {
  const m = decimal.exec(text)
  if (m === null || `${m[2]}${m[3] ?? ""}` === "") return undefined
  return {
    digits: BigInt(`${m[1] === "-" ? "-" : ""}${m[2] || "0"}${m[3] ?? ""}`),
    exponent: Number(m[4] ?? 0) - (m[3]?.length ?? 0)
  }
}

/**
 * Two numbers that are one double (digits past the 15th, as Json.parse keeps them) compare exactly;
 * exponents further apart than 1,000 are left at the doubles' answer.
 */
const compareExactly = (a: string, b: string): number => {
  const x = scaled(a)
  const y = scaled(b)
  if (x === undefined || y === undefined || Math.abs(x.exponent - y.exponent) > 1000) return 0
  const shift = x.exponent - y.exponent
  const p = shift > 0 ? x.digits * 10n ** BigInt(shift) : x.digits
  const q = shift < 0 ? y.digits * 10n ** BigInt(-shift) : y.digits
  return p < q ? -1 : p > q ? 1 : 0
}

const compareNumbers = (a: string, b: string): number => {
  if (integer.test(a) && integer.test(b)) {
    const x = BigInt(a)
    const y = BigInt(b)
    return x < y ? -1 : x > y ? 1 : 0
  }
  const x = Number(a)
  const y = Number(b)
  // equal doubles (equal infinities too): the digits decide
  return x === y ? compareExactly(a, b) : Math.sign(x - y)
}

const compareText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

/** Instants with sub-millisecond digits compare by their full fraction once the milliseconds tie. */
const fraction = (s: string): string => /\.(\d+)/.exec(s)?.[1]?.padEnd(9, "0") ?? "000000000"

/** A date and time with no offset (`2024-03-31T02:30:00`, `2024-03-31 02:30`): Date.parse reads it in the process's zone. */
const offsetless = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?$/

/**
 * The instant of a timestamp cursor, in ms (NaN if it is none). A timestamp without an offset is UTC,
 * as everywhere in Ferry (Postgres reads it in UTC too: Ferry's sessions run with TimeZone=UTC), never
 * the process's zone: the checkpoint, the lookback and the upsert's guard must agree on any machine.
 * A date alone is UTC midnight already.
 */
export const instantOf = (text: string): number => Date.parse(offsetless.test(text) ? `${text}Z` : text)

const compareTimestamps = (a: string, b: string): number => {
  const x = instantOf(a)
  const y = instantOf(b)
  if (Number.isNaN(x) || Number.isNaN(y)) return compareText(a, b)
  return x !== y ? Math.sign(x - y) : compareText(fraction(a), fraction(b))
}

/** A stream's cursor type; a stream that is not incremental compares cursors (if any) as text. */
export const typeOf = (stream: StreamSpec): CursorType => stream.source.incremental?.cursorType ?? "string"

export const compare = (type: CursorType) => (a: string, b: string): number =>
  type === "timestamp" ? compareTimestamps(a, b) : type === "number" ? compareNumbers(a, b) : compareText(a, b)

/** The greater of two cursors; `undefined` is below everything. */
export const max = (type: CursorType) => (a: string | undefined, b: string | undefined): string | undefined =>
  a === undefined ? b : b === undefined ? a : compare(type)(a, b) >= 0 ? a : b

/**
 * `YYYY-MM-DDTHH:MM:SS[.fraction]Z` on a day every month has: two such texts of the same length order as
 * text exactly as `compare` orders them as instants (with days 29–31 a date can roll over into the next
 * month, which Date.parse accepts, so those take the slow path).
 */
const plainUtc = /^\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1\d|2[0-8])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,9})?Z$/

/**
 * The greatest of `start` and `cursors` by `max`, the first of equals kept. For timestamps each is
 * parsed once at most, not at every comparison, and not at all in the plain UTC form APIs mostly send.
 */
export const greatest = (
  type: CursorType,
  start: string | undefined,
  cursors: ReadonlyArray<string | undefined>
): string | undefined => {
  const maxOf = max(type)
  let best = start
  let bestPlain = type === "timestamp" && best !== undefined && plainUtc.test(best)
  let bestMs: number | undefined // instantOf(best), once needed
  for (const cursor of cursors) {
    if (cursor === undefined || cursor === best) continue
    if (type === "timestamp" && best !== undefined) {
      if (bestPlain && cursor.length === best.length && plainUtc.test(cursor)) {
        if (cursor > best) {
          best = cursor
          bestMs = undefined
        }
        continue
      }
      // different milliseconds decide alone; ties and unparsable values go through `max`
      const ms = instantOf(cursor)
      bestMs ??= instantOf(best)
      if (!Number.isNaN(ms) && !Number.isNaN(bestMs) && ms !== bestMs) {
        if (ms > bestMs) {
          best = cursor
          bestMs = ms
          bestPlain = plainUtc.test(cursor)
        }
        continue
      }
    }
    const m = maxOf(best, cursor)
    if (m !== best) {
      best = m
      bestMs = undefined
      bestPlain = type === "timestamp" && m !== undefined && plainUtc.test(m)
    }
  }
  return best
}

/**
 * The cursor to request from: the checkpoint less the lookback. Only timestamps and epoch cursors can be moved back;
 * the result is floored to the millisecond, which re-reads a little more, never less.
 */
export const minusLookback = (
  type: CursorType,
  cursor: string,
  lookback: Duration.Duration,
  format?: TimeFormat | undefined
): string => {
  if (Duration.toMillis(lookback) === 0) return cursor
  // an epoch cursor (a number) moves back exactly, in its own unit
  if (format === "unix" || format === "unix_ms") return epochMinus(cursor, format, Duration.toMillis(lookback))
  if (type !== "timestamp") return cursor
  const at = instantOf(cursor)
  return Number.isNaN(at) ? cursor : new Date(at - Duration.toMillis(lookback)).toISOString()
}

/**
 * One row per key: the one with the greatest cursor, the later one on ties (a batch may hold several
 * versions of a record, and one upsert statement may touch a row only once). Keeps first-seen order.
 */
export const latestPerKey = (rows: ReadonlyArray<Row>, type: CursorType): ReadonlyArray<Row> => {
  const cmp = compare(type)
  const latest = new Map<string, Row>()
  for (const row of rows) {
    const seen = latest.get(row.key)
    if (seen === undefined || seen.cursor === undefined || (row.cursor !== undefined && cmp(row.cursor, seen.cursor) >= 0)) {
      latest.set(row.key, row)
    }
  }
  // no key twice (nearly always): the rows themselves, not a copy
  return latest.size === rows.length ? rows : [...latest.values()]
}
