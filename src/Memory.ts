/**
 * An in-memory database with the semantics Ferry relies on from Postgres: transactions that
 * commit or roll back as a whole, an upsert that skips unchanged rows and never lets an older cursor
 * overwrite a newer one, and one lock per stream. It backs the test layers of `Sink` and
 * `CheckpointStore`, which share it the way PgSink and the postgres checkpoint store share a transaction.
 */
import { Context, Effect, Layer, Option } from "effect"
import { CheckpointStore } from "./Checkpoint.js"
import * as Cursor from "./Cursor.js"
import { DatabaseError, LockHeld } from "./Errors.js"
import { Sink, type Bulk, type RunRecord, type WriteResult } from "./Sink.js"
import type { CursorType, Row, StreamSpec } from "./StreamSpec.js"

export interface StoredRow {
  readonly cursor: string | undefined
  readonly values: Readonly<Record<string, unknown>>
}

export interface MemoryState {
  /** table name -> key -> row */
  tables: Map<string, Map<string, StoredRow>>
  checkpoints: Map<string, string>
  quarantine: Array<{ stream: string; runId: string; raw: unknown; reason: string }>
  runs: Map<string, RunRecord | { runId: string; stream: string; status: "running" }>
  /** row versions written (inserts + updates): a no-op run must not add any */
  rowVersions: number
}

export interface MemoryDatabaseShape {
  readonly state: MemoryState
  readonly locks: Set<string>
  /** called before each `write`; returning true makes that write fail after applying (so it must roll back) */
  failWrite: (writeNumber: number) => boolean
  writes: number
  /** bulk writes taken and refused (a key already stored or repeated): tests check both paths ran */
  readonly bulk: { written: number; refused: number }
  /**
   * Rows this database refuses, as Postgres refuses a value out of range: the reason, or undefined.
   * `write` hands them back in `rejected`; a bulk write holding one is refused whole (as a COPY is).
   */
  refuse: (row: Row) => string | undefined
}

export class MemoryDatabase extends Context.Tag("ferry/MemoryDatabase")<MemoryDatabase, MemoryDatabaseShape>() {}

const emptyState = (): MemoryState => ({
  tables: new Map(),
  checkpoints: new Map(),
  quarantine: [],
  runs: new Map(),
  rowVersions: 0
})

export const make = (): MemoryDatabaseShape => ({
  state: emptyState(),
  locks: new Set(),
  failWrite: () => false,
  writes: 0,
  bulk: { written: 0, refused: 0 },
  refuse: () => undefined
})

const restore = (db: MemoryDatabaseShape, snapshot: MemoryState) => {
  Object.assign(db.state, snapshot)
}

const inTransaction = <A, E, R>(db: MemoryDatabaseShape, effect: Effect.Effect<A, E, R>, alwaysRollback: boolean) =>
  Effect.suspend(() => {
    const snapshot = structuredClone(db.state)
    return effect.pipe(
      Effect.onExit((exit) =>
        Effect.sync(() => {
          if (alwaysRollback || exit._tag === "Failure") restore(db, snapshot)
        })
      )
    )
  })

const upsert = (
  table: Map<string, StoredRow>,
  rows: ReadonlyArray<Row>,
  cursorType: CursorType
): { inserted: number; updated: number; unchanged: number } => {
  const compare = Cursor.compare(cursorType)
  let inserted = 0
  let updated = 0
  for (const row of Cursor.latestPerKey(rows, cursorType)) {
    const stored = table.get(row.key)
    if (stored === undefined) {
      table.set(row.key, { cursor: row.cursor, values: row.values })
      inserted++
    } else if (
      JSON.stringify(stored.values) !== JSON.stringify(row.values) &&
      (stored.cursor === undefined || row.cursor === undefined || compare(stored.cursor, row.cursor) <= 0)
    ) {
      table.set(row.key, { cursor: row.cursor, values: row.values })
      updated++
    }
  }
  return { inserted, updated, unchanged: rows.length - inserted - updated }
}

/** a page in the in-memory bulk form: its rows, deduplicated by key */
interface MemoryBulk extends Bulk {
  readonly kept: ReadonlyArray<Row>
}

const tableName = (stream: StreamSpec): string => `${stream.target.schema}.${stream.target.table}`

