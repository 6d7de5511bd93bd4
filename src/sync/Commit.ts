/**
 * One batch of pages committed: its rows (as the sink staged them), its quarantined records and the
 * checkpoint it moves to, in one transaction (rolled back in a dry run), then counted.
 */
import { Clock, Effect, Ref } from "effect"
import * as Failpoint from "../lib/Failpoint.js"
import * as Telemetry from "../lib/Telemetry.js"
import type { QuarantineResult, WriteResult } from "../Sink.js"
import * as CheckpointPolicy from "./CheckpointPolicy.js"
import * as Drift from "./Drift.js"
import type { DecodedPage, Rows } from "./Pages.js"
import { checkpointSaves, type Run, type RunState } from "./Run.js"
import * as Summary from "./Summary.js"

/**
 * Writes a batch of pages in one transaction (rolled back in a dry run) with the checkpoint it moves
 * to, then counts it. The stream's last batch (`last`: the read ended in it) carries the stream's final
 * checkpoint: a stream whose checkpoint moves only at its end (not `order: asc`) then needs no
 * transaction of its own for it, which a child stream paid once per parent row. A signal lets the
 * transaction finish, never cutting it in half, and then waits for its bookkeeping too (the file
 * checkpoint, the counts and the checkpoint the summary reports), or the summary would under-count it.
 */
export const commitBatch = (run: Run, capNotice: () => boolean) => (batch: ReadonlyArray<DecodedPage>, last: boolean) =>
  Effect.gen(function*() {
    const { dryRun, options, sink, stream } = run
    const before = yield* Ref.get(run.state)
    const work = writeBatch(run, before, batch, last)
    const dry = Effect.zipRight(Effect.zipRight(sink.prepare(stream), sink.beginLoad(stream)), work)
    const done = yield* (dryRun ? sink.rolledBackTransaction(dry) : sink.transaction(stream, work))
    yield* Failpoint.pass("after-commit")
    yield* checkpointSaves(run, done.next).afterCommit
    const counts = Summary.addBatch(before.counts, batch, done.written, done.quarantined)
    const checkpoint = run.frozen ? before.checkpoint : (done.next ?? before.checkpoint)
    const newFields = [...before.newFields, ...done.fields.reported]
    yield* Ref.set(run.state, { ...before, seen: done.seen, checkpoint, counts, newFields })
    yield* Drift.logDrift(done.fields, capNotice())
    // a line per page only when debug lines are written (annotating costs a map of them per page)
    yield* Effect.whenLogLevel(
      Effect.forEach(batch, (page) =>
        Effect.logDebug("page").pipe(
          Effect.annotateLogs({ url: page.url, records: page.records, bytes: page.bytes, retries: page.retries })
        ), { discard: true }),
      "Debug"
    )
    if (options.onProgress) {
      const now = yield* Clock.currentTimeMillis
      options.onProgress({ stream: stream.name, ...counts, elapsedMs: now - run.startedAt })
    }
    const { inserted, unchanged, updated } = done.written
    yield* Telemetry.annotate({ "ferry.inserted": inserted, "ferry.updated": updated, "ferry.unchanged": unchanged })
  }).pipe(
    Telemetry.span("ferry.batch.commit", () => ({
      "ferry.stream": run.stream.name,
      "ferry.pages": batch.length,
      "ferry.records": batch.reduce((n, p) => n + p.records, 0),
      "ferry.rows": batch.reduce((n, p) => n + p.valid, 0),
      "ferry.bytes": batch.reduce((n, p) => n + p.bytes, 0),
      "ferry.dry_run": run.dryRun
    })),
    Effect.uninterruptible
  )

/** The work of a batch's transaction: its rows, its quarantined records and its checkpoint. */
const writeBatch = (run: Run, before: RunState, batch: ReadonlyArray<DecodedPage>, last: boolean) =>
  Effect.gen(function*() {
    const { rows, written } = yield* writeRows(run, batch)
    const quarantined = yield* quarantine(run, batch, rows, written)
    yield* Failpoint.pass("after-upsert")
    const seen = CheckpointPolicy.committed(run.type, before.seen, batch, rows, written.rejected)
    const next = last
      ? CheckpointPolicy.afterStream(run.type, before.checkpoint, seen, run.end)
      : CheckpointPolicy.afterBatch(run.stream.source.incremental?.order, run.type, before.checkpoint, seen, run.end)
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
