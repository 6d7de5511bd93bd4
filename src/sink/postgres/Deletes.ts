/**
 * Deletes in Postgres (domain/Deletes.ts says what they mean).
 *
 * - Flagged records: in the batch's transaction, after the upsert of the batch's other rows, one
 *   statement deletes the flagged rows' stored rows (`delete`), or upserts them keeping the first
 *   `_deleted_at` (`mark`); both only where the stored cursor is not newer than the flag's.
 * - A row deleted (`delete`, flagged or missing) takes its child rows (`target.children`) with it: the
 *   same statement deletes them (Children.deleteWith). `mark` leaves them: the parent row stays.
 * - Missing from a complete read: the keys a run writes go to `ferry."seen_<hash>"`, an UNLOGGED
 *   table of the target's key columns made new by `beginSeen` (under the stream's lock: a killed run's
 *   leftover is reset there) and filled in each batch's transaction; at the run's end
 *   `deleteMissing` deletes or marks, in one statement, the target's rows whose key is not in it, and
 *   drops it. The table is a run's working set, not one of Ferry's versioned tables: no migration makes it.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { createHash } from "node:crypto"
import { Effect } from "effect"
import * as Cursor from "../../domain/Cursor.js"
import * as Deletes from "../../domain/Deletes.js"
import type { DatabaseError } from "../../domain/Errors.js"
import * as Json from "../../domain/Json.js"
import { type Row, type StreamSpec, tableKey, type TargetSpec, targetName } from "../../domain/StreamSpec.js"
import { fromSqlError, sqlState, withTransaction } from "../../postgres/Database.js"
import type { WriteResult } from "../../Sink.js"
import * as Children from "./Children.js"
import { displayName, isDataError, qualifiedName, query, quoteIdent } from "./Sql.js"

/** the keys a run of `stream` has written: one table per stream and target, in schema ferry */
const seenTable = (stream: StreamSpec): string =>
  `ferry.${
    quoteIdent(`seen_${createHash("sha256").update(`${stream.name}\u0000${targetName(stream.target)}`).digest("hex").slice(0, 24)}`)
  }`

const keyList = (target: TargetSpec, alias?: string) =>
  tableKey(target).map((c) => (alias === undefined ? "" : `${alias}.`) + quoteIdent(c)).join(", ")

/** a stream whose first load may be COPYed: not when flagged records must be left out (`delete`) */
export const copies = (target: TargetSpec): boolean => Deletes.flagged(target)?.action !== "delete"

/** a new, empty table for the keys this run sees (the one a killed run left is dropped) */
export const beginSeen = (sql: SqlClient, stream: StreamSpec): Effect.Effect<void, DatabaseError> => {
  const seen = seenTable(stream)
  const doing = `making the table of keys seen by ${stream.name}`
  return Effect.zipRight(
    query(sql, `DROP TABLE IF EXISTS ${seen}`, [], doing),
    query(
      sql,
      `CREATE UNLOGGED TABLE ${seen} AS SELECT ${keyList(stream.target)} FROM ${qualifiedName(stream.target)} WITH NO DATA`,
      [],
      doing
    )
  ).pipe(withTransaction(sql), Effect.mapError((e) => "_tag" in e && e._tag === "DatabaseError" ? e : fromSqlError(e, doing)))
}

const recordSeen = (sql: SqlClient, stream: StreamSpec, rows: ReadonlyArray<Row>): Effect.Effect<void, DatabaseError> => {
  if (rows.length === 0) return Effect.void
  const key = tableKey(stream.target)
  const keys = Json.stringify(rows.map((r) => Object.fromEntries(key.map((c) => [c, r.values[c]]))))
  return query(
    sql,
    `INSERT INTO ${seenTable(stream)} SELECT ${keyList(stream.target)} FROM json_populate_recordset(NULL::${
      qualifiedName(stream.target)
    }, $1::json)`,
    [keys],
    `recording the keys seen by ${stream.name}`
  ).pipe(Effect.asVoid)
}

/**
 * The end of a complete read (call in the run's last transaction): the rows whose key the run did not
 * see are deleted, or marked (`_deleted_at` = `at`, if not marked already); the keys are dropped. `at`
 * undefined: nothing is deleted, the keys are dropped.
 */
export const deleteMissing = (sql: SqlClient, stream: StreamSpec, at: string | undefined): Effect.Effect<number, DatabaseError> =>
  Effect.gen(function*() {
    const seen = seenTable(stream)
    const table = qualifiedName(stream.target)
    const name = displayName(stream.target)
    let n = 0
    if (at !== undefined) {
      const unseen = `NOT EXISTS (SELECT FROM ${seen} s WHERE (${keyList(stream.target, "s")}) = (${keyList(stream.target, "t")}))`
      const change = Deletes.marks(stream.target)
        ? `UPDATE ${table} AS t SET ${quoteIdent(Deletes.deletedAtColumn)} = $1::timestamptz
             WHERE t.${quoteIdent(Deletes.deletedAtColumn)} IS NULL AND ${unseen} RETURNING 1`
        : `DELETE FROM ${table} AS t WHERE ${unseen} RETURNING ${keyList(stream.target, "t")}`
      const [row] = yield* query<{ n: number }>(
        sql,
        // `delete` takes the rows' children with them (`mark` keeps both)
        `WITH gone AS (${change})${Deletes.marks(stream.target) ? "" : Children.deleteWith(stream.target, "gone")}
         SELECT count(*)::int AS n FROM gone`,
        Deletes.marks(stream.target) ? [at] : [],
        `deleting the rows of ${name} a complete read did not see`
      )
      n = row!.n
    }
    yield* query(sql, `DROP TABLE IF EXISTS ${seen}`, [], `dropping the keys seen by ${stream.name}`)
    return n
  })

