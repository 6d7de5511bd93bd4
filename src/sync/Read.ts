/**
 * One read of a stream: from its checkpoint (or from the start) to the source's last page, every
 * batch committed, then the final checkpoint. A stream is read once per run; a child stream once per
 * parent row (`Parents.ts`), each read with its own checkpoint.
 */
import { Effect, Option, Ref, Stream } from "effect"
import type { TargetState } from "../Sink.js"
import { batchLimits, forEachBatch, prefetchBelowBytes } from "./Batches.js"
import * as CheckpointPolicy from "./CheckpointPolicy.js"
import { commitBatch } from "./Commit.js"
import * as Deletes from "./Deletes.js"
import type * as Drift from "./Drift.js"
import { loadCheckpoint } from "./LoadCheckpoint.js"
import * as PageRepeats from "./PageRepeats.js"
import { decodePage } from "./Pages.js"
import { recording, checkpointSaves, type Run } from "./Run.js"
import * as Window from "./Window.js"

export type Fields = Effect.Effect.Success<ReturnType<typeof Drift.tracker>>

/**
 * Reads `given`'s stream through, from where its checkpoint stands (`table`: what `prepare` found).
 * Returns whether it was a complete read, and the stream as its batches wrote it.
 */
export const read = (given: Run, table: TargetState, fields: Fields, annotations: Record<string, unknown> = {}) =>
  Effect.gen(function*() {
    const { dryRun, options, sink, slice, stream } = given
    // a slice neither reads nor moves the checkpoint (Window.ts)
    const load = slice ? Effect.succeed(undefined) : loadCheckpoint(given, table)
    const checkpoint = yield* recording(given, load, (s, checkpoint) => ({ ...s, checkpoint, seen: undefined, loaded: true }))
    const full = !slice && (options.fullRefresh === true || (yield* Deletes.fullReadDue(sink, stream, given.startedAt, dryRun)))
    const bounds = Window.boundsOf(stream, CheckpointPolicy.startFrom(stream.source.incremental, checkpoint, full), given.end, slice)
    const complete = Deletes.isComplete(stream, checkpoint, full, slice !== undefined || bounds.end !== undefined)
    // the stream as the batches write it (deletes: the run's time, and keys kept only for a complete read)
    const run: Run = { ...given, stream: Deletes.forRun(stream, given.startedAt, complete), end: bounds.end }
    // a child stream's read of one parent row is one of many: at debug level, as pages are
    const start = given.key.parent === undefined ? Effect.logInfo("run.start") : Effect.logDebug("parent.start")
    yield* start.pipe(Effect.annotateLogs({
      checkpoint: checkpoint ?? null, from: Option.getOrNull(bounds.from), end: bounds.end ?? null,
      slice: slice !== undefined, dry_run: dryRun, ...annotations
    }))
    return { run, complete, bounds }
  }).pipe(Effect.flatMap(({ bounds, complete, run }) => Effect.as(readFrom(run, bounds, fields), { run, complete })))

/**
 * Every page from `from`, fetched and decoded while the last batch is written (bounded by bytes). A
 * page that repeats an earlier one ends the stream there: the pages before it are written first. The
 * guard's verdict travels as an Either through Stream.map: Stream.mapEffect kept each page alive across
 * an effect, long enough for the collector to promote it (+12 % CPU on a 500k full load).
 */
const readFrom = (run: Run, bounds: Window.Bounds, fields: Fields) =>
  Effect.gen(function*() {
    const { dryRun, options, sink, stream } = run
    if (!dryRun) yield* sink.beginLoad(stream)
    const repeats = PageRepeats.guard(stream.name)
    yield* forEachBatch(
      Stream.map(Window.pages(stream, bounds), (page) => repeats(decodePage(stream, sink, page, fields.observe))),
      { ...batchLimits, ...options.batch },
      prefetchBelowBytes,
      commitBatch(run, fields.capNotice)
    )
    // The whole stream is read: every record up to `seen` is committed (a replace stream's, not yet shown).
    const { checkpoint: last, seen } = yield* Ref.get(run.state)
    const final = CheckpointPolicy.afterStream(run.type, last, seen, run.end)
    if (final !== undefined && !run.frozen) {
      const saves = checkpointSaves(run, final)
      // only the checkpoint: a transaction of its own for a store that saves in one
      const save = run.store.transactional ? sink.transaction(stream, saves.inTransaction) : saves.afterCommit
      yield* recording(run, save, (s) => ({ ...s, checkpoint: final }))
    }
  })
