/**
 * The program: pages from the Source -> rows by the stream's decoder -> one transaction per batch of
 * pages (rows, quarantined records and, when allowed, the checkpoint) -> a summary. The next batch is
 * fetched and decoded while the last one is written (Batches.ts). Each page's rows are staged for the
 * sink as they are decoded; when the staged form holds them (a first load's COPY text) only it is kept,
 * and the sink asks for the rows, parsed again from the page's body, only if it cannot write that form
 * (Pages.ts). It knows no HTTP and no SQL, only the services. One read of a stream is Read.ts, a batch
 * Commit.ts, a child stream's reads (one per parent row) Parents.ts; the checkpoint rules are
 * CheckpointPolicy.ts; how a replace stream's run ends, Replace.ts.
 */
import { Clock, Deferred, Effect, type Exit, FiberRef, Ref } from "effect"
import { CheckpointStore, keyOf } from "../CheckpointStore.js"
import * as Cursor from "../domain/Cursor.js"
import { ExitCode, InvalidRecords, type FerryError } from "../domain/Errors.js"
import { CurrentRedactor } from "../domain/Secrets.js"
import type { StreamSpec } from "../domain/StreamSpec.js"
import * as Telemetry from "../lib/Telemetry.js"
import { Sink } from "../Sink.js"
import type { Source } from "../Source.js"
import * as Deletes from "./Deletes.js"
import * as Drift from "./Drift.js"
import { readParents } from "./Parents.js"
import { read } from "./Read.js"
import * as Replace from "./Replace.js"
import { recording, type Run, type RunState, type SyncOptions } from "./Run.js"
import * as Summary from "./Summary.js"
import type { StreamSummary } from "./Summary.js"
import * as Window from "./Window.js"

export type { Progress, SyncOptions } from "./Run.js"

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
      const exit = yield* Effect.exit(restore(Effect.scoped(sync(run))).pipe(
        // the span ends with the run's counts so far, whatever the outcome
        Telemetry.annotateAtEnd(Effect.map(Ref.get(state), (s) => countAttributes(s.counts))),
        Telemetry.span("ferry.stream.run", () => ({
          "ferry.stream": stream.name,
          "ferry.run_id": options.runId,
          "ferry.target": run.key.target,
          "ferry.dry_run": run.dryRun
        }))
      ))
      const summary = yield* finish(run, exit)
      yield* Telemetry.countRun(summary)
      return { summary, exit }
    })
  ).pipe(Effect.annotateLogs({ run_id: options.runId, stream: stream.name }))

const countAttributes = (counts: RunState["counts"]) => ({
  "ferry.pages": counts.pages,
  "ferry.fetched": counts.fetched,
  "ferry.inserted": counts.inserted,
  "ferry.updated": counts.updated,
  "ferry.unchanged": counts.unchanged,
  "ferry.quarantined": counts.quarantined,
  "ferry.retries": counts.retries
})

/** Syncs one stream: its summary, or its typed error (after the run is recorded and logged). */
export const syncStream = (stream: StreamSpec, options: SyncOptions) =>
  Effect.flatMap(syncStreamExit(stream, options), ({ exit, summary }) => Effect.as(exit, summary))

/** The streams in an order that runs each parent before its children, else as given. */
const parentsFirst = (streams: ReadonlyArray<StreamSpec>): ReadonlyArray<StreamSpec> => {
  const ordered: Array<StreamSpec> = []
  const visit = (stream: StreamSpec, path: ReadonlySet<string>) => {
    if (ordered.includes(stream) || path.has(stream.name)) return
    const parent = streams.find((s) => s.name === stream.parent?.stream)
    if (parent !== undefined) visit(parent, new Set([...path, stream.name]))
    ordered.push(stream)
  }
  for (const stream of streams) visit(stream, new Set())
  return ordered
}

/**
 * Syncs the streams, `options.concurrency` at a time (default one after another), a parent before its
 * children: a child waits until its parent's run has ended, however it ended (it reads the parent's
 * table as it stands). A failing stream does not stop the others (they are independent). An
 * interruption lets each running stream finish its current transaction and record its run; the
 * streams not started yet are not started.
 */
