/**
 * How a raw JSON record becomes a row: each column takes the value at its path and is checked against
 * its Postgres type (`ColumnValue.ts`), so that one bad record is quarantined with a reason instead of
 * failing the whole batch in Postgres (the sink still bisects a batch Postgres refuses, as a last resort).
 */
import { Either } from "effect"
import { type Converter, converterOf, describe, isObject, isoTimestamp, numericText, Problem } from "./ColumnValue.js"
import type { CursorType, Incremental } from "./Incremental.js"
import { LosslessNumber } from "./Json.js"
import { compilePath } from "./JsonPath.js"
import { parentColumnOf, parentReader } from "./Parent.js"
import { type KeyPart, keyParts } from "./RowKey.js"
import { type Column, type ColumnType, tableKey, type TargetSpec } from "./Target.js"
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

/** timestamp-like initial values compare as instants, numbers as numbers; a typed cursor column decides first. */
export const inferCursorType = (initial: string | undefined, cursorColumnType: ColumnType | undefined): CursorType => {
  switch (cursorColumnType) {
    case "timestamptz":
    case "timestamp":
    case "date":
      return "timestamp"
    case "integer":
    case "bigint":
    case "numeric":
    case "double precision":
    case "real":
      return "number"
    case "text":
    case "uuid":
    case "jsonb":
      return "string"
    case undefined:
      break
  }
  if (initial === undefined) return "timestamp"
  if (numericText.test(initial)) return "number"
  return isoTimestamp.test(initial) ? "timestamp" : "string"
}

const cursorColumnType: Record<CursorType, ColumnType> = { timestamp: "timestamptz", number: "numeric", string: "text" }

/** The column whose value comes from the cursor field, if any. */
export const cursorColumnOf = (columns: ReadonlyArray<Column>, cursorField: string): string | undefined =>
  columns.find((c) => c.from === cursorField)?.name

/** the record column of the default shape (`target.record` renames it) */
export const defaultRecordColumn = "record"

/**
 * The shape used when a stream gives no `columns`: its primary key (as text), its cursor, and the
 * whole record as `record jsonb` (or the name `record` gives).
 */
/** what the default shape needs of `incremental` */
type CursorOf = Pick<Incremental, "cursorField" | "cursorType"> & Partial<Pick<Incremental, "format">>

export const defaultColumns = (
  primaryKey: ReadonlyArray<string>,
  incremental: CursorOf | undefined,
  record: string = defaultRecordColumn
): { readonly columns: ReadonlyArray<Column>; readonly cursorColumn: string | undefined } => {
  const columns: Array<Column> = primaryKey.map((name) => ({ name, type: "text", from: name }))
  let cursorColumn: string | undefined
  if (incremental) {
    const existing = cursorColumnOf(columns, incremental.cursorField)
    cursorColumn = existing ?? incremental.cursorField.split(".").join("_")
    const format = incremental.format
    if (existing === undefined && format !== undefined && format !== "iso") {
      columns.push({ name: cursorColumn, type: "timestamptz", from: incremental.cursorField, format })
    } else if (existing === undefined) {
      columns.push({ name: cursorColumn, type: cursorColumnType[incremental.cursorType], from: incremental.cursorField })
    }
  }
  columns.push({ name: record, type: "jsonb", from: "" })
  return { columns, cursorColumn }
}

/**
 * The names of a target's columns as the config file writes it (before types are known): its `columns`
 * and its record column, or the default shape. `extra` is not among them.
 */
export const configuredColumnNames = (
  target: {
    readonly primaryKey: ReadonlyArray<string>
    readonly columns?: Readonly<Record<string, unknown>> | undefined
    readonly record?: string | undefined
  },
  incremental: Pick<Incremental, "cursorField"> & Partial<Pick<Incremental, "format">> | undefined
): ReadonlyArray<string> =>
  target.columns === undefined
    ? defaultColumns(target.primaryKey, incremental && { ...incremental, cursorType: "string" }, target.record).columns
      .map((c) => c.name)
    : [...Object.keys(target.columns), ...(target.record === undefined ? [] : [target.record])]

