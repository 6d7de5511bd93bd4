/**
 * The program: pages from the Source -> rows by the stream's decoder -> one transaction per batch of
 * pages (rows, quarantined records and, when allowed, the checkpoint) -> a summary. The next batch is
 * fetched and decoded while the last one is written (Batches.ts). Each page's rows are staged for the
 * sink as they are decoded; when the staged form holds them (a first load's COPY text) only it is kept,
 * and the sink asks for the rows, parsed again from the page's body, only if it cannot write that form
 * (Pages.ts). It knows no HTTP and no SQL, only the services. The checkpoint rules are CheckpointPolicy.ts;
 * where the checkpoint is saved is `checkpointSaves` below; how a replace stream's run ends, Replace.ts.
 */
import { Cause, Clock, Effect, Exit, FiberRef, Option, Ref, Stream } from "effect"
import { CheckpointStore, type CheckpointKey, type CheckpointStoreShape, keyOf } from "../CheckpointStore.js"
import * as Cursor from "../domain/Cursor.js"
import { ExitCode, InvalidRecords, type FerryError } from "../domain/Errors.js"
import { CurrentRedactor } from "../domain/Secrets.js"
import type { CursorType, StreamSpec } from "../domain/StreamSpec.js"
import * as Failpoint from "../lib/Failpoint.js"
import { Sink, type QuarantineResult, type RunCounts, type SinkShape, type WriteResult } from "../Sink.js"
import { pagesOf, type Source } from "../Source.js"
import { type BatchLimits, batchLimits, forEachBatch, prefetchBelowBytes } from "./Batches.js"
import * as CheckpointPolicy from "./CheckpointPolicy.js"
import * as Deletes from "./Deletes.js"
import * as Drift from "./Drift.js"
import { loadCheckpoint } from "./LoadCheckpoint.js"
import * as PageRepeats from "./PageRepeats.js"
import * as Replace from "./Replace.js"
import { decodePage, type DecodedPage, type Rows } from "./Pages.js"
import * as Summary from "./Summary.js"
import type { StreamSummary } from "./Summary.js"

export interface SyncOptions {
  /** ignore the stored checkpoint for this run (it still never moves backwards) */
  readonly fullRefresh?: boolean | undefined
  /** fetch, decode and write inside transactions that are rolled back: real counts, nothing kept */
  readonly dryRun?: boolean | undefined
  readonly runId: string
  /** a transaction per batch of pages within these limits (defaults: `batchLimits`); `{ records: 1 }`: one per page */
  readonly batch?: Partial<BatchLimits> | undefined
  /** called after each committed batch, for progress reporting */
  readonly onProgress?: ((progress: Progress) => void) | undefined
  /** the exit code an interrupted run reports, asked when it ends (the CLI: 130 for SIGINT); default 143 */
  readonly interruptedExitCode?: (() => number) | undefined
}

export interface Progress extends RunCounts {
  readonly stream: string
  readonly elapsedMs: number
}

/** What a run of one stream works with, fixed when it starts. */
interface Run {
  readonly stream: StreamSpec
  readonly options: SyncOptions
  readonly sink: SinkShape
  readonly store: CheckpointStoreShape
  readonly key: CheckpointKey
  readonly type: CursorType
  readonly dryRun: boolean
  readonly startedAt: number
  readonly state: Ref.Ref<RunState>
}

/** What a run has done so far: each step replaces it, and its end reads it whatever the outcome. */
interface RunState {
  /** the stored checkpoint was read (or the summary reads it: `storedCheckpoint`) */
  readonly loaded: boolean
  /** the run is in `ferry.runs`: its outcome is recorded there too */
  readonly started: boolean
  /** where the stream stands (a dry run's never moves) */
  readonly checkpoint: string | undefined
  /** the greatest cursor committed in this run */
  readonly seen: string | undefined
  readonly counts: RunCounts
  /** fields no column maps that the stream had never seen, in committed batches (Drift.ts) */
  readonly newFields: ReadonlyArray<string>
  /** the run read the whole collection (Deletes.isComplete) */
  readonly complete?: boolean
}

