/**
 * Schema evolution of child tables (`target.children`), as Evolve.ts does it for the parent: the
 * columns a child lists and its table lacks are added in prepare's transaction, under the prepare lock
 * (Evolve.addColumns: one `schema.change` each, naming the child table).
 *
 * The child table keeps no record of its own, but its parent's record column (`target.record`) holds
 * the whole record, list included: when the parent has one, each parent's list is read again from its
 * stored record, each element's new columns converted by the stream's own decoder
 * (Children.elementColumns), and written to the child row of the same key (the parent's stored key,
 * then the element's `primaryKey` or position), matched in Postgres in its typed form through
 * `json_populate_record`, as the upsert writes a child row. A value the decoder refuses is left NULL
 * (`unfit`); a row Postgres refuses keeps NULL (`unfit` too). Without a parent record column the new
 * columns stay NULL until a run writes the parent again (`filled` undefined: the `--full-refresh` hint).
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect, Either } from "effect"
import { childTarget, elementColumns, parentColumn } from "../../domain/Children.js"
import type { DatabaseError } from "../../domain/Errors.js"
import * as Json from "../../domain/Json.js"
import { type ChildSpec, type Column, tableKey, type TargetSpec } from "../../domain/Target.js"
import { fromSqlError, sqlState, withTransaction } from "../../postgres/Database.js"
import type { SchemaChange } from "../../Sink.js"
import * as Evolve from "./Evolve.js"
import { displayName, isDataError, qualifiedName, query, quoteIdent } from "./Sql.js"

/** parents read per FETCH */
const chunkRows = 1000

const cursorName = "ferry_fill_children"

/** one child row to fill: `i` its number in the chunk, `v` its key and the values */
interface Item {
  readonly i: number
  readonly v: Record<string, unknown>
}

/**
 * Adds `missing` to the child table of `child` (call in prepare's transaction, holding the prepare
 * lock); fills them from the parent's record column `record` when the child table has rows.
 */
export const addColumns = (
  sql: SqlClient,
  parent: TargetSpec,
  child: ChildSpec,
  missing: ReadonlyArray<Column>,
  empty: boolean,
  record: string | undefined
): Effect.Effect<ReadonlyArray<SchemaChange>, DatabaseError> =>
  Effect.gen(function*() {
    const changes = yield* Evolve.addColumns(sql, childTarget(parent, child), missing, empty)
    if (empty || record === undefined) return changes
    const { filled, unfit } = yield* fill(sql, parent, child, record, missing)
    return changes.map((c) => ({ ...c, filled: filled.get(c.column) ?? 0, unfit: unfit.get(c.column) ?? 0 }))
  })

/** the UPDATE of a chunk, `$1` a JSON array of items: the child rows updated, by their `i` */
const updateSql = (table: TargetSpec, columns: ReadonlyArray<Column>): string => {
  const name = qualifiedName(table)
  const set = columns.map((c) => `${quoteIdent(c.name)} = (s.r).${quoteIdent(c.name)}`).join(", ")
  const key = table.primaryKey.map(quoteIdent)
  return `UPDATE ${name} AS c SET ${set}
    FROM (SELECT (e->>'i')::int AS i, json_populate_record(NULL::${name}, e->'v') AS r
          FROM json_array_elements($1::json) AS e) AS s
    WHERE (${key.map((k) => `c.${k}`).join(", ")}) = (${key.map((k) => `(s.r).${k}`).join(", ")})
    RETURNING s.i`
}

const fill = (sql: SqlClient, parent: TargetSpec, child: ChildSpec, record: string, columns: ReadonlyArray<Column>) =>
  Effect.gen(function*() {
    const table = childTarget(parent, child)
    const doing = `filling the new columns of ${displayName(table)} from ${displayName(parent)}.${record}`
    const elements = elementColumns(parent, child, columns.map((c) => c.name))
    const update = updateSql(table, columns)
    const filled = new Map<string, number>()
    const unfit = new Map<string, number>()
    const count = (counts: Map<string, number>, name: string) => counts.set(name, (counts.get(name) ?? 0) + 1)
    const key = tableKey(parent).map((k) => `'${parentColumn(k).replace(/'/g, "''")}', p.${quoteIdent(k)}`).join(", ")
    yield* query(
      sql,
      `DECLARE ${cursorName} NO SCROLL CURSOR FOR SELECT json_build_object(${key})::text AS key,
         p.${quoteIdent(record)}::text AS record FROM ${qualifiedName(parent)} AS p WHERE p.${quoteIdent(record)} IS NOT NULL`,
      [],
      doing
    )
    for (;;) {
      const rows = yield* query<{ key: string; record: string }>(sql, `FETCH ${chunkRows} FROM ${cursorName}`, [], doing)
      if (rows.length === 0) break
      const items: Array<Item> = []
      for (const row of rows) {
        const parentKey = Json.parse(row.key) as Record<string, unknown>
        for (const element of elements(Json.parse(row.record))) {
          const v: Record<string, unknown> = { ...parentKey, ...element.key }
          let any = false
          for (const [name, value] of element.values) {
            if (Either.isLeft(value)) count(unfit, name)
            else if (value.right !== null) {
              v[name] = value.right
              any = true
            }
          }
          if (any) items.push({ i: items.length, v })
        }
      }
      const { updated, refused } = yield* writeChunk(sql, update, items, doing)
      for (const item of items) {
        const counts = refused.has(item.i) ? unfit : updated.has(item.i) ? filled : undefined
        if (counts !== undefined) for (const c of columns) if (c.name in item.v) count(counts, c.name)
      }
    }
    yield* query(sql, `CLOSE ${cursorName}`, [], doing)
    return { filled, unfit }
  })

/**
 * The chunk in one statement, in a savepoint; a value Postgres refuses sends the chunk row by row, and
 * such a row keeps NULL. The items updated (an element whose child row is not there updates nothing),
 * and those refused.
 */
const writeChunk = (sql: SqlClient, update: string, items: ReadonlyArray<Item>, doing: string) => {
  const updated = new Set<number>()
  const refused = new Set<number>()
  const attempt = (chunk: ReadonlyArray<Item>) =>
    sql.unsafe<{ i: number }>(update, [Json.stringify(chunk)]).pipe(
      withTransaction(sql),
      Effect.tap((rows) => Effect.sync(() => rows.forEach((r) => updated.add(r.i))))
    )
  const result = { updated, refused }
  if (items.length === 0) return Effect.succeed(result)
  return attempt(items).pipe(
    Effect.catchAll((error) =>
      isDataError(sqlState(error))
        ? Effect.forEach(items, (item) =>
          attempt([item]).pipe(
            Effect.catchAll((e) => isDataError(sqlState(e)) ? Effect.sync(() => refused.add(item.i)) : Effect.fail(e))
          ), { discard: true })
        : Effect.fail(error)
    ),
    Effect.as(result),
    Effect.mapError((e) => fromSqlError(e, doing))
  )
}
