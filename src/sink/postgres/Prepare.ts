/**
 * `prepare`: Ferry's own tables in schema `ferry` (versioned migrations, postgres/Migrations.ts), then
 * the target table (TargetTable.ts: created, or verified; columns it lacks added, Evolve.ts), and
 * whether it holds rows.
 *
 * The common path takes no lock: one round trip says that Ferry's tables are migrated and the target
 * exists (then it is only verified). Anything to create, add or migrate is done in a second pass under the
 * prepare lock, which first runs the migrations this database lacks (the Migrator checks again under
 * its own table lock). Not the other way round: a pass holding the prepare lock that waited for the
 * Migrator's table lock while a reader of that table waited for the prepare lock would deadlock.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Data, Effect } from "effect"
import { fromSqlError, isSqlError, sqlState, withTransaction } from "../../postgres/Database.js"
import * as Migrations from "../../postgres/Migrations.js"
import { DatabaseError, TargetMismatch } from "../../domain/Errors.js"
import type { TargetSpec } from "../../domain/StreamSpec.js"
import type { SchemaChange, TargetState } from "../../Sink.js"
import * as Evolve from "./Evolve.js"
import { lockForPrepare } from "./Locks.js"
import { displayName } from "./Sql.js"
import * as Children from "./Children.js"
import * as TargetTable from "./TargetTable.js"

/** the SQLSTATE of a relation that does not exist: `ferry.migrations` in a database never migrated */
const undefinedTable = "42P01"

/** the first pass of `prepare` found something to create or migrate: the second pass takes the lock */
class NeedsLock extends Data.TaggedError("NeedsLock") {}

interface Prepared {
  readonly state: TargetState
  /** the table is empty and COPY can reach it (not PGlite, whose socket server has no COPY FROM STDIN) */
  readonly copyable: boolean
  /** the columns added to an existing table */
  readonly changes: ReadonlyArray<SchemaChange>
}

/**
 * One round trip for what every run asks (a database far away pays each one): the last migration of
 * Ferry's tables, what the target is, and whether this is PGlite (a COPY there would wait for ever).
 * A database never migrated has no ferry.migrations: the statement fails, and the locked pass migrates.
 */
const lookup = (sql: SqlClient, target: TargetSpec, locked: boolean) =>
  sql.unsafe<{ pglite: boolean; migrated: number | null; kind: string | null }>(
    `SELECT version() LIKE '%PGlite%' AS pglite, (SELECT max(migration_id) FROM ${Migrations.table}) AS migrated,
       (SELECT c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relname = $2) AS kind`,
    [target.schema, target.table]
  ).pipe(
    Effect.map((rows) => rows[0]!),
    Effect.catchIf((e) => !locked && sqlState(e) === undefinedTable, () => Effect.fail(new NeedsLock())),
    Effect.mapError((e) => e instanceof NeedsLock ? e : fromSqlError(e, `looking up table ${displayName(target)}`))
  )

const pass = (sql: SqlClient, target: TargetSpec, locked: boolean) =>
  Effect.gen(function*() {
    const name = displayName(target)
    const invalid = TargetTable.specProblems(target)
    if (invalid.length > 0) return yield* new TargetMismatch({ table: name, problems: invalid })
    if (locked) {
      yield* lockForPrepare(sql)
      yield* Migrations.migrate(sql)
    }
    const found = yield* lookup(sql, target, locked)
    // an older release's migrations only (a newer release's are more than we know, and kept)
    if ((found.migrated ?? 0) < Migrations.latest && !locked) return yield* new NeedsLock()
    let prepared: Prepared
    if (found.kind === null) {
      if (!locked) return yield* new NeedsLock()
      yield* TargetTable.create(sql, target)
      prepared = { state: "created", copyable: !found.pglite, changes: [] }
    } else if (found.kind !== "r" && found.kind !== "p") {
      return yield* new TargetMismatch({ table: name, problems: [`${name} exists but is not a table`] })
    } else {
      const { empty, missing } = yield* TargetTable.verify(sql, target)
      if (missing.length > 0 && !locked) return yield* new NeedsLock()
      const changes = missing.length === 0 ? [] : yield* Evolve.addColumns(sql, target, missing, empty)
      prepared = { state: empty ? "empty" : "filled", copyable: empty && !found.pglite, changes }
    }
    // child tables (none for most streams), as the parent: created under the lock, else verified and
    // evolved, filled from the parent's record column when the parent had one before this run
    if (!Children.hasChildren(target)) return prepared
    const record = prepared.state === "filled" && !prepared.changes.some((c) => c.column === target.record)
      ? target.record
      : undefined
    const children = yield* Children.prepare(sql, target, locked, record)
    if (children === undefined) return yield* new NeedsLock()
    return children.length === 0 ? prepared : { ...prepared, changes: [...prepared.changes, ...children] }
  }).pipe(withTransaction(sql))

export const prepare = (sql: SqlClient, target: TargetSpec): Effect.Effect<Prepared, DatabaseError | TargetMismatch> => {
  const name = displayName(target)
  return pass(sql, target, false).pipe(
    Effect.catchTag("NeedsLock", () => pass(sql, target, true)),
    // the locked pass never asks for the lock again
    Effect.catchTag("NeedsLock", () => Effect.fail(new DatabaseError({ reason: `preparing table ${name}: lock asked for twice` }))),
    Effect.catchIf(isSqlError, (e) => Effect.fail(fromSqlError(e, `preparing table ${name}`)))
  )
}