/**
 * Syncs one stream and returns how it ended, its summary beside its exit. Whatever the outcome,
 * interruption included, the run is recorded in `ferry.runs` and one `run.summary` line is logged
 * whose counts add up: fetched = inserted + updated + unchanged + quarantined + alreadyQuarantined.
 */
export const syncStreamExit = (
  stream: StreamSpec,
  options: SyncOptions
): Effect.Effect<
  { readonly summary: StreamSummary; readonly exit: Exit.Exit<void, FerryError> },
  never,
  Sink | CheckpointStore | Source
> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      const state = yield* Ref.make<RunState>({
        loaded: false,
        started: false,
        checkpoint: undefined,
        seen: undefined,
        counts: Deletes.startCounts(stream, Summary.noCounts),
        newFields: []
      })
      const run: Run = {
        stream,
        options,
        sink: yield* Sink,
        store: yield* CheckpointStore,
        key: keyOf(stream),
        type: Cursor.typeOf(stream),
        dryRun: options.dryRun === true,
        startedAt: yield* Clock.currentTimeMillis,
        state
      }
      const exit = yield* Effect.exit(restore(Effect.scoped(sync(run))))
      return { summary: yield* finish(run, exit), exit }
    })
  ).pipe(Effect.annotateLogs({ run_id: options.runId, stream: stream.name }))

/** Syncs one stream: its summary, or its typed error (after the run is recorded and logged). */
export const syncStream = (stream: StreamSpec, options: SyncOptions) =>
  Effect.flatMap(syncStreamExit(stream, options), ({ exit, summary }) => Effect.as(exit, summary))

/**
 * Syncs each stream in turn. A failing stream does not stop the others (they are independent);
 * an interruption stops the run after the stream's current transaction.
 */
export const syncAll = (streams: ReadonlyArray<StreamSpec>, options: SyncOptions) =>
  Effect.gen(function*() {
    const summaries: Array<StreamSummary> = []
    for (const stream of streams) {
      const { exit, summary } = yield* syncStreamExit(stream, options)
      summaries.push(summary)
      if (Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)) break
    }
    return summaries
  })

/**
 * `effect`, then the state updated with its result, with no interruption in between: the end of the
 * run reads the state, and must not miss what was done (a run started, a checkpoint loaded or saved).
 */
const recording = <A, E, R>(run: Run, effect: Effect.Effect<A, E, R>, update: (state: RunState, a: A) => RunState) =>
  Effect.uninterruptibleMask((restore) => Effect.tap(restore(effect), (a) => Ref.update(run.state, (s) => update(s, a))))

