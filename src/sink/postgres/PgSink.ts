/**
 * The live Sink: everything Ferry writes to PostgreSQL, one concern per module beside this one.
 *
 * - prepare (Prepare.ts): Ferry's own tables (postgres/Migrations.ts), then the target table
 *   (TargetTable.ts: created, or verified; the columns it lacks added and filled, Evolve.ts);
 * - write (Upsert.ts): INSERT ... ON CONFLICT, never older over newer, refused rows isolated;
 * - stage/writeStaged (BulkLoad.ts, CopyIn.ts): COPY into a table that was empty when prepared, the
 *   upsert when a COPY cannot take the rows;
 * - child tables (Children.ts): created or verified with the parent, their rows replaced with it;
 * - beginLoad/finishLoad (Replace.ts): `write: replace` loads a staging table and swaps it in at the end;
 * - deletes (Deletes.ts): flagged records in `write`, the keys seen and `deleteMissing` for complete reads;
 * - lock/verifyLock (Locks.ts, Leases.ts): a session advisory lock and a lease with a fencing epoch per
 *   stream and target table;
 * - transaction/rolledBackTransaction (Transactions.ts); quarantine (Quarantine.ts); the run log (RunLog.ts);
 * - knownFields/recordFields (Fields.ts): the field paths seen, for the run summary's new_fields;
 * - parentRows (ParentRows.ts): a child stream's parent rows, a chunk at a time.
 *
 * Every identifier from the config is quoted (Sql.ts); values are always bind parameters.
 */
import { SqlClient } from "@effect/sql/SqlClient"
import { Duration, Effect, Layer } from "effect"
import type { DatabaseError } from "../../domain/Errors.js"
import { Sink, type SinkShape } from "../../Sink.js"
import * as BulkLoad from "./BulkLoad.js"
import * as Children from "./Children.js"
import * as Fields from "./Fields.js"
import * as Deletes from "./Deletes.js"
import * as DomainDeletes from "../../domain/Deletes.js"
import * as Locks from "./Locks.js"
import * as ParentRows from "./ParentRows.js"
import * as Prepare from "./Prepare.js"
import * as Quarantine from "./Quarantine.js"
import * as Replace from "./Replace.js"
import * as RunLog from "./RunLog.js"
import * as Transactions from "./Transactions.js"
import * as Upsert from "./Upsert.js"

export interface PgSinkOptions {
  /** default true; the embedded database passes false (it locks its data directory instead) */
  readonly advisoryLock?: boolean | undefined
  /** cap on one statement's JSON, in bytes (default 4 MiB) */
  readonly maxChunkBytes?: number | undefined
  /** COPY into a table that was empty when prepared (default true; never on PGlite, which cannot) */
  readonly copy?: boolean | undefined
  /**
   * without advisory locks: fails when this process no longer holds what excludes other runs (the
   * embedded database's data-directory lock), for `verifyLock`
   */
  readonly holdsLock?: Effect.Effect<void, DatabaseError> | undefined
  /** how long a stream's lease lasts without renewal (default 30 seconds; config `lease:`) */
  readonly lease?: Duration.Duration | undefined
}

export const make = (sqlClient: SqlClient, options?: PgSinkOptions): SinkShape => {
  // our own result names (inserted, locked, ...) must not go through an app's name transforms
  const sql = sqlClient.withoutTransforms()
  const locks = Locks.streamLocks(sql, {
    advisoryLock: options?.advisoryLock ?? true,
    holdsLock: options?.holdsLock,
    lease: options?.lease ?? Duration.seconds(30)
  })
  const bulk = BulkLoad.make(sql, options?.copy ?? true)
  const upsert = Deletes.writer(sql, Upsert.writer(sql, options?.maxChunkBytes ?? 4 * 1024 * 1024))
  return {
    prepare: (stream) =>
      Prepare.prepare(sql, stream.target).pipe(
        // a stream with child tables, or flagged deletes, is always upserted (Children.ts, Deletes.ts)
        Effect.tap(({ copyable }) =>
          Effect.sync(() => bulk.prepared(stream, copyable && !Children.hasChildren(stream.target) && Deletes.copies(stream.target)))
        ),
        Effect.map(({ changes, state }) => ({ state, changes })),
        Locks.blockedOn(sql, stream.target)
      ),
    lock: locks.lock,
    verifyLock: locks.verifyLock,
    transaction: Transactions.transaction(sql, locks.verifyLock),
    rolledBackTransaction: Transactions.rolledBackTransaction(sql),
    // a replace stream's writes go to its staging table (Replace.into)
    write: (stream, rows) => upsert(Replace.into(stream), Children.digested(stream, rows)).pipe(Locks.blockedOn(sql, stream.target)),
    stage: (stream, rows) => bulk.encode(Replace.into(stream), rows) ?? { rows: rows.length, holdsRows: false },
    writeStaged: (stream, pages, rows) => {
      const into = Replace.into(stream)
      return bulk.write(into, pages).pipe(
        Effect.flatMap((copied) => copied === undefined ? upsert(into, Children.digested(stream, rows())) : Effect.succeed(copied)),
        Locks.blockedOn(sql, stream.target)
      )
    },
    beginLoad: (stream) =>
      DomainDeletes.missing(stream.target) !== undefined ? Deletes.beginSeen(sql, stream) :
      stream.target.write !== "replace" ? Effect.void : Replace.begin(sql, stream.target).pipe(
        // the staging table is new and empty: a first load (COPY where it can)
        Effect.tap(({ copyable }) => Effect.sync(() => bulk.prepared(stream, copyable && Deletes.copies(stream.target)))),
        Effect.asVoid,
        Locks.blockedOn(sql, stream.target)
      ),
    finishLoad: (stream) =>
      stream.target.write !== "replace"
        ? Effect.succeed(false)
        : Replace.swap(sql, stream.target).pipe(Locks.blockedOn(sql, stream.target)),
    deleteMissing: (stream, at) => Deletes.deleteMissing(sql, stream, at).pipe(Locks.blockedOn(sql, stream.target)),
    lastCompleteRead: (stream) => RunLog.lastCompleteRead(sql, stream),
    quarantine: (stream, runId, items) => Quarantine.quarantine(sql, stream, runId, items),
    knownFields: (stream) => Fields.known(sql, stream),
    recordFields: (stream, runId, paths) => Fields.record(sql, stream, runId, paths),
    startRun: (stream, runId) => RunLog.startRun(sql, stream, runId),
    finishRun: (run) => RunLog.finishRun(sql, run),
    parentRows: (parent, columns, after, limit) => ParentRows.parentRows(sql, parent, columns, after, limit)
  }
}

export const layer = (options?: PgSinkOptions): Layer.Layer<Sink, never, SqlClient> =>
  Layer.effect(Sink, Effect.map(SqlClient, (sql) => make(sql, options)))
