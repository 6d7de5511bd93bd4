/** A batch's rows into the sink (Sync.ts writes them in the batch's transaction), and its records to quarantine. */
import { Effect } from "effect"
import type { StreamSpec } from "../domain/StreamSpec.js"
import type { QuarantineResult, SinkShape, WriteResult } from "../Sink.js"
import type { DecodedPage, Rows } from "./Pages.js"

/**
 * The batch's rows, as the sink staged them; `rows`: those the sink asked for (to write them row by
 * row: `rejected` names rows of these), empty when it wrote the staged form.
 */
export const write = (sink: SinkShape, stream: StreamSpec, batch: ReadonlyArray<DecodedPage>) =>
  Effect.gen(function*() {
    const withRows = batch.filter((p) => p.valid > 0)
    let rows: Rows = []
    const given = () => {
      rows = withRows.length === 1 ? withRows[0].rows() : withRows.flatMap((p) => p.rows())
      return rows.map((r) => r.row)
    }
    const written = yield* sink.writeStaged(stream, withRows.map((p) => p.staged!), given)
    return { rows, written }
  })

/** The records that did not decode and the rows Postgres refused (as the records they came from). */
export const quarantine = (
  sink: SinkShape,
  stream: StreamSpec,
  runId: string,
  batch: ReadonlyArray<DecodedPage>,
  rows: Rows,
  written: WriteResult
) => {
  const invalid = batch.length === 1 ? batch[0].invalid : batch.flatMap((p) => p.invalid)
  const rawOf = written.rejected.length === 0 ? undefined : new Map(rows.map((r) => [r.row, r.raw] as const))
  const items = invalid.concat(written.rejected.map(({ reason, row }) => ({ raw: rawOf?.get(row) ?? row.values, reason })))
  return items.length > 0
    ? sink.quarantine(stream, runId, items)
    : Effect.succeed<QuarantineResult>({ stored: 0, already: 0 })
}
