/**
 * The program: pages from the Source -> rows by the stream's decoder -> one transaction per batch of
 * pages (rows, quarantined records and, when allowed, the checkpoint) -> a summary. The next batch is
 * fetched and decoded while the last one is written. When the sink has a bulk form for the stream (a
 * first load on a server: COPY text), each page is encoded as it is decoded and only that form is kept;
 * a refused bulk write falls back to the rows, parsed again from the page's body.
 * It knows no HTTP and no SQL, only the services.
 *
 * Checkpoint rules (DESIGN.md "Guarantees"):
 * - with `order: asc` it advances after every committed batch, to the greatest cursor committed so far;
 *   otherwise only when the whole stream has been read;
 * - it never moves backwards (it is the max of the stored value and what was written);
 * - only rows the sink accepted count: a row Postgres refused (quarantined at write time) does not;
 * - with a transactional store it commits with the page's rows; with the file store it is written
 *   right after the commit (at-least-once, absorbed by the idempotent upsert), if the run still holds
 *   the stream's lock;
 * - it belongs to the stream and its target table, and applies only to a table that holds rows.
 */
import { Cause, Chunk, Clock, Effect, Either, Exit, Fiber, Option, Stream } from "effect"
import type { Scope } from "effect"
import { CheckpointStore, type CheckpointStoreShape, keyOf } from "../CheckpointStore.js"
import * as Cursor from "../domain/Cursor.js"
import * as PageRepeats from "./PageRepeats.js"
import { ExitCode, InvalidRecords, type FerryError } from "../domain/Errors.js"
import * as Failpoint from "../lib/Failpoint.js"
import { redactor } from "../cli/Logging.js"
import { Sink, type Bulk, type QuarantineItem, type QuarantineResult, type RunCounts, type SinkShape, type TargetState, type WriteResult } from "../Sink.js"
import { pagesOf, type Page, type Source } from "../Source.js"
import type { CursorType, Row, StreamSpec } from "../domain/StreamSpec.js"

