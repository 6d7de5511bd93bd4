/**
 * A child stream's parent rows (`domain/Parent.ts`), read from the parent's table a chunk at a time in
 * primary key order (keyset: each chunk starts after the last key of the one before), so 10,000 parent
 * rows are a few short queries on one connection, never all in memory. Values come as their JSON text
 * (`to_json(v) #>> '{}'`): a timestamp in ISO 8601, a number as written, text as it is.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect, Option } from "effect"
import { deletedAtColumn, marks } from "../../domain/Deletes.js"
import type { ParentRow, ParentSpec } from "../../domain/Parent.js"
import { displayName, qualifiedName, query, quoteIdent } from "./Sql.js"

export const parentRows = (
  sql: SqlClient,
  parent: ParentSpec,
  columns: ReadonlyArray<string>,
  after: ParentRow | undefined,
  limit: number
) =>
  Effect.gen(function*() {
    const target = parent.target
    const doing = `reading the rows of ${displayName(target)}, the table of parent stream ${parent.stream}`
    const [found] = yield* query<{ present: boolean }>(sql, `SELECT to_regclass($1) IS NOT NULL AS present`, [qualifiedName(target)], doing)
    if (found?.present !== true) return Option.none<ReadonlyArray<ParentRow>>()
    const key = target.primaryKey
    const typeOf = (name: string) => target.columns.findLast((c) => c.name === name)?.type ?? "text"
    const text = (name: string) => `to_json(${quoteIdent(name)}) #>> '{}'`
    const select = [...key.map((name, i) => `${text(name)} AS k${i}`), ...columns.map((name, i) => `${text(name)} AS c${i}`)]
    const conditions = [
      ...(after === undefined ? [] : [
        `(${key.map(quoteIdent).join(", ")}) > (${key.map((name, i) => `$${i + 1}::${typeOf(name)}`).join(", ")})`
      ]),
      ...(marks(target) ? [`${quoteIdent(deletedAtColumn)} IS NULL`] : [])
    ]
    // an append table holds a row per version: one parent per key (its latest version, by the cursor)
    const latest = target.write === "append" && target.cursorColumn !== undefined ? `, ${quoteIdent(target.cursorColumn)} DESC` : ""
    const rows = yield* query<Record<string, string | null>>(
      sql,
      `SELECT DISTINCT ON (${key.map(quoteIdent).join(", ")}) ${select.join(", ")} FROM ${qualifiedName(target)}
       ${conditions.length === 0 ? "" : `WHERE ${conditions.join(" AND ")}`}
       ORDER BY ${key.map(quoteIdent).join(", ")}${latest} LIMIT ${limit}`,
      after === undefined ? [] : JSON.parse(after.key) as ReadonlyArray<string>,
      doing
    )
    return Option.some(rows.map((row): ParentRow => ({
      key: JSON.stringify(key.map((_, i) => row[`k${i}`])),
      values: Object.fromEntries(columns.map((name, i) => [name, row[`c${i}`] ?? null]))
    })))
  })
