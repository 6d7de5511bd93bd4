/**
 * What a run tells about the shape of its table and records: the columns `prepare` added
 * (`schema.change`, once per run, a dry run's too: what it would add), and the fields no column maps
 * that the stream never saw before (`schema.drift`, the summary's `new_fields`: NewFields.ts).
 */
import { Effect } from "effect"
import type { StreamSpec } from "../domain/StreamSpec.js"
import type { SchemaChange, SinkShape } from "../Sink.js"
import * as NewFields from "./NewFields.js"

/** one `schema.change` line per column added; `filled` rows took a value from the record column */
export const logChanges = (changes: ReadonlyArray<SchemaChange>, dryRun: boolean) =>
  Effect.forEach(changes, (change) =>
    Effect.logInfo("schema.change").pipe(Effect.annotateLogs({
      table: change.table,
      column: change.column,
      type: change.type,
      ...(change.filled === undefined
        ? {
          filled: null,
          hint: "the table keeps no record column: its rows get a value when a run writes them again; run with --full-refresh to fill them all"
        }
        : { filled: change.filled, unfit: change.unfit }),
      ...(dryRun ? { dry_run: true, would: "add the column; a dry run changes nothing" } : {})
    })), { discard: true })

/** The run's tracker of new fields, knowing the paths the stream recorded before. */
export const tracker = (sink: SinkShape, stream: StreamSpec) =>
  Effect.map(sink.knownFields(stream), (known) => NewFields.make(stream.target, known))

/** the new fields of a batch of pages */
export const ofBatch = (pages: ReadonlyArray<{ readonly fields: NewFields.Found | undefined }>): NewFields.Found => {
  const withFields = pages.filter((p) => p.fields !== undefined).map((p) => p.fields!)
  return { paths: withFields.flatMap((f) => f.paths), reported: withFields.flatMap((f) => f.reported) }
}

/** one `schema.drift` line for the new fields a committed batch brought */
export const logDrift = (found: NewFields.Found, capped: boolean) =>
  found.reported.length === 0 && !capped ? Effect.void : Effect.logInfo("schema.drift").pipe(Effect.annotateLogs({
    new_fields: found.reported,
    ...(capped ? { capped: `at most ${NewFields.maxPaths} fields are tracked per stream; newer ones are not reported` } : {})
  }))
