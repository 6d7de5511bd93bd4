/**
 * Cursor values are kept as the text the source sent. They compare by the stream's cursor type:
 * timestamps as instants (so `...Z` and `...+00:00` agree), numbers as numbers, the rest as text.
 */
import { Duration } from "effect"
import type { CursorType, Row, StreamSpec } from "./StreamSpec.js"

const integer = /^-?\d+$/

const compareNumbers = (a: string, b: string): number => {
  if (integer.test(a) && integer.test(b)) {
    const x = BigInt(a)
    const y = BigInt(b)
    return x < y ? -1 : x > y ? 1 : 0
  }
  return Math.sign(Number(a) - Number(b))
}

const compareText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

/** Instants with sub-millisecond digits compare by their full fraction once the milliseconds tie. */
const fraction = (s: string): string => /\.(\d+)/.exec(s)?.[1]?.padEnd(9, "0") ?? "000000000"

const compareTimestamps = (a: string, b: string): number => {
  const x = Date.parse(a)
  const y = Date.parse(b)
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
 * The cursor to request from: the checkpoint less the lookback. Only timestamps can be moved back;
 * the result is floored to the millisecond, which re-reads a little more, never less.
 */
export const minusLookback = (type: CursorType, cursor: string, lookback: Duration.Duration): string => {
  if (type !== "timestamp" || Duration.toMillis(lookback) === 0) return cursor
  const at = Date.parse(cursor)
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
