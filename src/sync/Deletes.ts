/**
 * Deletes in the program (domain/Deletes.ts says what they mean; the sink applies them):
 *
 * - A run decodes with the run's time, so that `mark` stamps a flagged row with it (`forRun`).
 * - A complete read is a run that reads the whole collection: a stream without `incremental`, or
 *   one read from `initial` (`--full-refresh`, no stored checkpoint, or `fullEvery` due: its last
 *   complete read, in `ferry.runs`, is older than that).
 * - `detect: missing` deletes (or marks) the rows a complete read did not see, in a transaction of its
 *   own at the run's very end: after every batch and the final checkpoint committed, only when the
 *   read succeeded, with no invalid record (its key is not known: its row would look missing), and
 *   saw at least one record (unless `allowEmpty`). A table that had no row when the run prepared it
 *   has nothing to delete (and its first load may be COPYed, which records no key).
 */
import { Duration, Effect } from "effect"
import * as Deletes from "../domain/Deletes.js"
import type { StreamSpec } from "../domain/StreamSpec.js"
import type { RunCounts, SinkShape, TargetState } from "../Sink.js"

/** the counts a run of `stream` starts from: `deleted` and `missing` only with deletes */
export const startCounts = (stream: StreamSpec, none: RunCounts): RunCounts =>
  stream.target.deletes === undefined ? none : { ...none, deleted: 0, missing: 0 }

/** whether `fullEvery` makes this run a complete read (it is due: the last one is older, or none) */
export const fullReadDue = (sink: SinkShape, stream: StreamSpec, now: number, dryRun: boolean) =>
  Effect.gen(function*() {
    if (stream.fullEvery === undefined || stream.source.incremental === undefined) return false
    const last = yield* sink.lastCompleteRead(stream)
    const due = last === undefined || now - last >= Duration.toMillis(stream.fullEvery)
    if (due) {
      yield* Effect.logInfo("run.full_read").pipe(Effect.annotateLogs({
        reason: last === undefined ? "no complete read recorded" : "fullEvery: the last complete read is older",
        last_complete_read: last === undefined ? null : new Date(last).toISOString(),
        dry_run: dryRun
      }))
    }
    return due
  })

/**
 * a read of the whole collection: no incremental, or from `initial`; never a bounded one (an `end`, a
 * slice: `bounded`), which did not read what lies past its end
 */
export const isComplete = (stream: StreamSpec, checkpoint: string | undefined, full: boolean, bounded = false): boolean =>
  stream.source.incremental === undefined || (!bounded && (full || checkpoint === undefined))

/**
 * The stream as this run writes it: decoding with the run's time (`at`); a run that is not a complete
 * read keeps no keys (its sink sees no `detect: missing`).
 */
export const forRun = (stream: StreamSpec, at: number, complete: boolean): StreamSpec => {
  if (stream.target.deletes === undefined) return stream
  const decode = Deletes.decoding(stream.target, stream.decode, new Date(at).toISOString())
  const target = Deletes.missing(stream.target) !== undefined && !complete ? { ...stream.target, deletes: undefined } : stream.target
  return { ...stream, target, decode }
}

/** the counts with the rows a complete read missed (a stream with `detect: missing`; the others as they are) */
export const withMissing = (counts: RunCounts, missing: number): RunCounts =>
  counts.missing === undefined ? counts : { ...counts, missing }

interface Ending {
  readonly complete: boolean
  readonly table: TargetState
  readonly counts: RunCounts
  /** the run's time (epoch ms) */
  readonly at: number
}

/** why a complete read deletes nothing, if it does not */
const skipped = (spec: NonNullable<ReturnType<typeof Deletes.missing>>, end: Ending): string | undefined => {
  const invalid = end.counts.quarantined + end.counts.alreadyQuarantined
  if (invalid > 0) return `${invalid} record(s) of this run were invalid: their keys are not known, their rows would look missing`
  if (end.counts.fetched === 0 && !spec.allowEmpty) return "the read saw no record at all (allowEmpty: true deletes then)"
  return undefined
}

/**
 * The end of a successful run of a stream with `detect: missing` (after its last checkpoint): the
 * rows the complete read did not see, deleted or marked in one transaction; their number (0 when none
 * may be). Not for a dry run.
 */
export const finishMissing = (sink: SinkShape, stream: StreamSpec, target: string, end: Ending) =>
  Effect.gen(function*() {
    const spec = Deletes.missing(stream.target)
    if (spec === undefined || !end.complete) return 0
    const why = end.table === "filled" ? skipped(spec, end) : undefined
    const apply = end.table === "filled" && why === undefined
    const n = yield* sink.transaction(stream, sink.deleteMissing(stream, apply ? new Date(end.at).toISOString() : undefined)).pipe(Effect.uninterruptible)
    if (why !== undefined) {
      yield* Effect.logWarning("deletes.skipped").pipe(Effect.annotateLogs({ target, reason: why }))
    } else if (apply) {
      yield* Effect.logInfo("deletes.missing").pipe(Effect.annotateLogs({ target, action: spec.action, rows: n }))
    }
    return n
  })
