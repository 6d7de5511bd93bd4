/**
 * `write: replace`: a run loads the whole source into a staging table beside the target (same
 * schema, same columns and key, UNLOGGED: it is thrown away anyway), then, at the end of a complete
 * read, one transaction empties the target and fills it from the staging table (TRUNCATE + INSERT
 * ... SELECT), and drops the staging table.
 *
 * The target itself is never dropped or renamed: its grants, the views on it, its indexes, triggers
 * and comments stay. Readers see the old rows until that transaction commits, then the new ones
 * (TRUNCATE's lock makes a reader wait for the commit rather than see an empty table). A run that
 * fails, is interrupted or killed before that commit leaves the target as it was; its staging table
 * stays until the next run of the stream drops it (`begin`, under the stream's lock).
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { createHash } from "node:crypto"
import { Effect } from "effect"
import { type DatabaseError, TargetMismatch } from "../../domain/Errors.js"
import { fromSqlError, isSqlError, withTransaction } from "../../postgres/Database.js"
import type { StreamSpec, TargetSpec } from "../../domain/StreamSpec.js"
import * as Failpoint from "../../lib/Failpoint.js"
import * as CopyIn from "./CopyIn.js"
import { displayName, qualifiedName, query, quoteIdent } from "./Sql.js"
import * as TargetTable from "./TargetTable.js"

/** what Ferry writes on its staging tables, and checks before it drops one */
const marker = "ferry: staging table of write: replace"

const suffix = "__ferry_staging"

/** Postgres truncates names past 63 bytes: a long table's staging name keeps a hash of the whole name */
const stagingTable = (table: string): string => {
  const name = `${table}${suffix}`
  if (Buffer.byteLength(name) <= 63) return name
  const hash = createHash("sha256").update(table).digest("hex").slice(0, 8)
  let head = table
  while (Buffer.byteLength(`${head}_${hash}${suffix}`) > 63) head = head.slice(0, -1)
  return `${head}_${hash}${suffix}`
}

const stagingTargets = new WeakMap<TargetSpec, TargetSpec>()
const stagingStreams = new WeakMap<StreamSpec, StreamSpec>()

/** the staging table: the target's columns and key, another name (the same object each time: COPY caches its layout) */
const stagingOf = (target: TargetSpec): TargetSpec => {
  let staging = stagingTargets.get(target)
  if (staging === undefined) {
    staging = { ...target, table: stagingTable(target.table) }
    stagingTargets.set(target, staging)
  }
  return staging
}

/** the stream as its writes see it: a replace stream writes into its staging table */
export const into = (stream: StreamSpec): StreamSpec => {
  if (stream.target.write !== "replace") return stream
  let staged = stagingStreams.get(stream)
  if (staged === undefined) {
    staged = { ...stream, target: stagingOf(stream.target) }
    stagingStreams.set(stream, staged)
  }
  return staged
}

/**
 * A new, empty staging table (the one an earlier run left is dropped: the caller holds the stream's
 * lock). A table of that name that Ferry did not create is never dropped: 78. Says whether COPY can
 * reach it (not on PGlite).
 */
export const begin = (sql: SqlClient, target: TargetSpec): Effect.Effect<{ readonly copyable: boolean }, DatabaseError | TargetMismatch> =>
  Effect.gen(function*() {
    const staging = stagingOf(target)
    const name = qualifiedName(staging)
    const [found] = yield* query<{ pglite: boolean; present: boolean; note: string | null }>(
      sql,
      `SELECT version() LIKE '%PGlite%' AS pglite, to_regclass($1) IS NOT NULL AS present,
              obj_description(to_regclass($1), 'pg_class') AS note`,
      [name],
      `looking up table ${displayName(staging)}`
    )
    if (found!.present && found!.note !== marker) {
      return yield* new TargetMismatch({
        table: displayName(staging),
        problems: [
          `write: replace of ${displayName(target)} loads into this table and it is not Ferry's: rename it, or drop it: DROP TABLE ${name};`
        ]
      })
    }
    yield* query(sql, `DROP TABLE IF EXISTS ${name}`, [], `dropping table ${displayName(staging)}`)
    yield* query(sql, `CREATE UNLOGGED TABLE ${name} ${TargetTable.definition(staging)}`, [], `creating table ${displayName(staging)}`)
    // a constant: COMMENT takes no bind parameter
    yield* query(sql, `COMMENT ON TABLE ${name} IS '${marker}'`, [], `creating table ${displayName(staging)}`)
    return { copyable: !found!.pglite }
  }).pipe(
    withTransaction(sql),
    Effect.catchIf(isSqlError, (e) => Effect.fail(fromSqlError(e, `creating the staging table of ${displayName(target)}`)))
  )

/**
 * The swap (call inside the run's last transaction): the target's rows become the staging table's,
 * and the staging table is dropped. A staging table with no row changes nothing (false): an empty
 * read never empties the table.
 */
export const swap = (sql: SqlClient, target: TargetSpec): Effect.Effect<boolean, DatabaseError> =>
  Effect.gen(function*() {
    const staging = stagingOf(target)
    const from = qualifiedName(staging)
    const to = qualifiedName(target)
    const [found] = yield* query<{ loaded: boolean }>(
      sql,
      `SELECT EXISTS (SELECT FROM ${from}) AS loaded`,
      [],
      `reading table ${displayName(staging)}`
    )
    if (found!.loaded) {
      const columns = CopyIn.columnNames(target).map(quoteIdent).join(", ")
      yield* query(sql, `TRUNCATE ${to}`, [], `emptying table ${displayName(target)}`)
      yield* Failpoint.pass("mid-swap")
      yield* query(sql, `INSERT INTO ${to} (${columns}) SELECT ${columns} FROM ${from}`, [], `filling table ${displayName(target)}`)
    }
    yield* query(sql, `DROP TABLE ${from}`, [], `dropping table ${displayName(staging)}`)
    return found!.loaded
  })
