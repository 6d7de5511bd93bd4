/**
 * Child tables (`target.children`) in the in-memory database, as PgSink keeps them: a parent's child
 * rows are replaced exactly when its row is inserted or updated (in the same transaction), and a
 * record whose lists changed is a changed row (the `_children` column, here the lists' JSON); a
 * parent row deleted (MemoryDeletes.ts, `action: delete`) takes its child rows with it; a column a child
 * lists and its table lacks is added, filled from the parent's record column (as ChildEvolve.ts).
 */
import { Either } from "effect"
import { childTarget, digestColumn, elementColumns, parentColumn } from "../domain/Children.js"
import type { TargetMismatch } from "../domain/Errors.js"
import type { ChildSpec, Column, TargetSpec } from "../domain/Target.js"
import { type Row, type StreamSpec, tableKey } from "../domain/StreamSpec.js"
import type { SchemaChange } from "../Sink.js"
import { evolve, type TableShape } from "./MemorySchema.js"

interface StoredChild {
  readonly cursor: string | undefined
  readonly values: Readonly<Record<string, unknown>>
}

/** the rows with their `_children` value set, when the stream has children */
export const digested = (stream: StreamSpec, rows: ReadonlyArray<Row>): ReadonlyArray<Row> =>
  (stream.target.children?.length ?? 0) === 0
    ? rows
    : rows.map((row) => ({ ...row, values: { ...row.values, [digestColumn]: JSON.stringify(row.children ?? []) } }))

const keyText = (values: Readonly<Record<string, unknown>>, names: ReadonlyArray<string>) =>
  JSON.stringify(names.map((name) => values[name]))

/** as PgSink's deletes: the child rows of the deleted parent rows (`parents`: their stored values) go too */
export const remove = (
  tables: Map<string, Map<string, StoredChild>>,
  stream: StreamSpec,
  parents: ReadonlyArray<Readonly<Record<string, unknown>>>
): void => {
  if (parents.length === 0) return
  const gone = new Set(parents.map((values) => keyText(values, tableKey(stream.target))))
  const parentKey = tableKey(stream.target).map(parentColumn)
  for (const child of stream.target.children ?? []) {
    const target = childTarget(stream.target, child)
    const table = tables.get(`${target.schema}.${target.table}`)
    if (table === undefined) continue
    for (const [key, stored] of table) if (gone.has(keyText(stored.values, parentKey))) table.delete(key)
  }
}

/** after `written` (the rows inserted or updated) were stored: their child rows replaced by theirs */
export const replace = (
  tables: Map<string, Map<string, StoredChild>>,
  stream: StreamSpec,
  written: ReadonlyArray<Row>
): void => {
  const parentKey = tableKey(stream.target).map(parentColumn)
  stream.target.children?.forEach((child, i) => {
    const target = childTarget(stream.target, child)
    const name = `${target.schema}.${target.table}`
    const table = tables.get(name) ?? new Map<string, StoredChild>()
    tables.set(name, table)
    for (const row of written) {
      const rows = row.children?.[i] ?? []
      const parent = keyText(row.values, tableKey(stream.target))
      for (const [key, stored] of table) if (keyText(stored.values, parentKey) === parent) table.delete(key)
      for (const values of rows) table.set(keyText(values, target.primaryKey), { cursor: undefined, values })
    }
  })
}

type Tables = Map<string, Map<string, StoredChild>>

/** as ChildEvolve.ts: the new `columns` of `child`'s rows filled from the parent rows' `record` */
const fill = (tables: Tables, parent: TargetSpec, child: ChildSpec, record: string, columns: ReadonlyArray<Column>) => {
  const table = childTarget(parent, child)
  const rows = tables.get(`${table.schema}.${table.table}`)
  const parents = tables.get(`${parent.schema}.${parent.table}`)
  const elements = elementColumns(parent, child, columns.map((c) => c.name))
  const filled = new Map<string, number>()
  const unfit = new Map<string, number>()
  const count = (counts: Map<string, number>, name: string) => counts.set(name, (counts.get(name) ?? 0) + 1)
  for (const stored of parents?.values() ?? []) {
    const parentKey = Object.fromEntries(tableKey(parent).map((k) => [parentColumn(k), stored.values[k]]))
    for (const element of elements(stored.values[record])) {
      const key = keyText({ ...parentKey, ...element.key }, table.primaryKey)
      const row = rows?.get(key)
      const values: Record<string, unknown> = { ...row?.values }
      for (const [name, value] of element.values) {
        if (Either.isLeft(value)) count(unfit, name)
        else if (value.right !== null && row !== undefined) {
          values[name] = value.right
          count(filled, name)
        }
      }
      if (row !== undefined) rows!.set(key, { ...row, values })
    }
  }
  return { filled, unfit }
}

/**
 * As PgSink's prepare: each child table's shape made, or checked and its missing columns added (filled
 * from the parent's record column `record`, when given); the columns added, or why a table does not fit.
 */
export const prepare = (
  tables: Tables,
  shapes: Map<string, TableShape>,
  parent: TargetSpec,
  record: string | undefined
): Either.Either<ReadonlyArray<SchemaChange>, TargetMismatch> => {
  const changes: Array<SchemaChange> = []
  for (const child of parent.children ?? []) {
    const target = childTarget(parent, child)
    const name = `${target.schema}.${target.table}`
    const shape = shapes.get(name)
    if (shape === undefined) {
      shapes.set(name, { columns: target.columns, primaryKey: target.primaryKey })
      continue
    }
    const rows = tables.get(name) ?? new Map<string, StoredChild>()
    const evolved = evolve(target, shape, rows)
    if (Either.isLeft(evolved)) return Either.left(evolved.left)
    shapes.set(name, evolved.right.shape)
    const added = target.columns.filter((c) => !shape.columns.some((e) => e.name === c.name))
    if (record === undefined || rows.size === 0 || added.length === 0) {
      changes.push(...evolved.right.changes)
      continue
    }
    const { filled, unfit } = fill(tables, parent, child, record, added)
    changes.push(...evolved.right.changes.map((c) => ({ ...c, filled: filled.get(c.column) ?? 0, unfit: unfit.get(c.column) ?? 0 })))
  }
  return Either.right(changes)
}
