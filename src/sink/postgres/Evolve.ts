/**
 * Schema evolution, additive only: the columns a stream lists and its table lacks are added (in
 * prepare's transaction, under the prepare lock), and the rows already there are filled from the
 * table's record column (`target.record`) when it has one.
 *
 * The fill reads each kept record and converts it with the stream's own decoder (RowDecoder.columnValue),
 * then writes the values through `json_populate_record`, as the upsert writes a new row: a column is
 * filled exactly as a run writing that record again would fill it, for every type (a cast in SQL would
 * differ: `jsonb ->> 'n'` spells `1.50` where the decoder sends `1.5`, takes `"12"` for an integer the
 * decoder refuses, reads a `timestamp` with an offset differently). The records are read through a
 * cursor in chunks, so a large table is never in memory at once. The ALTER TABLE holds the table's
 * ACCESS EXCLUSIVE lock until the transaction ends: nobody writes rows while they are filled.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect, Either } from "effect"
import type { DatabaseError } from "../../domain/Errors.js"
import * as Json from "../../domain/Json.js"
import { columnValue } from "../../domain/RowDecoder.js"
import type { Column, TargetSpec } from "../../domain/StreamSpec.js"
import { fromSqlError, sqlState, withTransaction } from "../../postgres/Database.js"
import type { SchemaChange } from "../../Sink.js"
import { displayName, isDataError, qualifiedName, query, quoteIdent } from "./Sql.js"
import { addColumnSql } from "./TargetTable.js"

/** records read per FETCH */
const chunkRows = 1000

const cursorName = "ferry_fill"

/**
 * Adds `missing` to the table (call in prepare's transaction, holding the prepare lock), then fills
 * them from the record column when the table has rows and keeps one.
 */
export const addColumns = (
  sql: SqlClient,
  target: TargetSpec,
  missing: ReadonlyArray<Column>,
  empty: boolean
): Effect.Effect<ReadonlyArray<SchemaChange>, DatabaseError> =>
  Effect.gen(function*() {
    const table = displayName(target)
    for (const column of missing) {
      yield* query(sql, addColumnSql(target, column), [], `adding column ${column.name} to ${table}`)
    }
    const record = target.record
    const canFill = record !== undefined && !missing.some((c) => c.name === record)
    const fill = empty
      ? { filled: new Map<string, number>(), unfit: new Map<string, number>() }
      : canFill
      ? yield* fillFromRecords(sql, target, record, missing)
      : undefined
    return missing.map((c): SchemaChange => ({
      table,
      column: c.name,
      type: c.type,
      filled: fill === undefined ? undefined : fill.filled.get(c.name) ?? 0,
      unfit: fill?.unfit.get(c.name) ?? 0
    }))
  })

/** the UPDATE of a chunk: `$1` a JSON array of `{ tid, v: { column: value } }` */
const updateSql = (target: TargetSpec, columns: ReadonlyArray<Column>): string => {
  const table = qualifiedName(target)
  const set = columns.map((c) => `${quoteIdent(c.name)} = (s.r).${quoteIdent(c.name)}`).join(", ")
  return `UPDATE ${table} AS f SET ${set}
    FROM (SELECT (e->>'tid')::tid AS tid, json_populate_record(NULL::${table}, e->'v') AS r
          FROM json_array_elements($1::json) AS e) AS s
    WHERE f.ctid = s.tid`
}

interface Item {
  readonly tid: string
  readonly v: Record<string, unknown>
}

const fillFromRecords = (sql: SqlClient, target: TargetSpec, record: string, columns: ReadonlyArray<Column>) =>
  Effect.gen(function*() {
    const table = displayName(target)
    const doing = `filling the new columns of ${table} from ${record}`
    const readers = columns.map((c) => [c.name, columnValue(target, c.name)] as const)
    const update = updateSql(target, columns)
    const unfit = new Map<string, number>()
    const filled = new Map<string, number>()
    const count = (counts: Map<string, number>, name: string, n = 1) => counts.set(name, (counts.get(name) ?? 0) + n)
    yield* query(
      sql,
      `DECLARE ${cursorName} NO SCROLL CURSOR FOR SELECT ctid::text AS tid, ${quoteIdent(record)}::text AS record
       FROM ${qualifiedName(target)} WHERE ${quoteIdent(record)} IS NOT NULL`,
      [],
      doing
    )
    for (;;) {
      const rows = yield* query<{ tid: string; record: string }>(sql, `FETCH ${chunkRows} FROM ${cursorName}`, [], doing)
      if (rows.length === 0) break
      const items: Array<Item> = []
      for (const row of rows) {
        const parsed = Json.parse(row.record)
        const v: Record<string, unknown> = {}
        let any = false
        for (const [name, read] of readers) {
          const value = read(parsed)
          if (Either.isLeft(value)) count(unfit, name)
          else if (value.right !== null) {
            v[name] = value.right
            any = true
          }
        }
        if (any) items.push({ tid: row.tid, v })
      }
      const refused = yield* writeChunk(sql, update, items, doing)
      for (const item of items) {
        for (const name in item.v) count(refused.has(item) ? unfit : filled, name)
      }
    }
    yield* query(sql, `CLOSE ${cursorName}`, [], doing)
    return { filled, unfit }
  })

/**
 * The chunk in one statement, in a savepoint; a value Postgres refuses (a date the decoder let through,
 * `2023-02-30`) sends the chunk row by row, and such a row keeps NULL. The rows refused.
 */
const writeChunk = (
  sql: SqlClient,
  update: string,
  items: ReadonlyArray<Item>,
  doing: string
): Effect.Effect<ReadonlySet<Item>, DatabaseError> => {
  const none: ReadonlySet<Item> = new Set()
  if (items.length === 0) return Effect.succeed(none)
  const attempt = (chunk: ReadonlyArray<Item>) => sql.unsafe(update, [Json.stringify(chunk)]).pipe(withTransaction(sql))
  return attempt(items).pipe(
    Effect.as(none),
    Effect.catchAll((error) =>
      isDataError(sqlState(error))
        ? Effect.reduce(items, new Set<Item>(), (refused, item) =>
          attempt([item]).pipe(
            Effect.as(refused),
            Effect.catchAll((e) => isDataError(sqlState(e)) ? Effect.succeed(refused.add(item)) : Effect.fail(e))
          ))
        : Effect.fail(error)
    ),
    Effect.mapError((e) => fromSqlError(e, doing))
  )
}