/** The run: the target prepared and locked, the checkpoint loaded, every batch committed, the final checkpoint. */
const sync = (given: Run) =>
  Effect.gen(function*() {
    const { dryRun, options, sink, stream } = given
    // a dry run prepares in a transaction that is rolled back: it learns whether the table holds rows
    const prepared = yield* (dryRun ? sink.rolledBackTransaction(sink.prepare(stream)) : sink.prepare(stream))
    yield* Drift.logChanges(prepared.changes, dryRun)
    yield* sink.lock(stream)
    const checkpoint = yield* recording(given, loadCheckpoint(given, prepared.state), (s, checkpoint) => ({ ...s, checkpoint, loaded: true }))
    const fields = yield* Drift.tracker(sink, stream)
    const full = options.fullRefresh === true || (yield* Deletes.fullReadDue(sink, stream, given.startedAt, dryRun))
    const from = CheckpointPolicy.startFrom(stream.source.incremental, checkpoint, full)
    const complete = Deletes.isComplete(stream, checkpoint, full)
    // the stream as the batches write it (deletes: the run's time, and keys kept only for a complete read)
    const run: Run = { ...given, stream: Deletes.forRun(stream, given.startedAt, complete) }
    yield* Effect.logInfo("run.start").pipe(
      Effect.annotateLogs({ checkpoint: checkpoint ?? null, from: Option.getOrNull(from), dry_run: dryRun })
    )
    if (!dryRun) yield* recording(run, sink.startRun(stream, options.runId), (s) => ({ ...s, started: true }))
    if (!dryRun) yield* sink.beginLoad(run.stream)

    // Fetch and decode the next batch of pages while the last one is being written (bounded by bytes).
    // A page that repeats an earlier one ends the stream there: the pages before it are written first.
    // The guard's verdict travels as an Either through Stream.map: Stream.mapEffect kept each page alive
    // across an effect, long enough for the collector to promote it (+12 % CPU on a 500k full load).
    const repeats = PageRepeats.guard(stream.name)
    yield* forEachBatch(
      Stream.map(pagesOf(stream, from), (page) => repeats(decodePage(run.stream, sink, page, fields.observe))),
      { ...batchLimits, ...options.batch },
      prefetchBelowBytes,
      commitBatch(run, fields.capNotice)
    )

    // The whole stream is read: every record up to `seen` is committed (a replace stream's, not yet shown).
    const { counts, seen, checkpoint: last } = yield* Ref.get(run.state)
    const final = CheckpointPolicy.afterStream(run.type, last, seen)
    if (final !== undefined && !dryRun) {
      const saves = checkpointSaves(run, final)
      // only the checkpoint: a transaction of its own for a store that saves in one
      const save = run.store.transactional ? sink.transaction(saves.inTransaction) : saves.afterCommit
      yield* recording(run, save, (s) => ({ ...s, checkpoint: final }))
    }
    if (counts.quarantined > stream.maxInvalid) {
      return yield* new InvalidRecords({ stream: stream.name, quarantined: counts.quarantined, maxInvalid: stream.maxInvalid })
    }
    if (stream.target.write === "replace" && !dryRun) yield* Replace.finishLoad(sink, stream, run.key.target)
    const missing = dryRun ? 0 : yield* Deletes.finishMissing(sink, run.stream, run.key.target, { complete, table: prepared.state, counts, at: run.startedAt })
    yield* Ref.update(run.state, (s) => ({ ...s, complete, counts: Deletes.withMissing(s.counts, missing) }))
  })

/**
 * Where a checkpoint is saved (DESIGN.md "Guarantees"): a transactional store saves it in the
 * transaction that commits the rows it covers; the file store right after that commit (at-least-once,
 * absorbed by the idempotent upsert), if the run still holds the stream's lock. A dry run saves none.
 */
const checkpointSaves = (run: Run, cursor: string | undefined) => {
  const { dryRun, key, sink, store, stream } = run
  if (dryRun || cursor === undefined) return { inTransaction: Effect.void, afterCommit: Effect.void }
  return store.transactional
    ? { inTransaction: store.save(key, cursor), afterCommit: Effect.void }
    : { inTransaction: Effect.void, afterCommit: store.save(key, cursor, sink.verifyLock(stream)) }
}

/**
 * Writes a batch of pages in one transaction (rolled back in a dry run) with the checkpoint it moves
 * to, then counts it. A signal lets the transaction finish, never cutting it in half, and then waits
 * for its bookkeeping too (the file checkpoint, the counts and the checkpoint the summary reports), or
 * the summary would under-count it.
 */
const commitBatch = (run: Run, capNotice: () => boolean) => (batch: ReadonlyArray<DecodedPage>) =>
  Effect.gen(function*() {
    const { dryRun, options, sink, stream } = run
    const before = yield* Ref.get(run.state)
    const work = writeBatch(run, before, batch)
    const dry = Effect.zipRight(Effect.zipRight(sink.prepare(stream), sink.beginLoad(stream)), work)
    const done = yield* (dryRun ? sink.rolledBackTransaction(dry) : sink.transaction(work))
    yield* Failpoint.pass("after-commit")
    yield* checkpointSaves(run, done.next).afterCommit
    const counts = Summary.addBatch(before.counts, batch, done.written, done.quarantined)
    const checkpoint = dryRun ? before.checkpoint : (done.next ?? before.checkpoint)
    const newFields = [...before.newFields, ...done.fields.reported]
    yield* Ref.set(run.state, { ...before, seen: done.seen, checkpoint, counts, newFields })
    yield* Drift.logDrift(done.fields, capNotice())
    for (const page of batch) {
      yield* Effect.logDebug("page").pipe(
        Effect.annotateLogs({ url: page.url, records: page.records, bytes: page.bytes, retries: page.retries })
      )
    }
    if (options.onProgress) {
      const now = yield* Clock.currentTimeMillis
      options.onProgress({ stream: stream.name, ...counts, elapsedMs: now - run.startedAt })
    }
  }).pipe(Effect.uninterruptible)

