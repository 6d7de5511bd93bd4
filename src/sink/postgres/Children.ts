/**
 * Child tables (`target.children`, domain/Children.ts) in Postgres.
 *
 * - prepare: each child table is created or verified as the parent is (TargetTable.ts), the columns it
 *   lacks added and filled from the parent's record column (ChildEvolve.ts);
 * - write: the parent's upsert returns the key of every row it inserted or updated (an unchanged row,
 *   or an older version it skipped, returns nothing); in the same savepoint, the child rows of exactly
 *   those parents are deleted and the batch's new ones inserted. The keys are matched in Postgres, in
 *   their typed form (`json_build_object` of the stored key, read back by `json_populate_recordset`):
 *   never by comparing texts in JavaScript;
 * - the parent's `_children` column holds a digest of a record's child rows (`digested`), so that a
 *   record whose lists changed is an update even when its own columns did not;
 * - deletes (Deletes.ts, `action: delete`): the statement that deletes parent rows deletes their child
 *   rows too (`deleteWith`), in the same transaction.
 *
 * A stream with children never takes the COPY path (PgSink): its first load is upserted.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"
import { createHash } from "node:crypto"
import { childTarget, digestColumn, parentColumn } from "../../domain/Children.js"
import { type DatabaseError, TargetMismatch } from "../../domain/Errors.js"
import * as Json from "../../domain/Json.js"
import { type Row, type StreamSpec, tableKey, type TargetSpec } from "../../domain/StreamSpec.js"
import { displayName, qualifiedName, query, quoteIdent } from "./Sql.js"
import type { SchemaChange } from "../../Sink.js"
import * as ChildEvolve from "./ChildEvolve.js"
import * as TargetTable from "./TargetTable.js"

export const hasChildren = (target: TargetSpec): boolean => (target.children?.length ?? 0) > 0

/** the rows with their `_children` digest set; the rows themselves for a stream without children */
export const digested = (stream: StreamSpec, rows: ReadonlyArray<Row>): ReadonlyArray<Row> => {
  if (!hasChildren(stream.target)) return rows
  return rows.map((row) => {
    const digest = createHash("sha256").update(Json.stringify(row.children ?? []) ?? "").digest("base64url")
    return { ...row, values: { ...row.values, [digestColumn]: digest } }
  })
}

const literal = (text: string): string => `'${text.replace(/'/g, "''")}'`

/** the upsert's RETURNING, with the written row's key (as the child tables name it) when there are children */
export const returning = (target: TargetSpec, alias: string): string => {
  if (!hasChildren(target)) return ""
  const fields = tableKey(target).map((name) => `${literal(parentColumn(name))}, ${alias}.${quoteIdent(name)}`)
  return `, json_build_object(${fields.join(", ")})::text AS ferry_key`
}

/**
 * After the upsert of `rows` returned `returned` (call in the upsert's savepoint): the child rows of
 * each written parent are replaced by its new ones. Fails with the statement's SqlError (the upsert
 * bisects a data error as its own: a parent is never written without its children).
 */
export const replace = (
  sql: SqlClient,
  target: TargetSpec,
  returned: ReadonlyArray<{ readonly ferry_key?: string }>,
  rows: ReadonlyArray<Row>
): Effect.Effect<void, SqlError> => {
  const keys = returned.flatMap((r) => r.ferry_key === undefined ? [] : [r.ferry_key])
  if (keys.length === 0) return Effect.void
  const written = `[${keys.join(",")}]`
  return Effect.forEach(target.children ?? [], (child, i) => {
    const table = childTarget(target, child)
    const name = qualifiedName(table)
    const parent = tableKey(target).map((k) => quoteIdent(parentColumn(k)))
    const match = parent.map((c) => `c.${c} = k.${c}`).join(" AND ")
    const keysOf = `json_populate_recordset(NULL::${name}, $1::json)`
    const childRows = rows.flatMap((row) => row.children?.[i] ?? [])
    const cols = table.columns.map((c) => quoteIdent(c.name)).join(", ")
    const remove = sql.unsafe(`DELETE FROM ${name} AS c USING ${keysOf} AS k WHERE ${match}`, [written])
    if (childRows.length === 0) return remove
    const insert = sql.unsafe(
      `INSERT INTO ${name} (${cols}) SELECT ${cols} FROM json_populate_recordset(NULL::${name}, $2::json) AS c
       WHERE EXISTS (SELECT FROM ${keysOf} AS k WHERE ${match})`,
      [written, Json.stringify(childRows)]
    )
    return Effect.zipRight(remove, insert)
  }, { discard: true })
}

/**
 * For a statement deleting parent rows in a CTE named `gone` that returns their key columns: the CTEs
 * that delete those parents' child rows in the same statement ("" without children). The keys are
 * compared as Postgres types them (`parent_<key>` has the parent column's type).
 */
export const deleteWith = (target: TargetSpec, gone: string): string =>
  (target.children ?? []).map((child, i) => {
    const match = tableKey(target).map((k) => `c.${quoteIdent(parentColumn(k))} = g.${quoteIdent(k)}`).join(" AND ")
    return `, ferry_children_${i} AS (DELETE FROM ${qualifiedName(childTarget(target, child))} AS c USING ${gone} AS g WHERE ${match})`
  }).join("")

/**
 * Each child table created (only when `locked`: the prepare lock is held) or verified, the columns it
 * lacks added (ChildEvolve.ts: filled from the parent's record column `record`, when given). Undefined
 * when something is to create or add and the prepare lock is not held: the caller takes it and asks again.
 */
export const prepare = (
  sql: SqlClient,
  target: TargetSpec,
  locked: boolean,
  record: string | undefined
): Effect.Effect<ReadonlyArray<SchemaChange> | undefined, DatabaseError | TargetMismatch> =>
  Effect.gen(function*() {
    const changes: Array<SchemaChange> = []
    for (const child of target.children ?? []) {
      const table = childTarget(target, child)
      const name = displayName(table)
      const invalid = TargetTable.specProblems(table)
      if (invalid.length > 0) return yield* new TargetMismatch({ table: name, problems: invalid })
      const [found] = yield* query<{ kind: string | null }>(
        sql,
        `SELECT c.relkind::text AS kind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relname = $2`,
        [table.schema, table.table],
        `looking up table ${name}`
      )
      if (found === undefined) {
        if (!locked) return undefined
        yield* TargetTable.create(sql, table)
      } else if (found.kind !== "r" && found.kind !== "p") {
        return yield* new TargetMismatch({ table: name, problems: [`${name} exists but is not a table`] })
      } else {
        const { empty, missing } = yield* TargetTable.verify(sql, table)
        if (missing.length > 0 && !locked) return undefined
        if (missing.length > 0) changes.push(...(yield* ChildEvolve.addColumns(sql, target, child, missing, empty, record)))
      }
    }
    return changes
  })
