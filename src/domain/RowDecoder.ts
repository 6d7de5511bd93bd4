/**
 * How a raw JSON record becomes a row: each column takes the value at its path and is checked against
 * its Postgres type (`ColumnValue.ts`), so that one bad record is quarantined with a reason instead of
 * failing the whole batch in Postgres (the sink still bisects a batch Postgres refuses, as a last resort).
 */
import { Either } from "effect"
import { type Converter, converterOf, describe, isObject, Problem } from "./ColumnValue.js"
import type { Incremental } from "./Incremental.js"
import { LosslessNumber } from "./Json.js"
import { compilePath } from "./JsonPath.js"
import { parentColumnOf, parentReader } from "./Parent.js"
import { type KeyPart, keyParts } from "./RowKey.js"
import { type Column, tableKey, type TargetSpec } from "./Target.js"
import { mappedPaths, mappedTree, unmappedOf } from "./Unmapped.js"

export { convert } from "./ColumnValue.js"
export { canonicalDecimal, keyPart } from "./RowKey.js"

/** A decoded record, ready for the sink. `values` are JSON-safe (dates as ISO strings). */
export interface Row {
  /** the primary key values, JSON-encoded: identity within the stream */
  readonly key: string
  /** the record's cursor value as text, when the stream is incremental */
  readonly cursor: string | undefined
  readonly values: Readonly<Record<string, unknown>>
  /** the rows of each of the target's child tables, in `target.children` order (`Children.ts`) */
  readonly children?: ReadonlyArray<ReadonlyArray<Readonly<Record<string, unknown>>>> | undefined
  /** the source flags the record as deleted (`target.deletes.path`, Deletes.ts) */
  readonly deleted?: true | undefined
}

/** A stream's columns prepared once: each path split and each converter chosen before the first record. */
export interface Decoder {
  readonly target: TargetSpec
  readonly columns: TargetSpec["columns"]
  readonly primaryKey: ReadonlyArray<string>
  readonly cursorColumn: string | undefined
  readonly names: ReadonlyArray<string>
  readonly reads: ReadonlyArray<(record: unknown) => unknown>
  readonly converts: ReadonlyArray<Converter>
  /** `customer.email: ` (or `record: `), the prefix of a column's reason */
  readonly labels: ReadonlyArray<string>
  /** per key column, its key form; `undefined`: the value itself */
  readonly keyParts: ReadonlyArray<KeyPart | undefined>
  /** the cursor column's reader when it has an epoch `format`: the cursor is the value as sent, not the instant */
  readonly epochCursor: ((record: unknown) => unknown) | undefined
  /** a column named `__proto__` (a stream made in code): set as an own property, never the prototype */
  readonly protoColumn: boolean
  /**
   * where a row's value of each of these is (a repeated name: its last column; -1: no column): the
   * primary key's columns, the key's (`tableKey`: the primary key, and the cursor for append), the cursor's
   */
  readonly primaryKeyAt: ReadonlyArray<number>
  readonly keyColumns: ReadonlyArray<string>
  readonly keyAt: ReadonlyArray<number>
  readonly cursorAt: number
  /** scratch for `decodeRow`'s values in column order (decoding is synchronous: one record at a time) */
  readonly scratch: Array<unknown>
}

/** the `extra` column's reader: the record's fields that no other column reads, or undefined */
const extraReader = (target: TargetSpec) => {
  const tree = mappedTree(mappedPaths(target))
  return (record: unknown): unknown => unmappedOf(record as Record<string, unknown>, tree)
}

const epochCursorReader = (target: TargetSpec): ((record: unknown) => unknown) | undefined => {
  const column = target.columns.findLast((c) => c.name === target.cursorColumn)
  return column?.format === undefined || column.format === "iso" ? undefined : compilePath(column.from)
}

