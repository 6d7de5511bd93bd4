/**
 * Child tables for nested lists (`target.children`): each element of the list at `path` becomes a row
 * of the child table, carrying its parent's key as `parent_<column>` (with the parent column's type).
 * The child table's key is the parent's key and the child's own `primaryKey`, or else the element's
 * position in the list (`_index`, from 0). A parent and its children are one unit: an element that
 * does not decode makes the whole record invalid (quarantined with the path and index), a missing or
 * null list is no children, anything else that is not a list is an invalid record.
 *
 * The parent table gets one more column, `_children` (text: a digest of the record's child rows, set
 * by the sink), so that a record whose lists changed is a changed row even when its own columns are the
 * same; the sink replaces a parent's child rows exactly when it writes the parent row.
 */
import { Either } from "effect"
import { describe, isObject } from "./ColumnValue.js"
import { compilePath } from "./JsonPath.js"
import { columnValue, type Row, rowFrom } from "./RowDecoder.js"
import { type ChildSpec, type Column, tableKey, type TargetSpec } from "./Target.js"

/** a child row's position in its list, the key of a child without a `primaryKey` */
export const indexColumn = "_index"

/** the parent table's column holding the digest of a record's child rows */
export const digestColumn = "_children"

/** the child table's column holding the parent's key column `name` */
export const parentColumn = (name: string): string => `parent_${name}`

/** The parent's columns and the digest column, when the target has children. */
export const withDigestColumn = (columns: ReadonlyArray<Column>, children: ReadonlyArray<ChildSpec> | undefined) =>
  children === undefined || children.length === 0
    ? columns
    : [...columns, { name: digestColumn, type: "text" as const, from: digestColumn }]

const childTargets = new WeakMap<ChildSpec, TargetSpec>()

/** The child table as a target of its own: the parent's key columns, `_index` or not, the child's columns. */
export const childTarget = (parent: TargetSpec, child: ChildSpec): TargetSpec => {
  const known = childTargets.get(child)
  if (known !== undefined && known.schema === parent.schema) return known
  const parentKey = tableKey(parent).map((name): Column => ({
    name: parentColumn(name),
    type: parent.columns.findLast((c) => c.name === name)?.type ?? "text",
    from: parentColumn(name)
  }))
  const index: ReadonlyArray<Column> = child.primaryKey === undefined
    ? [{ name: indexColumn, type: "integer", from: indexColumn }]
    : []
  const target: TargetSpec = {
    schema: parent.schema,
    table: child.table,
    primaryKey: [...parentKey.map((c) => c.name), ...(child.primaryKey ?? [indexColumn])],
    columns: [...parentKey, ...index, ...child.columns],
    cursorColumn: undefined,
    write: undefined
  }
  childTargets.set(child, target)
  return target
}

interface CompiledChild {
  readonly path: string
  readonly read: (record: unknown) => unknown
  /** one element as a target of its own: the child's columns and key, for `rowFrom` */
  readonly element: TargetSpec
  readonly indexed: boolean
}

/** one element of the list as a target of its own: the child's columns and key, for the decoder */
const elementOf = (parent: TargetSpec, child: ChildSpec): TargetSpec => ({
  schema: parent.schema,
  table: child.table,
  primaryKey: child.primaryKey ?? [],
  columns: child.columns
})

const compileChild = (parent: TargetSpec, child: ChildSpec): CompiledChild => ({
  path: child.path,
  read: compilePath(child.path),
  element: elementOf(parent, child),
  indexed: child.primaryKey === undefined
})

/** an element's child key (without the parent's) and the values of some of its columns, or why each does not decode */
export interface ElementColumns {
  readonly key: Readonly<Record<string, unknown>>
  readonly values: ReadonlyArray<readonly [string, Either.Either<unknown, string>]>
}

/**
 * For filling a child table's new `columns` from its parent's stored record (schema evolution): each
 * element of the record's list with its child key (`primaryKey` as the decoder converts it, or `_index`)
 * and each column's value as the decoder converts it. A non-list, a non-object element, or an element
 * whose key does not decode gives nothing (no child row was written from it).
 */
export const elementColumns = (
  parent: TargetSpec,
  child: ChildSpec,
  columns: ReadonlyArray<string>
): (record: unknown) => ReadonlyArray<ElementColumns> => {
  const read = compilePath(child.path)
  const element = elementOf(parent, child)
  const keys = (child.primaryKey ?? []).map((name) => [name, columnValue(element, name)] as const)
  const readers = columns.map((name) => [name, columnValue(element, name)] as const)
  return (record) => {
    const list = isObject(record) ? read(record) : undefined
    if (!Array.isArray(list)) return []
    const found: Array<ElementColumns> = []
    list.forEach((item: unknown, i) => {
      if (!isObject(item)) return
      const key: Record<string, unknown> = child.primaryKey === undefined ? { [indexColumn]: i } : {}
      for (const [name, readKey] of keys) {
        const value = readKey(item)
        if (Either.isLeft(value) || value.right === null) return
        key[name] = value.right
      }
      found.push({ key, values: readers.map(([name, readValue]) => [name, readValue(item)] as const) })
    })
    return found
  }
}

/** The rows of one list, or why the record is invalid. */
const decodeList = (
  child: CompiledChild,
  record: unknown,
  parentKey: Readonly<Record<string, unknown>>
): Either.Either<ReadonlyArray<Record<string, unknown>>, string> => {
  const list = child.read(record)
  if (list === undefined || list === null) return Either.right([])
  if (!Array.isArray(list)) return Either.left(`${child.path}: expected a list, got ${describe(list)}`)
  const rows: Array<Record<string, unknown>> = []
  const seen = new Map<string, number>()
  for (let i = 0; i < list.length; i++) {
    const element: unknown = list[i]
    if (!isObject(element)) return Either.left(`${child.path}[${i}]: expected an object, got ${describe(element)}`)
    const decoded = rowFrom(child.element, element)
    if (Either.isLeft(decoded)) return Either.left(`${child.path}[${i}]: ${decoded.left}`)
    if (!child.indexed) {
      const first = seen.get(decoded.right.key)
      if (first !== undefined) {
        return Either.left(`${child.path}[${i}]: the same key ${decoded.right.key} as ${child.path}[${first}]`)
      }
      seen.set(decoded.right.key, i)
    }
    rows.push(child.indexed
      ? { ...parentKey, [indexColumn]: i, ...decoded.right.values }
      : { ...parentKey, ...decoded.right.values })
  }
  return Either.right(rows)
}

/**
 * `decode` with the target's child lists decoded into `Row.children`; `decode` itself when the target
 * has none (nothing added to a stream without children).
 */
export const withChildren = (
  target: TargetSpec,
  decode: (raw: unknown) => Either.Either<Row, string>
): (raw: unknown) => Either.Either<Row, string> => {
  if (target.children === undefined || target.children.length === 0) return decode
  const children = target.children.map((child) => compileChild(target, child))
  const key = tableKey(target)
  return (raw) => {
    const decoded = decode(raw)
    if (Either.isLeft(decoded)) return decoded
    const row = decoded.right
    const parentKey: Record<string, unknown> = {}
    for (const name of key) parentKey[parentColumn(name)] = row.values[name]
    const lists: Array<ReadonlyArray<Record<string, unknown>>> = []
    for (const child of children) {
      const list = decodeList(child, raw, parentKey)
      if (Either.isLeft(list)) return Either.left(list.left)
      lists.push(list.right)
    }
    return Either.right({ ...row, children: lists })
  }
}
