/**
 * What a run reports: its counts as batches commit, and at its end one summary (status, counts,
 * checkpoint, exit code, error) that is logged as `run.summary` and recorded in `ferry.runs`.
 */
import { Cause, Effect, Exit, Option } from "effect"
import { ExitCode, type FerryError } from "../domain/Errors.js"
import type { Redactor } from "../domain/Secrets.js"
import type { CheckpointKey, CheckpointStoreShape } from "../CheckpointStore.js"
import type { QuarantineResult, RunCounts, SinkShape, WriteResult } from "../Sink.js"

export interface StreamSummary extends RunCounts {
  readonly stream: string
  readonly runId: string
  readonly status: "succeeded" | "failed" | "interrupted"
  readonly checkpoint: string | undefined
  readonly durationMs: number
  readonly dryRun: boolean
  readonly exitCode: number
  readonly error: string | undefined
  /** dotted paths of fields no column maps, first seen by this run (logged as `new_fields`) */
  readonly newFields: ReadonlyArray<string>
  /** a child stream: the parent rows read, and those skipped (a 404, or values that make no URL) */
  readonly parents?: { readonly read: number; readonly skipped: number } | undefined
  /** the slice the run read (`ferry run --from/--to`): it neither read nor moved the checkpoint */
  readonly slice?: Slice | undefined
}

/** a slice's bounds, in the cursor's form; absent: from `initial`, or up to no end */
export interface Slice {
  readonly from: string | undefined
  readonly to: string | undefined
}

export const noCounts: RunCounts = {
  pages: 0,
  fetched: 0,
  inserted: 0,
  updated: 0,
  unchanged: 0,
  quarantined: 0,
  alreadyQuarantined: 0,
  retries: 0
}

/** The counts once a batch of pages is committed. */
export const addBatch = (
  counts: RunCounts,
  pages: ReadonlyArray<{ readonly records: number; readonly retries: number }>,
  written: WriteResult,
  quarantined: QuarantineResult
): RunCounts => {
  let fetched = counts.fetched
  let retries = counts.retries
  for (const page of pages) {
    fetched += page.records
    retries += page.retries
  }
  return {
    pages: counts.pages + pages.length,
    fetched,
    inserted: counts.inserted + written.inserted,
    updated: counts.updated + written.updated,
    unchanged: counts.unchanged + written.unchanged,
    quarantined: counts.quarantined + quarantined.stored,
    alreadyQuarantined: counts.alreadyQuarantined + quarantined.already,
    retries,
    ...(counts.deleted === undefined ? {} : { deleted: counts.deleted + (written.deleted ?? 0), missing: counts.missing })
  }
}

/** The retries of the request that finally failed the run count too. */
const withFailedRetries = (counts: RunCounts, exit: Exit.Exit<void, FerryError>): RunCounts => {
  if (Exit.isSuccess(exit)) return counts
  const error = Cause.failureOption(exit.cause)
  return Option.isSome(error) && "retries" in error.value && typeof error.value.retries === "number"
    ? { ...counts, retries: counts.retries + error.value.retries }
    : counts
}

const exitCodeOf = (cause: Cause.Cause<FerryError>, interrupted: number): number =>
  Cause.isInterruptedOnly(cause)
    ? interrupted
    : Option.match(Cause.failureOption(cause), {
      onNone: () => ExitCode.Software,
      onSome: (error) => error.exitCode
    })

/**
 * The error of the summary, `ferry.runs.error` and the run's result: redacted here, since it leaves
 * through the database too, not only through the logger (a token in the URL's path is in the message).
 */
const messageOf = (cause: Cause.Cause<FerryError>, redactor: Redactor): string =>
  redactor.redact(
    Cause.isInterruptedOnly(cause)
      ? "interrupted"
      : Option.match(Cause.failureOption(cause), {
        onNone: () => `internal error: ${Cause.pretty(cause).split("\n")[0]}`,
        onSome: (error) => error.message
      })
  )

/** What a run knows of itself when it ends, whatever the outcome. */
interface Ended {
  readonly stream: string
  readonly runId: string
  readonly counts: RunCounts
  readonly newFields: ReadonlyArray<string>
  readonly checkpoint: string | undefined
  readonly parents?: StreamSummary["parents"]
  readonly durationMs: number
  readonly dryRun: boolean
  readonly slice?: Slice | undefined
  /** the exit code of an interrupted run, asked only then */
  readonly interruptedExitCode: () => number
}