/** a column's reader: the extra fields, a parent stream's value (`{parent.<column>}`), or the value at its path */
const readerOf = (target: TargetSpec, column: Column) => {
  if (column.name === target.extra) return extraReader(target)
  const parent = parentColumnOf(column.from)
  return parent === undefined ? compilePath(column.from) : parentReader(parent)
}

/** an epoch value (checked by its column) as text: `1700000000`, `"1700000000.5"` */
const epochText = (raw: unknown): string =>
  typeof raw === "string" ? raw.trim() : raw instanceof LosslessNumber ? raw.text : String(raw)

const compile = (target: TargetSpec): Decoder => ({
  target,
  columns: target.columns,
  primaryKey: target.primaryKey,
  cursorColumn: target.cursorColumn,
  names: target.columns.map((c) => c.name),
  reads: target.columns.map((c) => readerOf(target, c)),
  converts: target.columns.map((c) => converterOf(c.type, c.format)),
  epochCursor: epochCursorReader(target),
  labels: target.columns.map((c) => `${c.name === target.extra ? c.name : c.from || "record"}: `),
  keyParts: tableKey(target).map((name) => {
    const type = target.columns.findLast((c) => c.name === name)?.type
    return type === undefined ? undefined : keyParts[type]
  }),
  protoColumn: target.columns.some((c) => c.name === "__proto__"),
  primaryKeyAt: target.primaryKey.map((name) => lastColumnOf(target, name)),
  keyColumns: tableKey(target),
  keyAt: tableKey(target).map((name) => lastColumnOf(target, name)),
  cursorAt: target.cursorColumn === undefined ? -1 : lastColumnOf(target, target.cursorColumn),
  scratch: []
})

const lastColumnOf = (target: TargetSpec, name: string): number => target.columns.findLastIndex((c) => c.name === name)

/**
 * The row's key: the JSON of its key values in key order, each in its key form (`keyParts`). The
 * common one-column key is written without building the array (one string per row instead of an
 * array and a string).
 */
const keyOf = (decoder: Decoder, values: ReadonlyArray<unknown>): string => {
  const { keyAt, keyColumns, keyParts } = decoder
  if (keyAt.length === 1) {
    // as JSON.stringify([value]): an element with no JSON (undefined: a key that is no column) is null
    const text = JSON.stringify(keyValue(keyParts[0], valueAt(values, keyAt[0]!, keyColumns[0]!))) as string | undefined
    return text === undefined ? "[null]" : `[${text}]`
  }
  return JSON.stringify(keyAt.map((at, i) => keyValue(keyParts[i], valueAt(values, at, keyColumns[i]!))))
}

/**
 * A row's value of the column `name`, at `at`; a name that is no column reads as a plain object's
 * property would (what a row's `values` object gives: `undefined`, or what it inherits)
 */
const valueAt = (values: ReadonlyArray<unknown>, at: number, name: string): unknown =>
  at < 0 ? (noValues as Record<string, unknown>)[name] : values[at]
const noValues = {}

const keyValue = (part: KeyPart | undefined, value: unknown): unknown =>
  part === undefined || value === null || value === undefined ? value : part(value)

/** A record that decoded: its key and cursor (its values are in the array `decodeValues` filled). */
export interface Decoded {
  readonly key: string
  readonly cursor: string | undefined
}

/**
 * A record's values, in column order, into `values` (each column's, `null` where the record has none),
 * with its key and cursor; or why it does not decode. What a row is, without the row: `decodeRow`
 * makes one from it, and a sink that writes values in column order (the COPY path) uses it as is.
 */
