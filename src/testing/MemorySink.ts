/**
 * The in-memory Sink, over an in-memory database with the semantics Ferry relies on from Postgres:
 * transactions that commit or roll back as a whole, an upsert that skips unchanged rows and never lets
 * an older cursor overwrite a newer one (append: a version stored is never rewritten; replace: rows go
 * to a staging table that `finishLoad` swaps in; deletes: MemoryDeletes.ts), one lock per stream.
 * `MemoryCheckpoints` shares its database and transactions, as PgSink and the postgres store do.
 */
import { Clock, Effect, Either, Layer } from "effect"
import type { CheckpointKey } from "../CheckpointStore.js"
import * as Cursor from "../domain/Cursor.js"
import { DatabaseError, LockHeld } from "../domain/Errors.js"
import * as MemoryParents from "./MemoryParents.js"
import * as MemoryChildren from "./MemoryChildren.js"
import * as MemoryDeletes from "./MemoryDeletes.js"
import { Sink, type QuarantineItem, type Staged, type WriteResult } from "../Sink.js"
import { type CursorType, type Row, type StreamSpec, targetName } from "../domain/StreamSpec.js"
import { evolve } from "./MemorySchema.js"
import { inTransaction, MemoryDatabase, type MemoryDatabaseShape, type StoredRow } from "./MemoryDatabase.js"

const upsert = (
  table: Map<string, StoredRow>,
  rows: ReadonlyArray<Row>,
  cursorType: CursorType,
  append: boolean,
  written: Array<Row> = []
): { inserted: number; updated: number; unchanged: number } => {
  const compare = Cursor.compare(cursorType)
  let inserted = 0
  let updated = 0
  for (const row of Cursor.latestPerKey(rows, cursorType)) {
    const stored = table.get(row.key)
    if (stored === undefined) {
      table.set(row.key, { cursor: row.cursor, values: row.values })
      inserted++
      written.push(row)
    } else if (
      !append && JSON.stringify(stored.values) !== JSON.stringify(row.values) &&
      (stored.cursor === undefined || row.cursor === undefined || compare(stored.cursor, row.cursor) <= 0)
    ) {
      table.set(row.key, { cursor: row.cursor, values: row.values })
      updated++
      written.push(row)
    }
  }
  return { inserted, updated, unchanged: rows.length - inserted - updated }
}

/** a page in the in-memory bulk form (PgSink's COPY text): its rows, deduplicated by key */
interface BulkPage extends Staged {
  readonly _tag: "BulkPage"
  readonly kept: ReadonlyArray<Row>
}

const isBulkPage = (page: Staged): page is BulkPage => "_tag" in page && page._tag === "BulkPage"

const tableName = (stream: StreamSpec): string => `${stream.target.schema}.${stream.target.table}`
/** where a stream's rows are written: its table, or for replace its staging table */
const intoName = (stream: StreamSpec): string => tableName(stream) + (stream.target.write === "replace" ? "~staging" : "")

/** `stream@schema.table`: a stream's checkpoint and lock, as in ferry.state */
export const checkpointKey = (key: Pick<CheckpointKey, "stream" | "target" | "parent">): string =>
  key.parent === undefined ? `${key.stream}@${key.target}` : `${key.stream}@${key.target} ${key.parent}`
const lockKey = (stream: StreamSpec): string => checkpointKey({ stream: stream.name, target: targetName(stream.target) })

/** a quarantined record's identity: its text, made as PgSink makes the text it stores */
const recordText = (raw: unknown): string => {
  try {
    return JSON.stringify(raw) ?? "null"
  } catch {
    return JSON.stringify(String(raw))
  }
}

/** Rows this database refuses (`db.refuse`), with the reason: what PgSink's upsert hands back as rejected. */
const refusedOf = (db: MemoryDatabaseShape, rows: ReadonlyArray<Row>) =>
  rows.flatMap((row) => {
    const reason = db.refuse(row)
    return reason === undefined ? [] : [{ row, reason }]
  })

/** counts a write and applies the injected failure, if any (after applying: the transaction must undo it) */
const written = <A>(db: MemoryDatabaseShape, result: A): Effect.Effect<A, DatabaseError> => {
  db.writes++
  return db.failWrite(db.writes)
    ? Effect.fail(new DatabaseError({ reason: `injected failure of write ${db.writes}` }))
    : Effect.succeed(result)
}

const tableOf = (db: MemoryDatabaseShape, stream: StreamSpec): Map<string, StoredRow> => {
  const name = intoName(stream)
  const table = db.state.tables.get(name) ?? new Map<string, StoredRow>()
  db.state.tables.set(name, table)
  return table
}

