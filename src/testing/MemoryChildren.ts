/**
 * Child tables (`target.children`) in the in-memory database, as PgSink keeps them: a parent's child
 * rows are replaced exactly when its row is inserted or updated (in the same transaction), and a
 * record whose lists changed is a changed row (the `_children` column, here the lists' JSON); a
 * parent row deleted (MemoryDeletes.ts, `action: delete`) takes its child rows with it.
 */
import { childTarget, digestColumn, parentColumn } from "../domain/Children.js"
import { type Row, type StreamSpec, tableKey } from "../domain/StreamSpec.js"

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
