/**
 * Ferry's own tables in schema `ferry` (`state`, `runs`, `quarantine`, `fields`), created and changed by
 * versioned migrations: @effect/sql's Migrator, with its table `ferry.migrations`. The migrations are
 * in this module (`fromRecord`), so they travel in the bundle.
 *
 * MIGRATIONS ARE APPEND-ONLY. Never edit or renumber one that was released: add the next number. The
 * Migrator runs only ids above the highest one recorded, so a lower-numbered migration added later
 * would be skipped without a word.
 *
 * `migrate` runs inside the caller's transaction, which must hold Ferry's prepare lock (sink/postgres/Prepare.ts):
 * two processes never migrate at once, and a failed migration leaves nothing behind.
 */
import * as Migrator from "@effect/sql/Migrator"
import { SqlClient } from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { Effect, Option } from "effect"
import { fromSqlError } from "./Database.js"
import { DatabaseError } from "../domain/Errors.js"

const statements = (...ddl: ReadonlyArray<string>): Effect.Effect<void, SqlError, SqlClient> =>
  Effect.flatMap(SqlClient, (sql) => Effect.forEach(ddl, (text) => sql.unsafe(text), { discard: true }))

const migrations: Record<string, Effect.Effect<void, SqlError, SqlClient>> = {
  // The tables as releases before migrations made them (IF NOT EXISTS: such a database adopts them).
  "1_ferry_tables": statements(
    `CREATE TABLE IF NOT EXISTS ferry.state (
      stream text PRIMARY KEY,
      cursor text,
      updated_at timestamptz NOT NULL DEFAULT now()
    )`,
    `CREATE TABLE IF NOT EXISTS ferry.runs (
      run_id text NOT NULL,
      stream text NOT NULL,
      status text NOT NULL,
      started_at timestamptz,
      finished_at timestamptz,
      pages bigint,
      fetched bigint,
      inserted bigint,
      updated bigint,
      unchanged bigint,
      quarantined bigint,
      retries bigint,
      checkpoint text,
      error text,
      exit_code int,
      PRIMARY KEY (run_id, stream)
    )`,
    // `record` is JSON text, not jsonb: jsonb rejects \u0000, and a quarantined record must be kept as received
    `CREATE TABLE IF NOT EXISTS ferry.quarantine (
      id bigserial PRIMARY KEY,
      run_id text,
      stream text,
      received_at timestamptz NOT NULL DEFAULT now(),
      reason text,
      record text
    )`
  ),
  // A checkpoint belongs to a stream AND its target table (`schema.table`, see StreamSpec.targetName).
  // Rows from before keep target '' ("legacy"): the first target that is not empty adopts such a row.
  // Runs and quarantined records name their target too (NULL: recorded before this migration).
  "2_stream_targets": statements(
    `ALTER TABLE ferry.state ADD COLUMN target text NOT NULL DEFAULT ''`,
    `ALTER TABLE ferry.state DROP CONSTRAINT state_pkey`,
    `ALTER TABLE ferry.state ADD PRIMARY KEY (stream, target)`,
    `ALTER TABLE ferry.runs ADD COLUMN target text`,
    `ALTER TABLE ferry.quarantine ADD COLUMN target text`
  ),
  // A record quarantined again with the same content is counted once (`already_quarantined`), found
  // by the sha256 of its stored text.
  "3_quarantine_hash": statements(
    `ALTER TABLE ferry.quarantine ADD COLUMN hash bytea`,
    `CREATE INDEX quarantine_stream_target_hash ON ferry.quarantine (stream, target, hash)`,
    `ALTER TABLE ferry.runs ADD COLUMN already_quarantined bigint`
  ),
  // The run summary's duration_ms (from the program's start, prepare and lock included), for `status`
  // to show the same number; and the `running` rows of a stream and target, which the next run that
  // takes the lock marks `abandoned` (sink/postgres/RunLog.ts), found without a scan of every run ever made.
  "4_run_duration_abandoned": statements(
    `ALTER TABLE ferry.runs ADD COLUMN duration_ms bigint`,
    `CREATE INDEX runs_running ON ferry.runs (stream, target) WHERE status = 'running'`
  ),
  // The field paths each stream and target has seen in its records (depth 3 at most, 1,000 at most per
  // stream and target: sync/NewFields.ts), for the run summary's new_fields: a path is new once.
  "5_fields": statements(
    `CREATE TABLE ferry.fields (
      stream text NOT NULL,
      target text NOT NULL,
      path text NOT NULL,
      first_seen_run text,
      first_seen_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (stream, target, path)
    )`
  ),
  // Deletes (issue 13): the run's `deleted` (flagged records that deleted their row) and `missing`
  // (rows a complete read did not see) counts, and whether it read the whole collection: `fullEvery`
  // counts from the last such run.
  "6_run_deletes": statements(
    `ALTER TABLE ferry.runs ADD COLUMN deleted bigint`,
    `ALTER TABLE ferry.runs ADD COLUMN missing bigint`,
    `ALTER TABLE ferry.runs ADD COLUMN complete_read boolean`,
    `CREATE INDEX runs_complete_read ON ferry.runs (stream, target, started_at) WHERE complete_read`
  ),
  // Parent → child streams (issue 14): a child stream keeps one checkpoint per parent row, keyed by
  // the parent row's primary key as JSON; '' is a stream's own checkpoint.
  "7_state_parent": statements(
    `ALTER TABLE ferry.state ADD COLUMN parent text NOT NULL DEFAULT ''`,
    `ALTER TABLE ferry.state DROP CONSTRAINT state_pkey`,
    `ALTER TABLE ferry.state ADD PRIMARY KEY (stream, target, parent)`
  ),
  // A stream's lease (issue 15): who owns the stream and target, until when, and its epoch, a fencing
  // token every transaction of the stream checks (sink/postgres/Leases.ts). A table of its own, not
  // columns of ferry.state: `ferry reset` deletes checkpoint rows, and an epoch must never go back.
  "8_leases": statements(
    `CREATE TABLE ferry.leases (
      stream text NOT NULL,
      target text NOT NULL,
      epoch bigint NOT NULL,
      owner text NOT NULL,
      expires_at timestamptz NOT NULL,
      taken_at timestamptz,
      PRIMARY KEY (stream, target)
    )`
  ),
  // a run that read one slice (`--from/--to`): it says nothing of the stream's freshness (`check --fresh`)
  "9_runs_slice": statements(`ALTER TABLE ferry.runs ADD COLUMN slice boolean`)
}

