/**
 * The upsert: one INSERT ... ON CONFLICT per chunk with all rows in ONE json parameter (no 65,535
 * bind-parameter limit). Unchanged rows are not rewritten (no new row version), an older cursor never
 * overwrites a newer one. Rows Postgres refuses are found by bisecting the chunk inside savepoints and
 * handed back as `rejected`.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect } from "effect"
import * as Cursor from "../../domain/Cursor.js"
import type { DatabaseError } from "../../domain/Errors.js"
import * as Json from "../../domain/Json.js"
import { type Row, type StreamSpec, tableKey, type TargetSpec } from "../../domain/StreamSpec.js"
import { fromSqlError, sqlState, withTransaction } from "../../postgres/Database.js"
import type { WriteResult } from "../../Sink.js"
import * as Children from "./Children.js"
import { displayName, isDataError, qualifiedName, quoteIdent } from "./Sql.js"

/**
 * INSERT ... SELECT FROM json_populate_recordset($1) ON CONFLICT DO UPDATE, updating only when
 * something differs and the stored cursor is not newer; for `append`, ON CONFLICT DO NOTHING. `xmax = 0` tells an insert from an update.
 * `json`, not `jsonb`: Postgres parses it lazily field by field instead of building a jsonb value
 * first, which took a third longer here (docs/PERFORMANCE.md).
 */
const upsertSql = (target: TargetSpec): string => {
  const table = qualifiedName(target)
  const alias = quoteIdent("ferry_target")
  const cols = target.columns.map((c) => quoteIdent(c.name))
  const key = tableKey(target)
  const pk = key.map(quoteIdent)
  const pkSet = new Set(key)
  const rest = target.columns.filter((c) => !pkSet.has(c.name)).map((c) => quoteIdent(c.name))
  const insert = `INSERT INTO ${table} AS ${alias} (${cols.join(", ")}) ` +
    `SELECT ${cols.join(", ")} FROM json_populate_recordset(NULL::${table}, $1::json)`
  // append: a version (key + cursor) is written once; read again, it is unchanged
  if (rest.length === 0 || target.write === "append") {
    return `${insert} ON CONFLICT (${pk.join(", ")}) DO NOTHING RETURNING (xmax = 0) AS inserted${Children.returning(target, alias)}`
  }
  const set = rest.map((c) => `${c} = EXCLUDED.${c}`).join(", ")
  const mine = rest.map((c) => `${alias}.${c}`).join(", ")
  const theirs = rest.map((c) => `EXCLUDED.${c}`).join(", ")
  let where = `ROW(${mine}) IS DISTINCT FROM ROW(${theirs})`
  if (target.cursorColumn !== undefined) {
    const cur = quoteIdent(target.cursorColumn)
    where += ` AND (${alias}.${cur} IS NULL OR ${alias}.${cur} <= EXCLUDED.${cur})`
  }
  return `${insert} ON CONFLICT (${pk.join(", ")}) DO UPDATE SET ${set} WHERE ${where} ` +
    `RETURNING (xmax = 0) AS inserted${Children.returning(target, alias)}`
}

interface Encoded {
  readonly row: Row
  readonly json: string
  readonly bytes: number
}

const chunkBySize = (items: ReadonlyArray<Encoded>, maxBytes: number): Array<Array<Encoded>> => {
  const chunks: Array<Array<Encoded>> = []
  let current: Array<Encoded> = []
  let size = 2
  for (const item of items) {
    if (current.length > 0 && size + item.bytes + 1 > maxBytes) {
      chunks.push(current)
      current = []
      size = 2
    }
    current.push(item)
    size += item.bytes + 1
  }
  if (current.length > 0) chunks.push(current)
  return chunks
}

interface ChunkResult {
  inserted: number
  updated: number
  rejected: Array<{ readonly row: Row; readonly reason: string }>
}

/** what one statement's RETURNING says: `xmax = 0` rows were inserted, the others updated */
const counted = (returned: ReadonlyArray<{ inserted: boolean }>): ChunkResult => {
  const inserted = returned.filter((r) => r.inserted).length
  return { inserted, updated: returned.length - inserted, rejected: [] }
}

const addChunks = (a: ChunkResult, b: ChunkResult): ChunkResult => ({
  inserted: a.inserted + b.inserted,
  updated: a.updated + b.updated,
  rejected: [...a.rejected, ...b.rejected]
})

/** every input row is inserted, updated, rejected, or else unchanged (same content, older, or a duplicate) */
const writeResult = (total: number, result: ChunkResult): WriteResult => ({
  inserted: result.inserted,
  updated: result.updated,
  unchanged: total - result.inserted - result.updated - result.rejected.length,
  rejected: result.rejected
})