export interface SyncOptions {
  /** ignore the stored checkpoint for this run (it still never moves backwards) */
  readonly fullRefresh?: boolean | undefined
  /** fetch, decode and write inside transactions that are rolled back: real counts, nothing kept */
  readonly dryRun?: boolean | undefined
  readonly runId: string
  /**
   * Pages go into one transaction until the batch holds this many records or body bytes, or waited this
   * long (defaults: `batchLimits`); `{ records: 1 }` writes one transaction per page.
   */
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

export interface StreamSummary extends RunCounts {
  readonly stream: string
  readonly runId: string
  readonly status: "succeeded" | "failed" | "interrupted"
  readonly checkpoint: string | undefined
  readonly durationMs: number
  readonly dryRun: boolean
  readonly exitCode: number
  readonly error: string | undefined
}

interface Decoded {
  readonly rows: Array<{ readonly row: Row; readonly raw: unknown }>
  readonly invalid: Array<QuarantineItem>
}

/**
 * A page ready to write. Its rows are kept as they are, or, when the sink took them in bulk form and
 * the source can parse the page again, only as that form: the records themselves are dropped (they
 * are most of the memory in flight) and `rows()` rebuilds them in the rare case the bulk write is refused.
 */
interface DecodedPage extends Measured {
  readonly url: string
  readonly retries: number
  readonly invalid: Array<QuarantineItem>
  /** how many of its records decoded to rows */
  readonly valid: number
  /** the greatest cursor of the page's rows */
  readonly cursor: string | undefined
  /** what the page holds, to catch a source that repeats pages under new tokens (PageRepeats.ts) */
  readonly signature: number | undefined
  readonly bulk: Bulk | undefined
  /** the page's rows: kept, or parsed and decoded again */
  readonly rows: () => Decoded["rows"]
}

const decodeRecords = (stream: StreamSpec, records: ReadonlyArray<unknown>): Decoded => {
  const rows: Decoded["rows"] = []
  const invalid: Array<QuarantineItem> = []
  for (const raw of records) {
    const decoded = stream.decode(raw)
    if (Either.isRight(decoded)) rows.push({ row: decoded.right, raw })
    else invalid.push({ raw, reason: decoded.left })
  }
  return { rows, invalid }
}

const decodePage = (stream: StreamSpec, sink: SinkShape, page: Page): DecodedPage => {
  const { invalid, rows } = decodeRecords(stream, page.records)
  const cursor = Cursor.greatest(Cursor.typeOf(stream), undefined, rows.map((r) => r.row.cursor))
  const bulk = rows.length === 0 ? undefined : sink.encode(stream, rows.map((r) => r.row))
  const measured = { url: page.url, retries: page.retries, records: page.records.length, bytes: page.bytes }
  const common = { ...measured, invalid, valid: rows.length, cursor, signature: PageRepeats.signature(rows, invalid), bulk }
  if (bulk !== undefined && page.reparse !== undefined) return { ...common, rows: decodeAgain(stream, page.reparse) }
  return { ...common, rows: () => rows }
}

/**
 * The rows of a page parsed again. A function of its own so that the closure holds only `stream` and
 * `reparse`: a closure made inside decodePage would share its scope, and with it the rows and the page.
 */
const decodeAgain = (stream: StreamSpec, reparse: () => ReadonlyArray<unknown>) => () =>
  decodeRecords(stream, reparse()).rows

/**
 * The greatest cursor of the rows Postgres accepted, from `seen` on: what a batch that had rows
 * refused may move the checkpoint to. Rows are refused only by `write` (a refused bulk write falls back
 * to it), so `rows` are the rows written; the refused ones are the very objects in `rejected`.
 */
const acceptedMax = (
  type: CursorType,
  seen: string | undefined,
  rows: Decoded["rows"],
  rejected: WriteResult["rejected"]
): string | undefined => {
  const refused = new Set(rejected.map((r) => r.row))
  return Cursor.greatest(type, seen, rows.filter((r) => !refused.has(r.row)).map((r) => r.row.cursor))
}

/**
 * Pages are written in batches: consecutive pages go into one transaction until the batch holds this
 * many records or body bytes, or has waited this long for its pages. Small pages then cost one
 * transaction per few thousand records, not one each (the round trips and commit of a transaction
 * cost about as much as writing a thousand rows); a slow source still commits at least every second.
 * 10,000 records rather than 5,000: each of a transaction's six round trips waits behind the fiber
 * decoding the next batch (~3 ms on 2 cores), and halving their number took a 500,000-record first
 * load from 2.35 to 2.0 s and a full refresh from 3.85 to 3.3 s (docs/PERFORMANCE.md).
 */
export interface BatchLimits {
  readonly records: number
  readonly bytes: number
  readonly millis: number
}
export const batchLimits: BatchLimits = { records: 10000, bytes: 4 * 1024 * 1024, millis: 1000 }

/**
 * While a batch is written, the next one is fetched and decoded, but only when the batch being
 * written had bodies under this many bytes: at most two small batches, or one large page, are in
 * memory at once (a source that answers 50 MB pages must not have three of them in flight).
 */
export const prefetchBelowBytes = 8 * 1024 * 1024

interface Measured {
  readonly records: number
  readonly bytes: number
}

/**
 * Runs `f` on consecutive batches of the stream's elements, in order (see `batchLimits`). While `f`
 * runs on one batch, the next is pulled in its own fiber if the current one is under `prefetchBytes`.
 * A failure of the source after some elements of a batch were pulled ends that batch: `f` gets it,
 * and the failure surfaces at the next pull, so what was fetched is written first.
 */
const forEachBatch = <A extends Measured, E, R, E2, R2>(
  stream: Stream.Stream<Either.Either<A, E>, E, R>,
  limits: BatchLimits,
  prefetchBytes: number,
  f: (batch: ReadonlyArray<A>) => Effect.Effect<void, E2, R2>
): Effect.Effect<void, E | E2, R | R2 | Scope.Scope> =>
  Effect.gen(function*() {
    const pullChunk = yield* Stream.toPull(stream)
    // a pull may return several elements at once: hand them out one by one
    let pending: Array<Either.Either<A, E>> = []
    const pullOne: Effect.Effect<Option.Option<A>, E, R> = Effect.gen(function*() {
      while (pending.length === 0) pending = Chunk.toArray(yield* pullChunk).reverse()
      const next = pending.pop()!
      // an element that is a failure fails as the stream would (a Left, not Stream.mapEffect: see runStream)
      return Either.isLeft(next) ? yield* Effect.fail(next.left) : Option.some(next.right)
    }).pipe(Effect.catchAll((e: Option.Option<E> | E) =>
      Option.isOption(e) ? Option.match(e, { onNone: () => Effect.succeedNone, onSome: (x: E) => Effect.fail(x) }) : Effect.fail(e)
    ))
    let ended = false
    let failure: Option.Option<E> = Option.none()
    const pullBatch: Effect.Effect<Array<A>, E, R> = Effect.gen(function*() {
      if (Option.isSome(failure)) return yield* Effect.fail(failure.value)
      const batch: Array<A> = []
      let records = 0
      let bytes = 0
      const startedAt = yield* Clock.currentTimeMillis
      while (!ended) {
        const next = yield* Effect.either(pullOne)
        if (Either.isLeft(next)) {
          if (batch.length === 0) return yield* Effect.fail(next.left)
          failure = Option.some(next.left)
          break
        }
        if (Option.isNone(next.right)) {
          ended = true
          break
        }
        batch.push(next.right.value)
        records += next.right.value.records
        bytes += next.right.value.bytes
        if (records >= limits.records || bytes >= limits.bytes) break
        if ((yield* Clock.currentTimeMillis) - startedAt >= limits.millis) break
      }
      return batch
    })
    let current = yield* pullBatch
    while (current.length > 0) {
      const size = current.reduce((n, a) => n + a.bytes, 0)
      const ahead = size < prefetchBytes ? yield* Effect.fork(pullBatch) : undefined
      yield* f(current)
      current = ahead === undefined ? yield* pullBatch : yield* Fiber.join(ahead)
    }
  })

const zeroCounts = (): { -readonly [K in keyof RunCounts]: RunCounts[K] } => ({
  pages: 0,
  fetched: 0,
  inserted: 0,
  updated: 0,
  unchanged: 0,
  quarantined: 0,
  alreadyQuarantined: 0,
  retries: 0
})

/**
 * The stored checkpoint, when it applies. Never to a table this run created or found empty: that
 * checkpoint was not made by filling it (another config's stream of the same name before checkpoints
 * were per table, a renamed or truncated table) and would skip every record before it. The run then
 * starts from `initial`, says why, and forgets its own stale checkpoint (the file store never moves
 * one back). A legacy checkpoint (keyed by the stream alone) is adopted by a table that holds rows.
 */
const loadCheckpoint = (stream: StreamSpec, store: CheckpointStoreShape, table: TargetState, dryRun: boolean) =>
  Effect.gen(function*() {
    const key = keyOf(stream)
    const stored = yield* store.load(key, { adopt: table === "filled" && !dryRun })
    if (Option.isNone(stored)) return undefined
    const { cursor, legacy } = stored.value
    if (table === "filled") {
      if (legacy) yield* Effect.logInfo("checkpoint.adopted").pipe(Effect.annotateLogs({ checkpoint: cursor, target: key.target }))
      return cursor
    }
    const reason = table === "created" ? `table ${key.target} was created by this run` : `table ${key.target} is empty`
    yield* Effect.logWarning("checkpoint.ignored").pipe(
      Effect.annotateLogs({ checkpoint: cursor, target: key.target, legacy, reason: `${reason}: the run starts from initial` })
    )
    // a legacy checkpoint may be another target's: left for it
    if (!legacy && !dryRun) yield* store.clear(key)
    return undefined
  })

/**
 * The stored checkpoint, for the summary of a run that failed before it loaded it (the target did not
 * fit, another run holds the lock): the summary says where the stream stands, not `none`. Not after a
 * database failure or an interruption (the read would fail or wait as well); a failing read is `none`.
 */
const storedCheckpoint = (store: CheckpointStoreShape, key: ReturnType<typeof keyOf>, exit: Exit.Exit<void, FerryError>) => {
  if (Exit.isSuccess(exit) || Cause.isInterrupted(exit.cause)) return Effect.succeed(undefined)
  const error = Cause.failureOption(exit.cause)
  if (Option.isNone(error) || error.value._tag === "DatabaseError") return Effect.succeed(undefined)
  return store.load(key).pipe(
    Effect.map((stored) => Option.getOrUndefined(Option.map(stored, (s) => s.cursor))),
    Effect.orElseSucceed(() => undefined)
  )
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
const messageOf = (cause: Cause.Cause<FerryError>): string | undefined =>
  redactor.redact(
    Cause.isInterruptedOnly(cause)
      ? "interrupted"
      : Option.match(Cause.failureOption(cause), {
        onNone: () => `internal error: ${Cause.pretty(cause).split("\n")[0]}`,
        onSome: (error) => error.message
      })
  )

/**
 * Syncs one stream and returns how it ended, its summary beside its exit. Whatever the outcome,
 * interruption included, the run is recorded in `ferry.runs` and one `run.summary` line is logged
 * whose counts add up: fetched = inserted + updated + unchanged + quarantined + alreadyQuarantined.
 */
export const runStream = (
  stream: StreamSpec,
  options: SyncOptions
): Effect.Effect<
  { readonly summary: StreamSummary; readonly exit: Exit.Exit<void, FerryError> },
  never,
  Sink | CheckpointStore | Source
> =>
  Effect.uninterruptibleMask((restore) => Effect.gen(function*() {
    const sink = yield* Sink
    const store = yield* CheckpointStore
    const dryRun = options.dryRun === true
    const incremental = stream.source.incremental
    const cursorType = Cursor.typeOf(stream)
    const key = keyOf(stream)
    const maxCursor = Cursor.max(cursorType)
    const startedAt = yield* Clock.currentTimeMillis
    const counts = zeroCounts()
    let checkpoint: string | undefined
    let checkpointLoaded = false
    let runStarted = false

    const summaryOf = (status: StreamSummary["status"], exitCode: number, error: string | undefined, now: number) => ({
      stream: stream.name,
      runId: options.runId,
      status,
      ...counts,
      checkpoint,
      durationMs: now - startedAt,
      dryRun,
      exitCode,
      error
    })

    const body = Effect.gen(function*() {
      // a dry run prepares in a transaction that is rolled back: it learns whether the table holds rows
      const table = yield* (dryRun ? sink.rolledBackTransaction(sink.prepare(stream)) : sink.prepare(stream))
      yield* sink.lock(stream)
      checkpoint = yield* loadCheckpoint(stream, store, table, dryRun)
      checkpointLoaded = true
      const start = options.fullRefresh ? incremental?.initial : (checkpoint ?? incremental?.initial)
      const from = start === undefined || incremental === undefined
        ? Option.none()
        : Option.some(Cursor.minusLookback(cursorType, start, incremental.lookback))
      yield* Effect.logInfo("run.start").pipe(
        Effect.annotateLogs({ checkpoint: checkpoint ?? null, from: Option.getOrNull(from), dry_run: dryRun })
      )
      if (!dryRun) {
        yield* sink.startRun(stream, options.runId)
        runStarted = true
      }

      const perPage = incremental?.order === "asc"
      let seen: string | undefined // greatest cursor committed in this run

      const commitBatch = (batch: ReadonlyArray<DecodedPage>) =>
        Effect.gen(function*() {
          const invalid = batch.length === 1 ? batch[0].invalid : batch.flatMap((p) => p.invalid)
          const withRows = batch.filter((p) => p.valid > 0)
          const bulks = withRows.length > 0 && withRows.every((p) => p.bulk !== undefined)
            ? withRows.map((p) => p.bulk!)
            : undefined

          const work = Effect.gen(function*() {
            // the bulk form when every page with rows has one; if the sink refuses it (nothing written), the rows
            let rows: Decoded["rows"] = []
            let result = bulks === undefined ? undefined : yield* sink.writeBulk(stream, bulks)
            if (result === undefined) {
              rows = withRows.length === 1 ? withRows[0].rows() : withRows.flatMap((p) => p.rows())
              result = yield* sink.write(stream, rows.map((r) => r.row))
            }
            const rawOf = result.rejected.length === 0 ? undefined : new Map(rows.map((r) => [r.row, r.raw] as const))
            const quarantined = invalid.concat(
              result.rejected.map(({ reason, row }) => ({ raw: rawOf?.get(row) ?? row.values, reason }))
            )
            const stored: QuarantineResult = quarantined.length > 0
              ? yield* sink.quarantine(stream, options.runId, quarantined)
              : { stored: 0, already: 0 }
            yield* Failpoint.pass("after-upsert")
            // only rows Postgres accepted count toward the checkpoint (a refused row's cursor would skip records)
            const pageMax = result.rejected.length === 0
              ? batch.reduce((max, p) => maxCursor(max, p.cursor), seen)
              : acceptedMax(cursorType, seen, rows, result.rejected)
            const next = perPage ? maxCursor(checkpoint, pageMax) : checkpoint
            const advance = next !== undefined && next !== checkpoint
            if (advance && store.transactional && !dryRun) yield* store.save(key, next)
            return { result, quarantined: stored, pageMax, next, advance }
          })
          // A signal lets the current transaction finish: it is never cut in half.
          const { advance, next, pageMax, quarantined, result } = yield* Effect.uninterruptible(
            dryRun ? sink.rolledBackTransaction(Effect.zipRight(sink.prepare(stream), work)) : sink.transaction(work)
          )
          yield* Failpoint.pass("after-commit")
          if (advance && next !== undefined && !store.transactional && !dryRun) {
            yield* store.save(key, next, sink.verifyLock(stream))
          }

          seen = pageMax
          if (!dryRun) checkpoint = next
          counts.pages += batch.length
          for (const page of batch) {
            counts.fetched += page.records
            counts.retries += page.retries
          }
          counts.inserted += result.inserted
          counts.updated += result.updated
          counts.unchanged += result.unchanged
          counts.quarantined += quarantined.stored
          counts.alreadyQuarantined += quarantined.already
          for (const page of batch) {
            yield* Effect.logDebug("page").pipe(
              Effect.annotateLogs({ url: page.url, records: page.records, bytes: page.bytes, retries: page.retries })
            )
          }
          if (options.onProgress) {
            const now = yield* Clock.currentTimeMillis
            options.onProgress({ stream: stream.name, ...counts, elapsedMs: now - startedAt })
          }
          // Once the transaction is in, a signal waits for its bookkeeping too (the file checkpoint,
          // the counts and the checkpoint the summary reports), or the summary would under-count it.
        }).pipe(Effect.uninterruptible)

      // Fetch and decode the next batch of pages while the last one is being written (bounded by bytes).
      // A page that repeats an earlier one ends the stream there: the pages before it are written first.
      // The guard's verdict travels as an Either through Stream.map: Stream.mapEffect kept each page alive
      // across an effect, long enough for the collector to promote it (+12 % CPU on a 500k full load).
      const repeats = PageRepeats.guard(stream.name)
      yield* forEachBatch(
        Stream.map(pagesOf(stream, from), (page) => repeats(decodePage(stream, sink, page))),
        { ...batchLimits, ...options.batch },
        prefetchBelowBytes,
        commitBatch
      )

      // The whole stream is read: every record up to `seen` is committed.
      const final = maxCursor(checkpoint, seen)
      if (!dryRun && final !== undefined && final !== checkpoint) {
        if (store.transactional) yield* sink.transaction(store.save(key, final))
        else yield* store.save(key, final, sink.verifyLock(stream))
      }
      if (!dryRun) checkpoint = final
      if (counts.quarantined > stream.maxInvalid) {
        return yield* new InvalidRecords({
          stream: stream.name,
          quarantined: counts.quarantined,
          maxInvalid: stream.maxInvalid
        })
      }
    })

    const exit = yield* Effect.exit(restore(Effect.scoped(body)))
    // the retries of the request that finally failed count too
    if (Exit.isFailure(exit)) {
      const error = Cause.failureOption(exit.cause)
      if (Option.isSome(error) && "retries" in error.value && typeof error.value.retries === "number") {
        counts.retries += error.value.retries
      }
    }
    if (!checkpointLoaded) checkpoint = yield* storedCheckpoint(store, key, exit)
    const now = yield* Clock.currentTimeMillis
    const summary: StreamSummary = Exit.isSuccess(exit)
      ? summaryOf("succeeded", ExitCode.Ok, undefined, now)
      : summaryOf(
        Cause.isInterruptedOnly(exit.cause) ? "interrupted" : "failed",
        exitCodeOf(exit.cause, options.interruptedExitCode?.() ?? ExitCode.SigTerm),
        messageOf(exit.cause),
        now
      )
    if (runStarted) {
      // Record the outcome even when interrupted; a failure to record it must not hide the run's own error.
      yield* sink.finishRun({
        runId: summary.runId,
        stream: summary.stream,
        target: key.target,
        status: summary.status,
        counts,
        checkpoint: summary.checkpoint,
        error: summary.error,
        exitCode: summary.exitCode,
        durationMs: summary.durationMs
      }).pipe(
        Effect.catchAll((e) => Effect.logWarning("run.record_failed").pipe(Effect.annotateLogs({ error: e.message }))),
        Effect.uninterruptible
      )
    }
    yield* logSummary(summary)
    return { summary, exit }
  })).pipe(Effect.annotateLogs({ run_id: options.runId, stream: stream.name }))

/** Syncs one stream: its summary, or its typed error (after the run is recorded and logged). */
export const syncStream = (stream: StreamSpec, options: SyncOptions) =>
  Effect.flatMap(runStream(stream, options), ({ exit, summary }) => Effect.as(exit, summary))

const logSummary = (summary: StreamSummary) => {
  const fields = {
    status: summary.status,
    pages: summary.pages,
    fetched: summary.fetched,
    inserted: summary.inserted,
    updated: summary.updated,
    unchanged: summary.unchanged,
    quarantined: summary.quarantined,
    already_quarantined: summary.alreadyQuarantined,
    retries: summary.retries,
    duration_ms: summary.durationMs,
    checkpoint: summary.checkpoint ?? null,
    dry_run: summary.dryRun,
    exit_code: summary.exitCode,
    ...(summary.error === undefined ? {} : { error: summary.error })
  }
  const log = summary.status === "succeeded" ? Effect.logInfo("run.summary") : Effect.logError("run.summary")
  return log.pipe(Effect.annotateLogs(fields))
}

/**
 * Syncs each stream in turn. A failing stream does not stop the others (they are independent);
 * an interruption stops the run after the stream's current transaction.
 */
export const syncAll = (streams: ReadonlyArray<StreamSpec>, options: SyncOptions) =>
  Effect.gen(function*() {
    const summaries: Array<StreamSummary> = []
    for (const stream of streams) {
      const { exit, summary } = yield* runStream(stream, options)
      summaries.push(summary)
      if (Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)) break
    }
    return summaries
  })