/** the id of the last migration: a database whose `ferry.migrations` records it needs nothing */
export const latest: number = Math.max(...Object.keys(migrations).map((key) => Number(key.split("_")[0])))

export const table = "ferry.migrations"

const run = Migrator.make({})({ loader: Migrator.fromRecord(migrations), table })

/** what a failed migration says, without a stack: which migration, and Postgres' reason */
const failure = (error: SqlError | Migrator.MigrationError): DatabaseError => {
  const doing = `migrating Ferry's tables in schema ferry${error instanceof Migrator.MigrationError ? ` (${error.message})` : ""}`
  const cause = error instanceof SqlError ? error : error.cause
  return cause instanceof SqlError
    ? fromSqlError(cause, doing)
    : new DatabaseError({ reason: `${doing}: ${cause === undefined ? "failed" : String(cause)}` })
}

/**
 * Runs the migrations this database has not had, inside the caller's transaction (which holds the
 * prepare lock). The Migrator's own table is made here first: its "create if missing" probe would
 * abort the caller's transaction. A failing migration is a defect inside the Migrator; here it is a
 * DatabaseError (74) naming the migration and Postgres' reason.
 */
export const migrate = (sql: SqlClient): Effect.Effect<ReadonlyArray<readonly [number, string]>, DatabaseError> =>
  Effect.gen(function*() {
    yield* sql.unsafe(`CREATE SCHEMA IF NOT EXISTS ferry`)
    yield* sql.unsafe(`CREATE TABLE IF NOT EXISTS ${table} (
      migration_id integer PRIMARY KEY,
      created_at timestamptz NOT NULL DEFAULT now(),
      name text NOT NULL
    )`)
    return yield* run
  }).pipe(
    Effect.provideService(SqlClient, sql),
    Effect.mapError(failure),
    Effect.catchSomeDefect((defect) =>
      defect instanceof Migrator.MigrationError ? Option.some(Effect.fail(failure(defect))) : Option.none()
    )
  )