/** each row's JSON; a row whose values are not JSON is rejected before any statement */
const encodeRows = (kept: ReadonlyArray<Row>): { readonly encoded: Array<Encoded>; readonly unencodable: ChunkResult } => {
  const unencodable: ChunkResult = { inserted: 0, updated: 0, rejected: [] }
  const encoded: Array<Encoded> = []
  for (const row of kept) {
    let json: string | undefined
    try {
      json = Json.stringify(row.values)
      if (json === undefined) throw new Error("no JSON")
    } catch (cause) {
      unencodable.rejected.push({ row, reason: `the row's values are not JSON: ${String(cause)}` })
      continue
    }
    encoded.push({ row, json, bytes: Buffer.byteLength(json) })
  }
  return { encoded, unencodable }
}

/** the upsert of `stream`'s rows, for a Sink's `write` (call inside a transaction) */
export const writer = (sql: SqlClient, maxChunkBytes: number) => {
  // one statement; with child tables, the written parents' child rows replaced after it (Children.ts)
  const statement = (target: TargetSpec, text: string, json: string, rows: () => ReadonlyArray<Row>) =>
    Children.hasChildren(target)
      ? sql.unsafe<{ inserted: boolean; ferry_key?: string }>(text, [json]).pipe(
        Effect.tap((returned) => Children.replace(sql, target, returned, rows()))
      )
      : sql.unsafe<{ inserted: boolean }>(text, [json])

  const writeRowByRow = (
    target: TargetSpec,
    kept: ReadonlyArray<Row>,
    name: string,
    text: string
  ): Effect.Effect<ChunkResult, DatabaseError> => {
    const { encoded, unencodable } = encodeRows(kept)
    // each attempt runs in its own savepoint, so a refused chunk leaves the outer transaction usable
    const attempt = (items: ReadonlyArray<Encoded>): Effect.Effect<ChunkResult, DatabaseError> =>
      statement(target, text, `[${items.map((i) => i.json).join(",")}]`, () => items.map((i) => i.row)).pipe(
        withTransaction(sql),
        Effect.map(counted),
        Effect.catchAll((error) => {
          if (!isDataError(sqlState(error))) {
            return Effect.fail(fromSqlError(error, `writing ${items.length} row(s) to ${name}`))
          }
          if (items.length === 1) {
            const reason = fromSqlError(error, "Postgres refused the row").reason
            return Effect.succeed<ChunkResult>({ inserted: 0, updated: 0, rejected: [{ row: items[0].row, reason }] })
          }
          // bisect: the halves that Postgres accepts are written, the refused rows are isolated
          const mid = Math.ceil(items.length / 2)
          return Effect.zipWith(attempt(items.slice(0, mid)), attempt(items.slice(mid)), addChunks)
        })
      )
    return Effect.forEach(chunkBySize(encoded, maxChunkBytes), attempt, { discard: false }).pipe(
      Effect.map((results) => results.reduce(addChunks, unencodable))
    )
  }

  const upsert = (stream: StreamSpec, total: number, kept: ReadonlyArray<Row>): Effect.Effect<WriteResult, DatabaseError> => {
    const name = displayName(stream.target)
    const text = upsertSql(stream.target)
    // The common case first: the whole batch as one JSON text, stringified in one call (half the CPU
    // of row by row). A batch that is too big, not JSON, or refused by Postgres takes the row-by-row
    // path, which chunks by size and isolates refused rows. Json.stringify writes a long number's
    // exact digits (a number inside jsonb; bigint and numeric values are already text).
    let whole: string | undefined
    try {
      whole = Json.stringify(kept.map((row) => row.values))
    } catch {
      whole = undefined
    }
    const rowByRow = Effect.suspend(() => writeRowByRow(stream.target, kept, name, text)).pipe(
      Effect.map((result) => writeResult(total, result))
    )
    if (whole === undefined || kept.length === 0 || Buffer.byteLength(whole) > maxChunkBytes) return rowByRow
    return statement(stream.target, text, whole, () => kept).pipe(
      withTransaction(sql),
      Effect.map((returned) => writeResult(total, counted(returned))),
      Effect.catchAll((error) =>
        isDataError(sqlState(error))
          ? rowByRow
          : Effect.fail(fromSqlError(error, `writing ${kept.length} row(s) to ${name}`))
      )
    )
  }

  // one version per key: the newest by the cursor
  return (stream: StreamSpec, rows: ReadonlyArray<Row>): Effect.Effect<WriteResult, DatabaseError> =>
    Effect.suspend(() => upsert(stream, rows.length, Cursor.latestPerKey(rows, Cursor.typeOf(stream))))
}