const write = (db: MemoryDatabaseShape, stream: StreamSpec, rows: ReadonlyArray<Row>) =>
  Effect.suspend(() => {
    const table = tableOf(db, stream)
    // as PgSink: one version per key, then the refused ones set aside
    const plain = (rows: ReadonlyArray<Row>): WriteResult => {
      const kept = MemoryChildren.digested(stream, Cursor.latestPerKey(rows, Cursor.typeOf(stream)))
      const rejected = refusedOf(db, kept)
      const refusedRows = new Set(rejected.map((r) => r.row))
      const parents: Array<Row> = []
      const accepted = kept.filter((r) => !refusedRows.has(r))
      const counts = upsert(table, accepted, Cursor.typeOf(stream), stream.target.write === "append", parents)
      MemoryChildren.replace(db.state.tables, stream, parents)
      return { ...counts, unchanged: rows.length - counts.inserted - counts.updated - rejected.length, rejected }
    }
    const result = MemoryDeletes.write(stream, table, MemoryDeletes.seenOf(db.state.seen, lockKey(stream)), rows, plain, (gone) =>
      MemoryChildren.remove(db.state.tables, stream, gone))
    db.state.rowVersions += result.inserted + result.updated
    return written<WriteResult>(db, result)
  })

/**
 * Like a COPY under a primary key: any key stored already, or repeated across pages, refuses it all and
 * turns the bulk path off for the stream (`bulk`: the streams that have it).
 */
const writeBulk = (db: MemoryDatabaseShape, bulk: Set<string>, stream: StreamSpec, pages: ReadonlyArray<Staged>) =>
  Effect.suspend(() => {
    if (!bulk.has(stream.name) || pages.length === 0 || !pages.every(isBulkPage)) return Effect.succeed(undefined)
    const table = db.state.tables.get(intoName(stream)) ?? new Map<string, StoredRow>()
    const rows = (pages as ReadonlyArray<BulkPage>).flatMap((p) => p.kept)
    // a value refused: these pages go to `write`, which isolates the row (the bulk path stays on)
    if (refusedOf(db, rows).length > 0) return Effect.succeed(undefined)
    const keys = new Set(rows.map((r) => r.key))
    if (keys.size < rows.length || rows.some((r) => table.has(r.key))) {
      bulk.delete(stream.name)
      db.bulk.refused++
      return Effect.succeed(undefined)
    }
    db.bulk.written++
    for (const row of rows) table.set(row.key, { cursor: row.cursor, values: row.values })
    db.state.tables.set(intoName(stream), table)
    db.state.rowVersions += rows.length
    const total = pages.reduce((n, p) => n + p.rows, 0)
    return written<WriteResult | undefined>(db, { inserted: rows.length, updated: 0, unchanged: total - rows.length, rejected: [] })
  })

const lock = (db: MemoryDatabaseShape, stream: StreamSpec) =>
  Effect.acquireRelease(
    Effect.suspend(() => {
      const key = lockKey(stream)
      if (db.locks.has(key)) {
        return Effect.fail(new LockHeld({ stream: stream.name, target: targetName(stream.target), holder: "another in-memory run" }))
      }
      db.locks.add(key)
      return Effect.void
    }),
    () => Effect.sync(() => db.locks.delete(lockKey(stream)))
  )

const verifyLock = (db: MemoryDatabaseShape, stream: StreamSpec) =>
  Effect.suspend(() =>
    db.locks.has(lockKey(stream))
      ? Effect.void
      : Effect.fail(new DatabaseError({ reason: `lost the lock of stream ${lockKey(stream)}`, temporary: true }))
  )

/** as PgSink: a record whose text was quarantined before for the stream and target is not stored again */
const quarantine = (db: MemoryDatabaseShape, stream: StreamSpec, runId: string, items: ReadonlyArray<QuarantineItem>) =>
  Effect.sync(() => {
    const target = targetName(stream.target)
    let stored = 0
    for (const item of items) {
      const text = recordText(item.raw)
      if (db.state.quarantine.some((q) => q.stream === stream.name && q.target === target && q.text === text)) continue
      db.state.quarantine.push({ stream: stream.name, target, runId, raw: item.raw, reason: item.reason, text })
      stored++
    }
    return { stored, already: items.length - stored }
  })

/** as PgSink: the stream's earlier runs still running are dead (this run holds the lock) */
const startRun = (db: MemoryDatabaseShape, stream: StreamSpec, runId: string) =>
  Effect.map(Clock.currentTimeMillis, (now) => {
    for (const [key, r] of db.state.runs) {
      if (r.stream === stream.name && r.status === "running" && r.runId !== runId) {
        db.state.runs.set(key, { ...r, status: "abandoned" })
      }
    }
    db.state.runs.set(`${runId}/${stream.name}`, { runId, stream: stream.name, status: "running", startedAt: now })
  })

/** as PgSink: the staging table's rows become the table's, unless it has none; the staging table goes */
const swap = (db: MemoryDatabaseShape, stream: StreamSpec) =>
  Effect.sync(() => {
    if (stream.target.write !== "replace") return false
    const staging = db.state.tables.get(intoName(stream))
    db.state.tables.delete(intoName(stream))
    if (staging === undefined || staging.size === 0) return false
    db.state.tables.set(tableName(stream), staging)
    return true
  })

