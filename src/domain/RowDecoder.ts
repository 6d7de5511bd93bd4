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
import * as Specialized from "./Specialized.js"
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
  /** `decodeRow` for this decoder: written out for its columns (`specialize`), or the generic loop */
  readonly decode: (record: unknown) => Either.Either<Row, string>
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

/** a target's columns prepared for decoding: everything `decodeRow` and `specialize` read */
const prepare = (target: TargetSpec): Omit<Decoder, "decode"> => ({
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

const compile = (target: TargetSpec): Decoder => {
  const decoder = prepare(target)
  return { ...decoder, decode: specialize(decoder) ?? ((record) => decodeRow(decoder, record)) }
}

/**
 * The row's key: the JSON of its key values in key order, each in its key form (`keyParts`). The
 * common one-column key is written without building the array (one string per row instead of an
 * array and a string).
 */
const keyOf = (decoder: Pick<Decoder, "keyColumns" | "keyParts">, values: Record<string, unknown>): string => {
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

const notObject = (record: unknown) => Either.left(`record is ${describe(record)}, not an object`)

/** The generic decoder: a loop over the columns (`specialize` writes the same steps out per column). */
const decodeRow = (decoder: Omit<Decoder, "decode">, record: unknown): Either.Either<Row, string> => {
  if (!isObject(record)) return notObject(record)
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

/** the expression reading `keys` from `record`, as `valueAtKeys` does (own properties only) */
const pathExpression = (keys: ReadonlyArray<string>): string =>
  keys.reduce((from, key) => {
    const k = Specialized.literal(key)
    return `(t = ${from}, t !== null && typeof t === "object" && hasOwn.call(t, ${k}) ? t[${k}] : undefined)`
  }, "record")

/**
 * `decodeRow` written out for this decoder's columns: the same steps in the same order, each column's
 * read and conversion at its own site, the values object as one literal (a repeated name keeps the last
 * value at its first place, as the loop's assignments do; `__proto__` as a computed key, an own
 * property). Property tests hold it to `decodeRow` (test/row-decoder.test.ts).
 */
const specialize = (decoder: Omit<Decoder, "decode">): Decoder["decode"] | undefined => {
  const { names, target } = decoder
  if (names.length > Specialized.maxColumns) return undefined
  const bindings: Record<string, unknown> = {
    isObject,
    notObject,
    Problem,
    left: Either.left,
    right: Either.right,
    hasOwn: Object.prototype.hasOwnProperty,
    keyOf: (values: Record<string, unknown>) => keyOf(decoder, values)
  }
  const lines: Array<string> = []
  target.columns.forEach((column, i) => {
    const generic = column.name === target.extra || parentColumnOf(column.from) !== undefined
    if (generic) bindings[`r${i}`] = decoder.reads[i]
    const read = generic ? `r${i}(record)` : column.from === "" ? "record" : pathExpression(column.from.split("."))
    bindings[`c${i}`] = decoder.converts[i]
    bindings[`l${i}`] = decoder.labels[i]
    lines.push(
      `let v${i} = null`,
      `raw = ${read}`,
      `if (raw !== null && raw !== undefined) { v${i} = c${i}(raw); if (v${i} instanceof Problem) return left(l${i} + v${i}.message) }`
    )
  })
  const entries = names.map((name, i) => `${name === "__proto__" ? `[${Specialized.literal(name)}]` : Specialized.literal(name)}: v${i}`)
  lines.push(`const values = { ${entries.join(", ")} }`)
  decoder.primaryKey.forEach((name, i) => {
    bindings[`k${i}`] = `missing primary key field ${columnSource(target, name)}`
    lines.push(`if (values[${Specialized.literal(name)}] === null) return left(k${i})`)
  })
  lines.push("let cursor")
  if (decoder.cursorColumn !== undefined) {
    bindings["cursorMissing"] = `missing cursor field ${columnSource(target, decoder.cursorColumn)}`
    lines.push(
      `const cursorValue = values[${Specialized.literal(decoder.cursorColumn)}]`,
      "if (cursorValue === null) return left(cursorMissing)"
    )
    if (decoder.epochCursor === undefined) lines.push("cursor = String(cursorValue)")
    else {
      Object.assign(bindings, { epochCursor: decoder.epochCursor, epochText })
      lines.push("cursor = epochText(epochCursor(record))")
    }
  }
  lines.push("return right({ key: keyOf(values), cursor, values })")
  return Specialized.compile<Decoder["decode"]>(
    bindings,
    `return function decodeRow(record) {\nif (!isObject(record)) return notObject(record)\nlet t, raw\n${lines.join("\n")}\n}`
  )
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
  decoderOf(target).decode(record)

const columnSource = (target: TargetSpec, name: string): string =>
  target.columns.find((c) => c.name === name)?.from ?? name

/** The decoder of a stream configured with a `columns` map (or the default shape), compiled once. */
export const fromColumns = (target: TargetSpec, _incremental: Incremental | undefined) => compile(target).decode

/** The generic loop, for the tests that hold `specialize`'s functions to it. */
export const genericDecoder = (target: TargetSpec) => {
  const decoder = prepare(target)
  return (raw: unknown): Either.Either<Row, string> => decodeRow(decoder, raw)
}