export const syncAll = (streams: ReadonlyArray<StreamSpec>, given: SyncOptions) =>
  Effect.gen(function*() {
    // one `now` for every stream: `end: now - 1 hour` is the same instant in each
    const options = { ...given, now: given.now ?? (yield* Clock.currentTimeMillis) }
    const ordered = parentsFirst(streams)
    const ended = new Map(yield* Effect.forEach(ordered, (s) => Effect.map(Deferred.make<void>(), (d) => [s.name, d] as const)))
    const runOne = (stream: StreamSpec) =>
      Effect.gen(function*() {
        const parent = stream.parent === undefined ? undefined : ended.get(stream.parent.stream)
        if (parent !== undefined) yield* Deferred.await(parent)
        const { summary } = yield* syncStreamExit(stream, options)
        yield* Deferred.succeed(ended.get(stream.name)!, undefined)
        return summary
      })
    const concurrency = Math.max(1, options.concurrency ?? 1)
    if (concurrency === 1) {
      const summaries: Array<StreamSummary> = []
      for (const stream of ordered) {
        const summary = yield* runOne(stream)
        summaries.push(summary)
        if (summary.status === "interrupted") break
      }
      return summaries
    }
    return yield* Effect.forEach(ordered, runOne, { concurrency })
  })

/** The run: the target prepared and locked, the stream read (a child stream: once per parent row), how it ends. */
const sync = (given: Run) =>
  Effect.gen(function*() {
    const { dryRun, options, sink, stream } = given
    const { end, slice } = yield* Window.resolve(stream, options, given.startedAt)
    if (slice) yield* Ref.update(given.state, (s) => ({ ...s, slice }))
    const run: Run = { ...given, end, slice }
    // a dry run prepares in a transaction that is rolled back: it learns whether the table holds rows
    const prepared = yield* (dryRun ? sink.rolledBackTransaction(sink.prepare(stream)) : sink.prepare(stream))
    yield* Drift.logChanges(prepared.changes, dryRun)
    yield* sink.lock(stream, options.runId)
    const fields = yield* Drift.tracker(sink, stream)
    if (!dryRun) yield* recording(run, sink.startRun(stream, options.runId), (s) => ({ ...s, started: true }))
    if (stream.parent !== undefined) {
      yield* Effect.logInfo("run.start").pipe(Effect.annotateLogs({ parent_stream: stream.parent.stream, dry_run: dryRun }))
      yield* readParents(run, stream.parent, prepared.state, fields)
      return yield* tooManyInvalid(run)
    }
    const done = yield* read(run, prepared.state, fields)
    yield* tooManyInvalid(run)
    if (stream.target.write === "replace" && !dryRun) yield* Replace.finishLoad(sink, stream, run.key.target)
    const { counts } = yield* Ref.get(run.state)
    const ending = { complete: done.complete, table: prepared.state, counts, at: run.startedAt }
    const missing = dryRun ? 0 : yield* Deletes.finishMissing(sink, done.run.stream, run.key.target, ending)
    yield* Ref.update(run.state, (s) => ({ ...s, complete: done.complete, counts: Deletes.withMissing(s.counts, missing) }))
  })

const tooManyInvalid = (run: Run) =>
  Effect.flatMap(Ref.get(run.state), ({ counts }) =>
    counts.quarantined > run.stream.maxInvalid
      ? new InvalidRecords({ stream: run.stream.name, quarantined: counts.quarantined, maxInvalid: run.stream.maxInvalid })
      : Effect.void)

/** The run's summary, recorded in `ferry.runs` (if the run is there) and logged. */
const finish = (run: Run, exit: Exit.Exit<void, FerryError>) =>
  Effect.gen(function*() {
    const { key, options, sink, stream } = run
    const state = yield* Ref.get(run.state)
    const redactor = yield* FiberRef.get(CurrentRedactor)
    // a child stream has a checkpoint per parent row, none of its own
    const checkpoint = stream.parent !== undefined ? undefined
      : state.loaded ? state.checkpoint : yield* Summary.storedCheckpoint(run.store, key, exit)
    const summary = Summary.make({
      stream: stream.name,
      runId: options.runId,
      counts: state.counts,
      newFields: state.newFields,
      checkpoint,
      parents: state.parents,
      slice: state.slice,
      durationMs: (yield* Clock.currentTimeMillis) - run.startedAt,
      dryRun: run.dryRun,
      interruptedExitCode: () => options.interruptedExitCode?.() ?? ExitCode.SigTerm
    }, exit, redactor)
    // Record the outcome even when interrupted; a failure to record it must not hide the run's own error.
    if (state.started) yield* Summary.record(sink, key.target, summary, state.complete === true)
    yield* Summary.log(summary)
    options.onSummary?.(summary)
    return summary
  })
