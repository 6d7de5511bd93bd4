/**
 * The bulk path: into a table that was empty when prepared (a first load), pages are COPYed
 * (CopyIn.ts) instead of upserted. The primary key still refuses any duplicate, and the first refusal
 * sends those pages and the rest of the run back to the upsert: the same outcome, 3 × cheaper.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"
import * as Cursor from "../../domain/Cursor.js"
import type { DatabaseError } from "../../domain/Errors.js"
import type { Row, StreamSpec, TargetSpec } from "../../domain/StreamSpec.js"
import { fromSqlError, sqlState, withTransaction } from "../../postgres/Database.js"
import type { Staged, WriteResult } from "../../Sink.js"
import * as CopyIn from "./CopyIn.js"
import { displayName, isDataError, qualifiedName, quoteIdent } from "./Sql.js"

/** COPY's statement: the columns in the order `CopyIn.encode` writes them */
const copySql = (target: TargetSpec): string =>
  `COPY ${qualifiedName(target)} (${CopyIn.columnNames(target).map(quoteIdent).join(", ")}) FROM STDIN`

/** the SQLSTATE of a duplicate key: in a COPY it means the table has the row already */
const uniqueViolation = "23505"

/** a page as COPY text (UTF-8), its rows deduplicated by key */
interface CopyPage extends Staged {
  readonly _tag: "CopyPage"
  readonly kept: number
  readonly payload: Buffer
}

const isCopyPage = (page: Staged): page is CopyPage => "_tag" in page && page._tag === "CopyPage"

interface BulkLoad {
  /** after `prepare`: the stream takes the bulk path if its table can be COPYed into, else not */
  readonly prepared: (stream: StreamSpec, copyable: boolean) => void
  /** a page as COPY text while the stream is on the bulk path; else `undefined` */
  readonly encode: (stream: StreamSpec, rows: ReadonlyArray<Row>) => Staged | undefined
  /** the pages COPYed, all or nothing; `undefined` (nothing written) when they cannot go in that way */
  readonly write: (stream: StreamSpec, pages: ReadonlyArray<Staged>) => Effect.Effect<WriteResult | undefined, DatabaseError>
}

/** `copy`: false never COPYs (the option `PgSinkOptions.copy`) */
export const make = (sql: SqlClient, copy: boolean): BulkLoad => {
  /**
   * streams whose table was empty when prepared: their batches are COPYed until a key is found in the
   * table already (then the upsert takes over for the rest of the run)
   */
  const bulk = new Set<string>()

  const encode = (stream: StreamSpec, rows: ReadonlyArray<Row>): CopyPage | undefined => {
    if (!bulk.has(stream.name)) return undefined
    const kept = Cursor.latestPerKey(rows, Cursor.typeOf(stream))
    const text = CopyIn.encode(stream.target, kept)
    // a Buffer lives outside the JS heap: a batch in flight costs the garbage collector nothing
    return text === undefined
      ? undefined
      : { _tag: "CopyPage", rows: rows.length, holdsRows: true, kept: kept.length, payload: Buffer.from(text) }
  }

  /**
   * One COPY in a savepoint, when every page is COPY text. A key the table has already (another writer, or a key repeated across
   * pages) ends the bulk path for the stream; a value Postgres refuses just sends these pages to
   * `write`, which isolates the row. Either way the savepoint is rolled back: nothing half-written.
   */
  const write = (stream: StreamSpec, pages: ReadonlyArray<Staged>): Effect.Effect<WriteResult | undefined, DatabaseError> =>
    Effect.suspend(() => {
      if (!bulk.has(stream.name) || pages.length === 0 || !pages.every(isCopyPage)) return Effect.succeed(undefined)
      const copies = pages as ReadonlyArray<CopyPage>
      const name = displayName(stream.target)
      const total = copies.reduce((n, p) => n + p.rows, 0)
      const kept = copies.reduce((n, p) => n + p.kept, 0)
      return CopyIn.copy(copySql(stream.target), copies.map((p) => p.payload)).pipe(
        Effect.filterOrFail(
          (copied) => copied === kept,
          (copied) => new SqlError({ cause: new Error(`COPY reported ${copied} rows for ${kept}`) })
        ),
        withTransaction(sql),
        Effect.map((copied): WriteResult | undefined => ({ inserted: copied, updated: 0, unchanged: total - copied, rejected: [] })),
        Effect.catchAll((error) => {
          const state = sqlState(error)
          if (state === uniqueViolation) {
            bulk.delete(stream.name)
            return Effect.as(Effect.logDebug("sink.bulk_off").pipe(Effect.annotateLogs({ table: name })), undefined)
          }
          if (isDataError(state)) return Effect.succeed(undefined)
          return Effect.fail(fromSqlError(error, `writing ${kept} row(s) to ${name}`))
        })
      )
    })

  const prepared = (stream: StreamSpec, copyable: boolean): void => {
    if (copy && copyable) bulk.add(stream.name)
    else bulk.delete(stream.name)
  }

  return { prepared, encode, write }
}