/** the statement for flagged rows: `delete` removes the stored row, `mark` upserts it keeping the first mark */
const flaggedSql = (target: TargetSpec): string => {
  const table = qualifiedName(target)
  const rows = `json_populate_recordset(NULL::${table}, $1::json)`
  const c = target.cursorColumn === undefined ? undefined : quoteIdent(target.cursorColumn)
  const notNewer = (flag: string) => c === undefined ? "" : ` AND (t.${c} IS NULL OR t.${c} <= ${flag}.${c})`
  if (!Deletes.marks(target)) {
    return `WITH gone AS (DELETE FROM ${table} AS t USING ${rows} AS d
      WHERE (${keyList(target, "t")}) = (${keyList(target, "d")})${notNewer("d")} RETURNING ${keyList(target, "t")})${
      Children.deleteWith(target, "gone")
    }
      SELECT 'deleted' AS outcome FROM gone`
  }
  const key = new Set(tableKey(target))
  const cols = target.columns.map((c) => quoteIdent(c.name))
  const mark = quoteIdent(Deletes.deletedAtColumn)
  const rest = target.columns.filter((c) => !key.has(c.name) && c.name !== Deletes.deletedAtColumn).map((c) => quoteIdent(c.name))
  const set = [...rest.map((c) => `${c} = EXCLUDED.${c}`), `${mark} = coalesce(t.${mark}, EXCLUDED.${mark})`].join(", ")
  const differs = rest.length === 0
    ? ""
    : ` OR ROW(${rest.map((c) => `t.${c}`).join(", ")}) IS DISTINCT FROM ROW(${rest.map((c) => `EXCLUDED.${c}`).join(", ")})`
  return `INSERT INTO ${table} AS t (${cols.join(", ")}) SELECT ${cols.join(", ")} FROM ${rows}
    ON CONFLICT (${keyList(target)}) DO UPDATE SET ${set} WHERE (t.${mark} IS NULL${differs})${notNewer("EXCLUDED")}
    RETURNING CASE WHEN xmax = 0 THEN 'inserted' ELSE 'updated' END AS outcome`
}

interface Flagged {
  inserted: number
  updated: number
  deleted: number
  rejected: Array<{ readonly row: Row; readonly reason: string }>
}

const outcomes = (returned: ReadonlyArray<{ outcome: string }>): Flagged => {
  const count = (o: string) => returned.filter((r) => r.outcome === o).length
  return { inserted: count("inserted"), updated: count("updated"), deleted: count("deleted"), rejected: [] }
}

/** the flagged rows in one statement; a value Postgres refuses: row by row, the refused ones set aside */
const writeFlagged = (sql: SqlClient, target: TargetSpec, rows: ReadonlyArray<Row>): Effect.Effect<Flagged, DatabaseError> => {
  const text = flaggedSql(target)
  const attempt = (some: ReadonlyArray<Row>) =>
    sql.unsafe<{ outcome: string }>(text, [Json.stringify(some.map((r) => r.values))]).pipe(withTransaction(sql), Effect.map(outcomes))
  const doing = `applying ${rows.length} delete flag(s) to ${displayName(target)}`
  if (rows.length === 0) return Effect.succeed({ inserted: 0, updated: 0, deleted: 0, rejected: [] })
  return attempt(rows).pipe(Effect.catchAll((error) =>
    !isDataError(sqlState(error)) ? Effect.fail(fromSqlError(error, doing)) : Effect.reduce(
      rows,
      { inserted: 0, updated: 0, deleted: 0, rejected: [] } as Flagged,
      (acc, row) =>
        attempt([row]).pipe(
          Effect.map((one) => ({ ...acc, inserted: acc.inserted + one.inserted, updated: acc.updated + one.updated, deleted: acc.deleted + one.deleted })),
          Effect.catchAll((e) =>
            isDataError(sqlState(e))
              ? Effect.succeed({ ...acc, rejected: [...acc.rejected, { row, reason: fromSqlError(e, "Postgres refused the row").reason }] })
              : Effect.fail(fromSqlError(e, doing))
          )
        )
    )
  ))
}

type Upsert = (stream: StreamSpec, rows: ReadonlyArray<Row>) => Effect.Effect<WriteResult, DatabaseError>

/**
 * `write` for a stream with deletes (the upsert alone for the others): flagged rows are applied after
 * the others, the newest version per key deciding; a complete-read stream records the keys it wrote.
 * Counts: a flagged row that deleted its row is `deleted`; one that marked it, `inserted` or `updated`.
 */
export const writer = (sql: SqlClient, upsert: Upsert): Upsert => (stream, rows) => {
  const target = stream.target
  if (Deletes.missing(target) !== undefined) {
    return Effect.tap(upsert(stream, rows), () => recordSeen(sql, stream, rows))
  }
  if (Deletes.flagged(target) === undefined) return upsert(stream, rows)
  return Effect.gen(function*() {
    const kept = Cursor.latestPerKey(rows, Cursor.typeOf(stream))
    const plain = yield* upsert(stream, kept.filter((r) => r.deleted !== true))
    const flagged = yield* writeFlagged(sql, target, kept.filter((r) => r.deleted === true))
    const inserted = plain.inserted + flagged.inserted
    const updated = plain.updated + flagged.updated
    const rejected = [...plain.rejected, ...flagged.rejected]
    const unchanged = rows.length - inserted - updated - flagged.deleted - rejected.length
    return { inserted, updated, unchanged, deleted: flagged.deleted, rejected }
  })
}
