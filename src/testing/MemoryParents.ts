/** A child stream's parent rows from the in-memory tables, as PgSink's `parentRows` reads them. */
import { Effect, Option } from "effect"
import { deletedAtColumn, marks } from "../domain/Deletes.js"
import type { ParentRow, ParentSpec } from "../domain/Parent.js"
import type { StoredRow } from "./MemoryDatabase.js"

/** a stored value as Postgres' `to_json(v) #>> '{}'` prints it */
const asText = (value: unknown): string | null =>
  value === null || value === undefined ? null : typeof value === "string" ? value : JSON.stringify(value)

export const parentRows = (
  tables: ReadonlyMap<string, ReadonlyMap<string, StoredRow>>,
  parent: ParentSpec,
  columns: ReadonlyArray<string>,
  after: ParentRow | undefined,
  limit: number
) =>
  Effect.sync(() => {
    const table = tables.get(`${parent.target.schema}.${parent.target.table}`)
    if (table === undefined) return Option.none<ReadonlyArray<ParentRow>>()
    // one parent per primary key (an append table holds a row per version: the last one stored wins)
    const byKey = new Map<string, ParentRow>()
    for (const { values } of table.values()) {
      if (marks(parent.target) && values[deletedAtColumn] != null) continue
      const key = JSON.stringify(parent.target.primaryKey.map((name) => asText(values[name])))
      byKey.set(key, { key, values: Object.fromEntries(columns.map((name) => [name, asText(values[name])])) })
    }
    const rows = [...byKey.values()].filter((row) => after === undefined || row.key > after.key)
    return Option.some(rows.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).slice(0, limit))
  })
