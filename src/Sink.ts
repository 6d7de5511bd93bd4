/**
 * The Sink service: everything Ferry writes to Postgres. It creates or verifies the target table,
 * upserts batches (idempotent, never older over newer; or appends versions, or loads a replacement
 * that `finishLoad` swaps in), quarantines invalid records, records runs in `ferry.runs`, and holds the
 * per-stream lock. The live layer is `sink/postgres/PgSink.ts`; the
 * in-memory one is `testing/MemorySink.ts`.
 */
import { Context } from "effect"
import type { Effect, Option, Scope } from "effect"
import type { DatabaseError, LockHeld, TargetMismatch } from "./domain/Errors.js"
import type { ParentRow, ParentSpec } from "./domain/Parent.js"
import type { Row, StreamSpec } from "./domain/StreamSpec.js"

export interface WriteResult {
  readonly inserted: number
  readonly updated: number
  /** same content, an older version than the stored one, or superseded within the batch */
  readonly unchanged: number
  /** rows flagged as deleted by the source whose stored row was deleted (`target.deletes`; else absent) */
  readonly deleted?: number | undefined
  /** rows Postgres refused (e.g. a value out of range); the caller quarantines them */
  readonly rejected: ReadonlyArray<{ readonly row: Row; readonly reason: string }>
}

/**
 * A page's rows made ready to write as the page is decoded, while the next one is fetched: in the form
 * the sink writes fastest for the stream right now (PgSink: COPY text, on a first load), or just
 * counted. Opaque to the program, which only counts and asks whether it may drop the rows.
 */
export interface Staged {
  /** rows the page had (duplicates of a key within the page included) */
  readonly rows: number
  /**
   * the staged form holds what the write needs: the caller may drop the rows, and give them back (parsed
   * again) only when `writeStaged` asks for them
   */
  readonly holdsRows: boolean
}

export interface QuarantineItem {
  readonly raw: unknown
  readonly reason: string
}

/**
 * fetched = inserted + updated + unchanged + deleted + quarantined + alreadyQuarantined (`deleted` and
 * `missing` only for a stream with `target.deletes`; `missing` counts rows, not fetched records)
 */
export interface RunCounts {
  readonly pages: number
  readonly fetched: number
  readonly inserted: number
  readonly updated: number
  readonly unchanged: number
  /** invalid records stored in ferry.quarantine by this run: they count against `maxInvalid` */
  readonly quarantined: number
  /** invalid records ferry.quarantine held already for the stream and its target, same text: not again */
  readonly alreadyQuarantined: number
  readonly retries: number
  /** fetched records flagged as deleted that deleted their row (`deletes.action: delete`) */
  readonly deleted?: number | undefined
  /** rows a complete read did not see, deleted or marked at the run's end (`deletes.detect: missing`) */
  readonly missing?: number | undefined
}

/** what `quarantine` did with a batch's records */
export interface QuarantineResult {
  readonly stored: number
  /** the same text was quarantined before for this stream and target (or earlier in the batch) */
  readonly already: number
}

/**
 * What `prepare` found: a table it created, one that exists with no row, or one with rows. A stored
 * checkpoint applies only to a table with rows: the checkpoint of a table Ferry did not fill would skip
 * everything before it.
 */
export type TargetState = "created" | "empty" | "filled"

/** A column `prepare` added to an existing table because the stream lists it (schema evolution). */
export interface SchemaChange {
  readonly table: string
  readonly column: string
  readonly type: string
  /**
   * rows of the table given a value from its record column (`target.record`); `undefined`: the table
   * keeps no record, so its rows have none until a `--full-refresh` writes them again
   */
  readonly filled: number | undefined
  /** rows whose record holds a value that does not fit the column (as the decoder decides): left NULL */
  readonly unfit: number
}

/** What `prepare` found, and the columns it added. */
export interface Prepared {
  readonly state: TargetState
  readonly changes: ReadonlyArray<SchemaChange>
}

export interface RunRecord {
  readonly runId: string
  readonly stream: string
  /** the target table, `StreamSpec.targetName` */
  readonly target: string
  readonly status: "succeeded" | "failed" | "interrupted"
  readonly counts: RunCounts
  readonly checkpoint: string | undefined
  readonly error: string | undefined
  readonly exitCode: number
  /** the run summary's duration_ms (from the program's start); absent: `status` uses the timestamps */
  readonly durationMs?: number | undefined
  /** the run read the whole collection and succeeded (when the next `fullEvery` is due counts from it) */
  readonly completeRead?: boolean | undefined
  /** the run read one slice (`--from/--to`): not the stream up to now (`check --fresh` leaves it out) */
  readonly slice?: boolean | undefined
}