/** as PgSink: the table created, or checked and its missing columns added (MemorySchema.ts) */
const prepare = (db: MemoryDatabaseShape, bulk: Set<string>, stream: StreamSpec) =>
  Effect.suspend(() => {
    const name = tableName(stream)
    const table = db.state.tables.get(name)
    const shape = db.state.shapes.get(name)
    const parent = table === undefined || shape === undefined
      ? Either.right({ shape: { columns: stream.target.columns, primaryKey: stream.target.primaryKey }, changes: [] })
      : evolve(stream.target, shape, table)
    // child tables: the parent's record column fills their new columns if the parent had it before
    const record = (table?.size ?? 0) > 0 && Either.isRight(parent) &&
        !parent.right.changes.some((c) => c.column === stream.target.record)
      ? stream.target.record
      : undefined
    const evolved = Either.flatMap(parent, (p) =>
      Either.map(
        MemoryChildren.prepare(db.state.tables, db.state.shapes, stream.target, record),
        (children) => ({ shape: p.shape, changes: [...p.changes, ...children] })
      ))
    return Either.match(evolved, {
      onLeft: (mismatch) => Effect.fail(mismatch),
      onRight: ({ changes, shape }) => {
        db.state.shapes.set(name, shape)
        // a stream with child tables is always upserted, as in PgSink
        if ((table?.size ?? 0) === 0 && (stream.target.children?.length ?? 0) === 0 && MemoryDeletes.copies(stream)) {
          bulk.add(stream.name)
        }
        else bulk.delete(stream.name)
        const state = table === undefined ? "created" as const : table.size === 0 ? "empty" as const : "filled" as const
        return Effect.succeed({ state, changes })
      }
    })
  })

/** The Sink over the `MemoryDatabase` in context. */
export const layer: Layer.Layer<Sink, never, MemoryDatabase> = Layer.effect(
  Sink,
  Effect.map(MemoryDatabase, (db) => {
    /** as PgSink: streams whose table was empty when prepared get the bulk path, until a key is found stored */
    const bulk = new Set<string>()
    return Sink.of({
      prepare: (stream) => prepare(db, bulk, stream),
      lock: (stream) => lock(db, stream),
      // a test takes the lock away (`locks.delete`) as a lease taken over by another process would
      verifyLock: (stream) => verifyLock(db, stream),
      // as PgSink: committed only while the run still holds the stream's lock
      transaction: (stream, effect) => inTransaction(db, Effect.zipLeft(effect, verifyLock(db, stream)), false),
      rolledBackTransaction: (effect) => inTransaction(db, effect, true),
      write: (stream, rows) => write(db, stream, rows),
      stage: (stream, rows): BulkPage | Staged =>
        bulk.has(stream.name)
          ? { _tag: "BulkPage", rows: rows.length, holdsRows: true, kept: Cursor.latestPerKey(rows, Cursor.typeOf(stream)) }
          : { rows: rows.length, holdsRows: false },
      // as PgSink: the bulk form when every page has it and it goes in, else the rows
      writeStaged: (stream, pages, rows) =>
        Effect.flatMap(
          writeBulk(db, bulk, stream, pages),
          (result) => result === undefined ? write(db, stream, rows()) : Effect.succeed(result)
        ),
      beginLoad: (stream) =>
        Effect.sync(() => {
          db.state.seen.delete(lockKey(stream))
          if (stream.target.write !== "replace") return
          db.state.tables.set(intoName(stream), new Map())
          if (MemoryDeletes.copies(stream)) bulk.add(stream.name)
        }),
      finishLoad: (stream) => swap(db, stream),
      deleteMissing: (stream, at) =>
        Effect.sync(() => MemoryDeletes.deleteMissing(stream, tableOf(db, stream), db.state.seen, lockKey(stream), at, (gone) =>
          MemoryChildren.remove(db.state.tables, stream, gone))),
      lastCompleteRead: (stream) => Effect.sync(() => MemoryDeletes.lastCompleteRead(db.state.runs, stream)),
      quarantine: (stream, runId, items) => quarantine(db, stream, runId, items),
      knownFields: (stream) => Effect.sync(() => [...(db.state.fields.get(lockKey(stream)) ?? [])]),
      recordFields: (stream, _runId, paths) =>
        Effect.sync(() => {
          const known = db.state.fields.get(lockKey(stream)) ?? new Set<string>()
          for (const path of paths) known.add(path)
          db.state.fields.set(lockKey(stream), known)
        }),
      startRun: (stream, runId) => startRun(db, stream, runId),
      parentRows: (parent, columns, after, limit) => MemoryParents.parentRows(db.state.tables, parent, columns, after, limit),
      finishRun: (run) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const started = db.state.runs.get(`${run.runId}/${run.stream}`)
          db.state.runs.set(`${run.runId}/${run.stream}`, { ...run, startedAt: started?.startedAt ?? now })
        })
    })
  })
)