/** A stream's columns prepared once: each path split and each converter chosen before the first record. */
interface Decoder {
  readonly target: TargetSpec
  readonly columns: TargetSpec["columns"]
  readonly primaryKey: ReadonlyArray<string>
  readonly cursorColumn: string | undefined
  readonly names: ReadonlyArray<string>
  readonly reads: ReadonlyArray<(record: unknown) => unknown>
  readonly converts: ReadonlyArray<Converter>
  /** `customer.email: ` (or `record: `), the prefix of a column's reason */
  readonly labels: ReadonlyArray<string>
  /** the columns of a row's key (`tableKey`: the primary key, and the cursor for append) */
  readonly keyColumns: ReadonlyArray<string>
  /** per key column, its key form; `undefined`: the value itself */
  readonly keyParts: ReadonlyArray<KeyPart | undefined>
  /** the cursor column's reader when it has an epoch `format`: the cursor is the value as sent, not the instant */
  readonly epochCursor: ((record: unknown) => unknown) | undefined
  /** a column named `__proto__` (a stream made in code): set as an own property, never the prototype */
  readonly protoColumn: boolean
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
  keyColumns: tableKey(target),
  keyParts: tableKey(target).map((name) => {
    const type = target.columns.findLast((c) => c.name === name)?.type
    return type === undefined ? undefined : keyParts[type]
  }),
  protoColumn: target.columns.some((c) => c.name === "__proto__")
})

/**
 * The row's key: the JSON of its key values in key order, each in its key form (`keyParts`). The
 * common one-column key is written without building the array (one string per row instead of an
 * array and a string).
 */
const keyOf = (decoder: Decoder, values: Record<string, unknown>): string => {
  const { keyColumns, keyParts } = decoder
  if (keyColumns.length === 1) {
    // as JSON.stringify([value]): an element with no JSON (undefined: a key that is no column) is null
    const text = JSON.stringify(keyValue(keyParts[0], values[keyColumns[0]!])) as string | undefined
    return text === undefined ? "[null]" : `[${text}]`
  }
  return JSON.stringify(keyColumns.map((name, i) => keyValue(keyParts[i], values[name])))
}

const keyValue = (part: KeyPart | undefined, value: unknown): unknown =>
  part === undefined || value === null || value === undefined ? value : part(value)

const decodeRow = (decoder: Decoder, record: unknown): Either.Either<Row, string> => {
  if (!isObject(record)) return Either.left(`record is ${describe(record)}, not an object`)
  const { converts, labels, names, reads } = decoder
  // a plain object filled in column order, as before: a repeated name keeps the last value
  const values: Record<string, unknown> = {}
  for (let i = 0; i < names.length; i++) {
    const raw = reads[i]!(record)
    let value: unknown = null
    if (raw !== null && raw !== undefined) {
      value = converts[i]!(raw)
      if (value instanceof Problem) return Either.left(labels[i]! + value.message)
    }
    if (decoder.protoColumn && names[i] === "__proto__") {
      Object.defineProperty(values, "__proto__", { value, enumerable: true, writable: true, configurable: true })
    } else values[names[i]!] = value
  }
  const primaryKey = decoder.primaryKey
  for (let i = 0; i < primaryKey.length; i++) {
    if (values[primaryKey[i]!] === null) {
      return Either.left(`missing primary key field ${columnSource(decoder.target, primaryKey[i]!)}`)
    }
  }
  let cursor: string | undefined
  if (decoder.cursorColumn !== undefined) {
    const value = values[decoder.cursorColumn]
    if (value === null) return Either.left(`missing cursor field ${columnSource(decoder.target, decoder.cursorColumn)}`)
    cursor = decoder.epochCursor === undefined ? String(value) : epochText(decoder.epochCursor(record))
  }
  return Either.right({ key: keyOf(decoder, values), cursor, values })
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

/** The decoder of a stream configured with a `columns` map (or the default shape), compiled once. */
export const fromColumns = (target: TargetSpec, _incremental: Incremental | undefined) => {
  const decoder = compile(target)
  return (raw: unknown): Either.Either<Row, string> => decodeRow(decoder, raw)
}