export interface SinkShape {
  /**
   * migrate Ferry's tables in schema `ferry`, create the target table or verify an existing one: add
   * the columns the stream lists and it lacks (filled from the table's record column, if it has one),
   * 78 for anything else that does not fit (nothing changed); say whether it holds rows
   */
  readonly prepare: (stream: StreamSpec) => Effect.Effect<Prepared, DatabaseError | TargetMismatch>
  /**
   * hold the lock of the stream and its target table for the scope; fails at once with LockHeld when
   * another run has it (two streams of the same name with different tables do not exclude each other)
   */
  readonly lock: (stream: StreamSpec, runId?: string) => Effect.Effect<void, LockHeld | DatabaseError, Scope.Scope>
  /**
   * fails when this run no longer owns the stream (75: its lease was taken over; 74: it never held
   * it, or the embedded database's directory lock is gone): `transaction` checks it before every
   * commit; a write no transaction guards (the file checkpoint) checks it right before
   */
  readonly verifyLock: (stream: StreamSpec) => Effect.Effect<void, DatabaseError>
  /**
   * run `effect` in one database transaction for `stream` (nested calls use savepoints), committed
   * only while the run still owns the stream (`verifyLock`, just before COMMIT)
   */
  readonly transaction: <A, E, R>(stream: StreamSpec, effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | DatabaseError, R>
  /** run `effect` in a transaction that is always rolled back (for --dry-run) */
  readonly rolledBackTransaction: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | DatabaseError, R>
  /**
   * upsert rows (call inside `transaction`); with `target.children`, the child rows of each parent it
   * inserts or updates are replaced by the row's `children`, and those of the others left untouched
   */
  readonly write: (stream: StreamSpec, rows: ReadonlyArray<Row>) => Effect.Effect<WriteResult, DatabaseError>
  /** one page's rows, staged for `writeStaged` (call as the page is decoded) */
  readonly stage: (stream: StreamSpec, rows: ReadonlyArray<Row>) => Staged
  /**
   * Writes staged pages (call inside `transaction`): in their staged form when the sink can, else as
   * `write` writes the rows `rows()` gives back (asked for only then; `rejected` names rows of it). The
   * outcome is `write`'s either way.
   */
  readonly writeStaged: (
    stream: StreamSpec,
    pages: ReadonlyArray<Staged>,
    rows: () => ReadonlyArray<Row>
  ) => Effect.Effect<WriteResult, DatabaseError>
  /**
   * Makes ready to load a stream whose rows are loaded apart from its table and shown at the end
   * (`write: replace`: a new, empty staging table), or whose keys seen are kept for `deleteMissing`
   * (a new, empty set); nothing for the others. A run calls it once it
   * holds the stream's lock, before its first batch (a dry run: inside each batch's transaction).
   */
  readonly beginLoad: (stream: StreamSpec) => Effect.Effect<void, DatabaseError | TargetMismatch>
  /**
   * The end of a complete read of a stream loaded apart (`write: replace`): what the run loaded becomes
   * the table's content, all at once (call inside the `transaction` that ends the run). False when the
   * run loaded no row: the table is left as it was.
   */
  readonly finishLoad: (stream: StreamSpec) => Effect.Effect<boolean, DatabaseError>
  /**
   * The end of a complete read of a stream with `deletes: { detect: missing }` (call inside the
   * `transaction` that ends the run): the rows whose key no write of this run since `beginLoad` had
   * are deleted, or marked (`_deleted_at` = `at`); their number. `at` undefined: nothing changes, the
   * keys seen are forgotten.
   */
  readonly deleteMissing: (stream: StreamSpec, at: string | undefined) => Effect.Effect<number, DatabaseError>
  /** when the stream's last complete read that succeeded started (epoch ms), if any (`fullEvery`) */
  readonly lastCompleteRead: (stream: StreamSpec) => Effect.Effect<number | undefined, DatabaseError>
  /** stores the records not quarantined before for the stream and its target (same text) */
  readonly quarantine: (
    stream: StreamSpec,
    runId: string,
    items: ReadonlyArray<QuarantineItem>
  ) => Effect.Effect<QuarantineResult, DatabaseError>
  /** the field paths recorded for the stream and its target (`recordFields`), for the summary's new_fields */
  readonly knownFields: (stream: StreamSpec) => Effect.Effect<ReadonlyArray<string>, DatabaseError>
  /** records field paths first seen by run `runId` (call inside `transaction`) */
  readonly recordFields: (stream: StreamSpec, runId: string, paths: ReadonlyArray<string>) => Effect.Effect<void, DatabaseError>
  /**
   * records the run's start (call while holding the stream's lock, never for a dry run); the stream's
   * and target's earlier runs still `running` are dead, or fenced out (the lock and its lease say so):
   * they become `abandoned`
   */
  readonly startRun: (stream: StreamSpec, runId: string) => Effect.Effect<void, DatabaseError>
  /**
   * Up to `limit` rows of a child stream's parent table, in primary key order after `after` (the last
   * row of the previous call), with `columns` as text (`Parent.ts`); rows the source deleted
   * (`deletes.action: mark`) left out. None: the table does not exist (its stream never ran).
   */
  readonly parentRows: (
    parent: ParentSpec,
    columns: ReadonlyArray<string>,
    after: ParentRow | undefined,
    limit: number
  ) => Effect.Effect<Option.Option<ReadonlyArray<ParentRow>>, DatabaseError>
  readonly finishRun: (run: RunRecord) => Effect.Effect<void, DatabaseError>
}

export class Sink extends Context.Tag("ferry/Sink")<Sink, SinkShape>() {}