export const layerSink: Layer.Layer<Sink, never, MemoryDatabase> = Layer.effect(
  Sink,
  Effect.map(MemoryDatabase, (db) => {
    /** as PgSink: streams whose table was empty when prepared get the bulk path, until a key is found stored */
    const bulk = new Set<string>()
    const refused = (rows: ReadonlyArray<Row>) =>
      rows.flatMap((row) => {
        const reason = db.refuse(row)
        return reason === undefined ? [] : [{ row, reason }]
      })
    /** counts a write and applies the injected failure, if any (after applying: the transaction must undo it) */
    const written = <A>(result: A): Effect.Effect<A, DatabaseError> => {
      db.writes++
      return db.failWrite(db.writes)
        ? Effect.fail(new DatabaseError({ reason: `injected failure of write ${db.writes}` }))
        : Effect.succeed(result)
    }
    return Sink.of({
      prepare: (stream) =>
        Effect.sync(() => {
          if ((db.state.tables.get(tableName(stream))?.size ?? 0) === 0) bulk.add(stream.name)
          else bulk.delete(stream.name)
        }),
      lock: (stream) =>
        Effect.acquireRelease(
          Effect.suspend(() => {
            if (db.locks.has(stream)) return Effect.fail(new LockHeld({ stream, holder: "another in-memory run" }))
            db.locks.add(stream)
            return Effect.void
          }),
          () => Effect.sync(() => db.locks.delete(stream))
        ),
      transaction: (effect) => inTransaction(db, effect, false),
      rollback: (effect) => inTransaction(db, effect, true),
      write: (stream, rows) =>
        Effect.suspend(() => {
          const name = tableName(stream)
          const table = db.state.tables.get(name) ?? new Map<string, StoredRow>()
          db.state.tables.set(name, table)
          // as PgSink: one version per key, then the refused ones set aside
          const kept = Cursor.latestPerKey(rows, Cursor.typeOf(stream))
          const rejected = refused(kept)
          const refusedRows = new Set(rejected.map((r) => r.row))
          const counts = upsert(table, kept.filter((r) => !refusedRows.has(r)), Cursor.typeOf(stream))
          db.state.rowVersions += counts.inserted + counts.updated
          const unchanged = rows.length - counts.inserted - counts.updated - rejected.length
          return written<WriteResult>({ ...counts, unchanged, rejected })
        }),
      encode: (stream, rows): MemoryBulk | undefined =>
        bulk.has(stream.name)
          ? { rows: rows.length, kept: Cursor.latestPerKey(rows, Cursor.typeOf(stream)) }
          : undefined,
      // like a COPY under a primary key: any key stored already, or repeated across pages, refuses it all
      writeBulk: (stream, pages) =>
        Effect.suspend(() => {
          if (!bulk.has(stream.name)) return Effect.succeed(undefined)
          const name = tableName(stream)
          const table = db.state.tables.get(name) ?? new Map<string, StoredRow>()
          const rows = (pages as ReadonlyArray<MemoryBulk>).flatMap((p) => p.kept)
          // a value refused: these pages go to `write`, which isolates the row (the bulk path stays on)
          if (refused(rows).length > 0) return Effect.succeed(undefined)
          const keys = new Set(rows.map((r) => r.key))
          if (keys.size < rows.length || rows.some((r) => table.has(r.key))) {
            bulk.delete(stream.name)
            db.bulk.refused++
            return Effect.succeed(undefined)
          }
          db.bulk.written++
          for (const row of rows) table.set(row.key, { cursor: row.cursor, values: row.values })
          db.state.tables.set(name, table)
          db.state.rowVersions += rows.length
          const total = pages.reduce((n, p) => n + p.rows, 0)
          return written<WriteResult | undefined>({ inserted: rows.length, updated: 0, unchanged: total - rows.length, rejected: [] })
        }),
      quarantine: (stream, runId, items) =>
        Effect.sync(() => {
          for (const item of items) db.state.quarantine.push({ stream, runId, raw: item.raw, reason: item.reason })
        }),
      startRun: (stream, runId) =>
        Effect.sync(() => {
          db.state.runs.set(`${runId}/${stream}`, { runId, stream, status: "running" })
        }),
      finishRun: (run) =>
        Effect.sync(() => {
          db.state.runs.set(`${run.runId}/${run.stream}`, run)
        })
    })
  })
)

export const layerCheckpoint: Layer.Layer<CheckpointStore, never, MemoryDatabase> = Layer.effect(
  CheckpointStore,
  Effect.map(MemoryDatabase, (db) =>
    CheckpointStore.of({
      kind: "memory",
      transactional: true,
      load: (stream) => Effect.sync(() => Option.fromNullable(db.state.checkpoints.get(stream))),
      save: (stream, cursor) => Effect.sync(() => void db.state.checkpoints.set(stream, cursor)),
      clear: (stream) => Effect.sync(() => void db.state.checkpoints.delete(stream))
    })
  )
)

/** Sink + CheckpointStore over one fresh in-memory database, which is also provided for assertions. */
export const layer = (db: MemoryDatabaseShape = make()): Layer.Layer<Sink | CheckpointStore | MemoryDatabase> =>
  Layer.mergeAll(layerSink, layerCheckpoint).pipe(Layer.provideMerge(Layer.succeed(MemoryDatabase, db)))
