/**
 * A run of one stream as the program's steps share it: what it works with, fixed when it starts
 * (`Run`), and what it has done so far (`RunState`, which its end reads whatever the outcome).
 */
import { Effect, Ref } from "effect"
import type { CheckpointKey, CheckpointStoreShape } from "../CheckpointStore.js"
import type { CursorType, StreamSpec } from "../domain/StreamSpec.js"
import type { RunCounts, SinkShape } from "../Sink.js"
import type { BatchLimits } from "./Batches.js"
import type * as Summary from "./Summary.js"
import type * as Window from "./Window.js"

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
  /** `syncAll`: streams at a time (default 1), a parent still before its children */
  readonly concurrency?: number | undefined
  /** called with each stream's summary as it ends, interrupted ones too (the CLI's metrics file) */
  readonly onSummary?: ((summary: Summary.StreamSummary) => void) | undefined
}

export interface Progress extends RunCounts {
  readonly stream: string
  readonly elapsedMs: number
}

/** What a run of one stream works with, fixed when it starts (a child stream's: per parent row). */
export interface Run {
  readonly stream: StreamSpec
  readonly options: SyncOptions
  readonly sink: SinkShape
  readonly store: CheckpointStoreShape
  readonly key: CheckpointKey
  readonly type: CursorType
  readonly dryRun: boolean
  /** the stored checkpoint stays as it is: a dry run, a slice */
  readonly frozen: boolean
  /** the slice this run reads, in the cursor's form (Window.ts) */
  readonly slice?: Window.Resolved | undefined
  /** the read's upper bound: the checkpoint moves no further (CheckpointPolicy.bounded) */
  readonly end?: string | undefined
  readonly startedAt: number
  readonly state: Ref.Ref<RunState>
}

/** What a run has done so far: each step replaces it, and its end reads it whatever the outcome. */
export interface RunState {
  /** the stored checkpoint was read (or the summary reads it: `storedCheckpoint`) */
  readonly loaded: boolean
  /** the run is in `ferry.runs`: its outcome is recorded there too */
  readonly started: boolean
  /** where the stream (a child stream: the current parent row) stands (a dry run's never moves) */
  readonly checkpoint: string | undefined
  /** the greatest cursor committed in this run (a child stream: for the current parent row) */
  readonly seen: string | undefined
  readonly counts: RunCounts
  /** fields no column maps that the stream had never seen, in committed batches (Drift.ts) */
  readonly newFields: ReadonlyArray<string>
  /** the run read the whole collection (Deletes.isComplete) */
  readonly complete?: boolean
  /** the slice it read, in the cursor's form (Window.ts) */
  readonly slice?: Summary.Slice | undefined
  /** a child stream: the parent rows read, and those skipped (`Parents.ts`) */
  readonly parents?: { readonly read: number; readonly skipped: number } | undefined
}

/**
 * `effect`, then the state updated with its result, with no interruption in between: the end of the
 * run reads the state, and must not miss what was done (a run started, a checkpoint loaded or saved).
 */
export const recording = <A, E, R>(run: Run, effect: Effect.Effect<A, E, R>, update: (state: RunState, a: A) => RunState) =>
  Effect.uninterruptibleMask((restore) => Effect.tap(restore(effect), (a) => Ref.update(run.state, (s) => update(s, a))))

/**
 * Where a checkpoint is saved (DESIGN.md "Guarantees"): a transactional store saves it in the
 * transaction that commits the rows it covers; the file store right after that commit (at-least-once,
 * absorbed by the idempotent upsert), if the run still holds the stream's lock. A dry run and a slice save none.
 */
export const checkpointSaves = (run: Run, cursor: string | undefined) => {
  const { frozen, key, sink, store, stream } = run
  if (frozen || cursor === undefined) return { inTransaction: Effect.void, afterCommit: Effect.void }
  return store.transactional
    ? { inTransaction: store.save(key, cursor), afterCommit: Effect.void }
    : { inTransaction: Effect.void, afterCommit: store.save(key, cursor, sink.verifyLock(stream)) }
}