export const decodeValues = (decoder: Decoder, record: unknown, values: Array<unknown>): Decoded | string => {
  if (!isObject(record)) return `record is ${describe(record)}, not an object`
  const { converts, reads } = decoder
  for (let i = 0; i < reads.length; i++) {
    const raw = reads[i]!(record)
    let value: unknown = null
    if (raw !== null && raw !== undefined) {
      value = converts[i]!(raw)
      if (value instanceof Problem) return decoder.labels[i]! + value.message
    }
    values[i] = value
  }
  const { primaryKey, primaryKeyAt } = decoder
  for (let i = 0; i < primaryKeyAt.length; i++) {
    if (valueAt(values, primaryKeyAt[i]!, primaryKey[i]!) === null) return `missing primary key field ${columnSource(decoder.target, primaryKey[i]!)}`
  }
  let cursor: string | undefined
  if (decoder.cursorColumn !== undefined) {
    const value = valueAt(values, decoder.cursorAt, decoder.cursorColumn)
    if (value === null) return `missing cursor field ${columnSource(decoder.target, decoder.cursorColumn)}`
    cursor = decoder.epochCursor === undefined ? String(value) : epochText(decoder.epochCursor(record))
  }
  return { key: keyOf(decoder, values), cursor }
}

const decodeRow = (decoder: Decoder, record: unknown): Either.Either<Row, string> => {
  const { names, scratch } = decoder
  const decoded = decodeValues(decoder, record, scratch)
  if (typeof decoded === "string") return Either.left(decoded)
  // a plain object filled in column order, as before: a repeated name keeps the last value
  const values: Record<string, unknown> = {}
  for (let i = 0; i < names.length; i++) {
    if (decoder.protoColumn && names[i] === "__proto__") {
      Object.defineProperty(values, "__proto__", { value: scratch[i], enumerable: true, writable: true, configurable: true })
    } else values[names[i]!] = scratch[i]
  }
  return Either.right({ key: decoded.key, cursor: decoded.cursor, values })
}

/** rowFrom's compiled decoders, per target object (a target's fields are read-only; checked anyway). */
const decoders = new WeakMap<TargetSpec, Decoder>()

const decoderOf = (target: TargetSpec): Decoder => {
  const known = decoders.get(target)
  if (
    known !== undefined && known.columns === target.columns && known.primaryKey === target.primaryKey &&
    known.cursorColumn === target.cursorColumn && known.target.write === target.write
  ) return known
  const decoder = compile(target)
  decoders.set(target, decoder)
  return decoder
}

/**
 * One column's value from a record, as `decode` makes it (an `extra` column: the unmapped fields), or
 * why it does not fit: to fill a column added to a table from the records it keeps.
 */
export const columnValue = (target: TargetSpec, name: string): (record: unknown) => Either.Either<unknown, string> => {
  const decoder = decoderOf(target)
  const i = decoder.names.lastIndexOf(name)
  if (i < 0) return () => Either.right(null)
  const read = decoder.reads[i]!
  const convert = decoder.converts[i]!
  return (record) => {
    if (!isObject(record)) return Either.right(null)
    const raw = read(record)
    if (raw === null || raw === undefined) return Either.right(null)
    const value = convert(raw)
    return value instanceof Problem ? Either.left(decoder.labels[i]! + value.message) : Either.right(value)
  }
}

/** Builds a row from any object whose column values sit at each column's `from` path. */
export const rowFrom = (target: TargetSpec, record: unknown): Either.Either<Row, string> =>
  decodeRow(decoderOf(target), record)

const columnSource = (target: TargetSpec, name: string): string =>
  target.columns.find((c) => c.name === name)?.from ?? name

/** the decoders `fromColumns` made, by the function it returned */
const plain = new WeakMap<(raw: unknown) => Either.Either<Row, string>, Decoder>()

/** The decoder of a stream configured with a `columns` map (or the default shape), compiled once. */
export const fromColumns = (target: TargetSpec, _incremental: Incremental | undefined) => {
  const decoder = compile(target)
  const decode = (raw: unknown): Either.Either<Row, string> => decodeRow(decoder, raw)
  plain.set(decode, decoder)
  return decode
}

/**
 * The compiled columns behind a stream's `decode`, when it is exactly `fromColumns`' (a decode that
 * wraps it, for children, deletes or a schema, is not: it does more than its columns).
 */
export const plainDecoder = (decode: (raw: unknown) => Either.Either<Row, string>): Decoder | undefined => plain.get(decode)
