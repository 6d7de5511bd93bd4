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
import { Sink, type RunCounts, type SinkShape } from "../Sink.js"
import type { Source } from "../Source.js"
import * as BatchRows from "./BatchRows.js"
import { type BatchLimits, batchLimits, forEachBatch, prefetchBelowBytes } from "./Batches.js"
import * as CheckpointPolicy from "./CheckpointPolicy.js"
import * as Deletes from "./Deletes.js"
import * as Drift from "./Drift.js"
import { loadCheckpoint } from "./LoadCheckpoint.js"
import * as PageRepeats from "./PageRepeats.js"
import * as Replace from "./Replace.js"
import { decodePage, type DecodedPage } from "./Pages.js"
import * as Summary from "./Summary.js"
import * as Window from "./Window.js"
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
  /** read this slice only, leaving the stored checkpoint unread and unmoved (Window.ts) */
  readonly slice?: Window.Slice | undefined
  /** the instant `now` stands for in `incremental.end` and a slice (epoch ms); default: the stream's start */
  readonly now?: number | undefined
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
  /** the stored checkpoint stays as it is: a dry run, a slice */
  readonly frozen: boolean
  /** the read's upper bound: the checkpoint moves no further (CheckpointPolicy.bounded) */
  readonly end?: string | undefined
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
  /** the slice it read, in the cursor's form (Window.ts) */
  readonly slice?: Summary.Slice | undefined
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
        frozen: options.dryRun === true || options.slice !== undefined,
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
export const syncAll = (streams: ReadonlyArray<StreamSpec>, given: SyncOptions) =>
  Effect.gen(function*() {
    const summaries: Array<StreamSummary> = []
    // one `now` for every stream: `end: now - 1 hour` is the same instant in each
    const options = { ...given, now: given.now ?? (yield* Clock.currentTimeMillis) }
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
    const { end, slice } = yield* Window.resolve(stream, options, given.startedAt)
    if (slice) yield* Ref.update(given.state, (s) => ({ ...s, slice }))
    // a dry run prepares in a transaction that is rolled back: it learns whether the table holds rows
    const prepared = yield* (dryRun ? sink.rolledBackTransaction(sink.prepare(stream)) : sink.prepare(stream))
    yield* Drift.logChanges(prepared.changes, dryRun)
    yield* sink.lock(stream)
    const load = slice ? Effect.succeed(undefined) : loadCheckpoint(given, prepared.state)
    const checkpoint = yield* recording(given, load, (s, checkpoint) => ({ ...s, checkpoint, loaded: true }))
    const fields = yield* Drift.tracker(sink, stream)
    const full = !slice && (options.fullRefresh === true || (yield* Deletes.fullReadDue(sink, stream, given.startedAt, dryRun)))
    const bounds = Window.boundsOf(stream, CheckpointPolicy.startFrom(stream.source.incremental, checkpoint, full), end, slice)
    const complete = Deletes.isComplete(stream, checkpoint, full, slice !== undefined || bounds.end !== undefined)
    // the stream as the batches write it (deletes: the run's time, and keys kept only for a complete read)
    const run: Run = { ...given, stream: Deletes.forRun(stream, given.startedAt, complete), end: bounds.end }
    yield* Effect.logInfo("run.start").pipe(Effect.annotateLogs({
      checkpoint: checkpoint ?? null, from: Option.getOrNull(bounds.from), end: bounds.end ?? null,
      slice: slice !== undefined, dry_run: dryRun
    }))
    if (!dryRun) yield* recording(run, sink.startRun(stream, options.runId), (s) => ({ ...s, started: true }))
    if (!dryRun) yield* sink.beginLoad(run.stream)

    // Fetch and decode the next batch of pages while the last one is being written (bounded by bytes).
    // A page that repeats an earlier one ends the stream there: the pages before it are written first.
    // The guard's verdict travels as an Either through Stream.map: Stream.mapEffect kept each page alive
    // across an effect, long enough for the collector to promote it (+12 % CPU on a 500k full load).
    const repeats = PageRepeats.guard(stream.name)
    yield* forEachBatch(
      Stream.map(Window.pages(stream, bounds), (page) => repeats(decodePage(run.stream, sink, page, fields.observe))),
      { ...batchLimits, ...options.batch },
      prefetchBelowBytes,
      commitBatch(run, fields.capNotice)
    )

    // The whole stream is read: every record up to `seen` is committed (a replace stream's, not yet shown).
    const { counts, seen, checkpoint: last } = yield* Ref.get(run.state)
    const final = CheckpointPolicy.afterStream(run.type, last, seen, run.end)
    if (final !== undefined && !run.frozen) {
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
  const { frozen, key, sink, store, stream } = run
  if (frozen || cursor === undefined) return { inTransaction: Effect.void, afterCommit: Effect.void }
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
    const checkpoint = run.frozen ? before.checkpoint : (done.next ?? before.checkpoint)
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
    const { rows, written } = yield* BatchRows.write(run.sink, run.stream, batch)
    const quarantined = yield* BatchRows.quarantine(run.sink, run.stream, run.options.runId, batch, rows, written)
    yield* Failpoint.pass("after-upsert")
    const seen = CheckpointPolicy.committed(run.type, before.seen, batch, rows, written.rejected)
    const next = CheckpointPolicy.afterBatch(run.stream.source.incremental?.order, run.type, before.checkpoint, seen, run.end)
    yield* checkpointSaves(run, next).inTransaction
    const fields = Drift.ofBatch(batch)
    yield* run.sink.recordFields(run.stream, run.options.runId, fields.paths)
    return { written, quarantined, seen, next, fields }
  })

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
      slice: state.slice,
      interruptedExitCode: () => options.interruptedExitCode?.() ?? ExitCode.SigTerm
    }, exit, redactor)
    // Record the outcome even when interrupted; a failure to record it must not hide the run's own error.
    if (state.started) yield* Summary.record(sink, key.target, summary, state.complete === true)
    yield* Summary.log(summary)
    return summary
  })