/** The work of a batch's transaction: its rows, its quarantined records and its checkpoint. */
const writeBatch = (run: Run, before: RunState, batch: ReadonlyArray<DecodedPage>) =>
  Effect.gen(function*() {
    const { rows, written } = yield* writeRows(run, batch)
    const quarantined = yield* quarantine(run, batch, rows, written)
    yield* Failpoint.pass("after-upsert")
    const seen = CheckpointPolicy.committed(run.type, before.seen, batch, rows, written.rejected)
    const next = CheckpointPolicy.afterBatch(run.stream.source.incremental?.order, run.type, before.checkpoint, seen)
    yield* checkpointSaves(run, next).inTransaction
    const fields = Drift.ofBatch(batch)
    yield* run.sink.recordFields(run.stream, run.options.runId, fields.paths)
    return { written, quarantined, seen, next, fields }
  })

/**
 * The batch's rows, as the sink staged them; `rows`: those the sink asked for (to write them row by
 * row: `rejected` names rows of these), empty when it wrote the staged form.
 */
const writeRows = (run: Run, batch: ReadonlyArray<DecodedPage>) =>
  Effect.gen(function*() {
    const withRows = batch.filter((p) => p.valid > 0)
    let rows: Rows = []
    const given = () => {
      rows = withRows.length === 1 ? withRows[0].rows() : withRows.flatMap((p) => p.rows())
      return rows.map((r) => r.row)
    }
    const written = yield* run.sink.writeStaged(run.stream, withRows.map((p) => p.staged!), given)
    return { rows, written }
  })

/** The records that did not decode and the rows Postgres refused (as the records they came from). */
const quarantine = (run: Run, batch: ReadonlyArray<DecodedPage>, rows: Rows, written: WriteResult) => {
  const invalid = batch.length === 1 ? batch[0].invalid : batch.flatMap((p) => p.invalid)
  const rawOf = written.rejected.length === 0 ? undefined : new Map(rows.map((r) => [r.row, r.raw] as const))
  const items = invalid.concat(written.rejected.map(({ reason, row }) => ({ raw: rawOf?.get(row) ?? row.values, reason })))
  return items.length > 0
    ? run.sink.quarantine(run.stream, run.options.runId, items)
    : Effect.succeed<QuarantineResult>({ stored: 0, already: 0 })
}

/** The run's summary, recorded in `ferry.runs` (if the run is there) and logged. */
const finish = (run: Run, exit: Exit.Exit<void, FerryError>) =>
  Effect.gen(function*() {
    const { key, options, sink, stream } = run
    const state = yield* Ref.get(run.state)
    const redactor = yield* FiberRef.get(CurrentRedactor)
    const summary = Summary.make({
      stream: stream.name,
      runId: options.runId,
      counts: state.counts,
      newFields: state.newFields,
      checkpoint: state.loaded ? state.checkpoint : yield* Summary.storedCheckpoint(run.store, key, exit),
      durationMs: (yield* Clock.currentTimeMillis) - run.startedAt,
      dryRun: run.dryRun,
      interruptedExitCode: () => options.interruptedExitCode?.() ?? ExitCode.SigTerm
    }, exit, redactor)
    // Record the outcome even when interrupted; a failure to record it must not hide the run's own error.
    if (state.started) yield* Summary.record(sink, key.target, summary, state.complete === true)
    yield* Summary.log(summary)
    return summary
  })