export const make = (run: Ended, exit: Exit.Exit<void, FerryError>, redactor: Redactor): StreamSummary => {
  const outcome = Exit.isSuccess(exit)
    ? { status: "succeeded" as const, exitCode: ExitCode.Ok, error: undefined }
    : {
      status: Cause.isInterruptedOnly(exit.cause) ? "interrupted" as const : "failed" as const,
      exitCode: exitCodeOf(exit.cause, run.interruptedExitCode()),
      error: messageOf(exit.cause, redactor)
    }
  return {
    stream: run.stream,
    runId: run.runId,
    status: outcome.status,
    ...withFailedRetries(run.counts, exit),
    checkpoint: run.checkpoint,
    durationMs: run.durationMs,
    dryRun: run.dryRun,
    exitCode: outcome.exitCode,
    error: outcome.error,
    newFields: run.newFields,
    ...(run.parents === undefined ? {} : { parents: run.parents }),
    ...(run.slice === undefined ? {} : { slice: run.slice })
  }
}

/** The counts of a summary, for `ferry.runs`. */
const countsOf = (summary: StreamSummary): RunCounts => ({
  pages: summary.pages,
  fetched: summary.fetched,
  inserted: summary.inserted,
  updated: summary.updated,
  unchanged: summary.unchanged,
  quarantined: summary.quarantined,
  alreadyQuarantined: summary.alreadyQuarantined,
  retries: summary.retries,
  // a stream with deletes (Sync/Deletes.ts): the rows its flags deleted, and those a complete read missed
  ...(summary.deleted === undefined ? {} : { deleted: summary.deleted, missing: summary.missing })
})

/** `alreadyQuarantined` -> `already_quarantined`: the log's field names */
const snakeCase = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)

export const log = (summary: StreamSummary) => {
  const fields = {
    status: summary.status,
    ...Object.fromEntries(Object.entries(countsOf(summary)).map(([name, n]) => [snakeCase(name), n])),
    duration_ms: summary.durationMs,
    checkpoint: summary.checkpoint ?? null,
    dry_run: summary.dryRun,
    exit_code: summary.exitCode,
    new_fields: summary.newFields,
    ...(summary.parents === undefined ? {} : { parents: summary.parents.read, parents_skipped: summary.parents.skipped }),
    ...(summary.slice === undefined ? {} : { slice: { from: summary.slice.from ?? null, to: summary.slice.to ?? null } }),
    ...(summary.error === undefined ? {} : { error: summary.error })
  }
  const log = summary.status === "succeeded" ? Effect.logInfo("run.summary") : Effect.logError("run.summary")
  return log.pipe(Effect.annotateLogs(fields))
}

/**
 * Records the run's outcome in `ferry.runs` (`completeRead`: it read the whole collection); a failure
 * to record it is logged, not the run's own error.
 */
export const record = (sink: SinkShape, target: string, summary: StreamSummary, completeRead = false) =>
  sink.finishRun({
    runId: summary.runId,
    stream: summary.stream,
    target,
    status: summary.status,
    counts: countsOf(summary),
    checkpoint: summary.checkpoint,
    error: summary.error,
    exitCode: summary.exitCode,
    durationMs: summary.durationMs,
    completeRead: completeRead && summary.status === "succeeded",
    slice: summary.slice !== undefined
  }).pipe(
    Effect.catchAll((e) => Effect.logWarning("run.record_failed").pipe(Effect.annotateLogs({ error: e.message }))),
    Effect.uninterruptible
  )

/**
 * The stored checkpoint, for the summary of a run that failed before it loaded it (the target did not
 * fit, another run holds the lock): the summary says where the stream stands, not `none`. Not after a
 * database failure or an interruption (the read would fail or wait as well); a failing read is `none`.
 */
export const storedCheckpoint = (store: CheckpointStoreShape, key: CheckpointKey, exit: Exit.Exit<void, FerryError>) => {
  if (Exit.isSuccess(exit) || Cause.isInterrupted(exit.cause)) return Effect.succeed(undefined)
  const error = Cause.failureOption(exit.cause)
  if (Option.isNone(error) || error.value._tag === "DatabaseError") return Effect.succeed(undefined)
  return store.load(key).pipe(
    Effect.map((stored) => Option.getOrUndefined(Option.map(stored, (s) => s.cursor))),
    Effect.orElseSucceed(() => undefined)
  )
}
