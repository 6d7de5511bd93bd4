/**
 * The checkpoint rules (DESIGN.md "Guarantees"), as pure functions; Sync.ts applies them.
 * - A stored checkpoint belongs to the stream and its target table, and applies only to a table that
 *   holds rows (`stored`).
 * - With `order: asc` it advances after every committed batch, to the greatest cursor committed so far;
 *   otherwise only when the whole stream has been read (`afterBatch`, `afterStream`).
 * - It never moves backwards: it is the max of the stored value and what was written.
 * - Only rows the sink accepted count: a row Postgres refused (quarantined at write time) does not
 *   (`committed`).
 * - A bounded read (`incremental.end`) moves it no further than its end, whatever the source sent: a
 *   record past the end is written (an API may ignore the bound), but what lies past the end is not
 *   settled yet (`now - 1 hour`), and the next read starts from the end again (`bounded`).
 * - A slice (`ferry run --from/--to`) neither reads nor moves it: Sync.ts does not call these.
 * Where it is saved (in the batch's transaction, or after it) is the store's business: Sync.ts.
 */
import { Option } from "effect"
import type { Stored } from "../CheckpointStore.js"
import * as Cursor from "../domain/Cursor.js"
import type { CursorType, Incremental, Row } from "../domain/StreamSpec.js"
import type { TargetState } from "../Sink.js"

/** A legacy checkpoint (keyed by the stream alone) becomes this key's only for a table that holds rows. */
export const adoptsLegacy = (table: TargetState, dryRun: boolean): boolean => table === "filled" && !dryRun

/** What a run does with the checkpoint it found stored. */
type StoredVerdict =
  | { readonly _tag: "Applies"; readonly cursor: string; readonly adopted: boolean }
  | {
    readonly _tag: "Ignored"
    readonly cursor: string
    readonly legacy: boolean
    readonly reason: string
    /** forget it: a checkpoint of this key that is stale (never a legacy one, never in a dry run) */
    readonly clear: boolean
  }

/**
 * The stored checkpoint applies to a table with rows; never to a table this run created or found empty:
 * that checkpoint was not made by filling it (another config's stream of the same name before
 * checkpoints were per table, a renamed or truncated table) and would skip every record before it. The
 * run then starts from `initial`, and forgets its own stale checkpoint (the file store never moves one
 * back); a legacy checkpoint may be another target's: it is left for it.
 */
export const stored = (table: TargetState, found: Stored, target: string, dryRun: boolean): StoredVerdict => {
  if (table === "filled") return { _tag: "Applies", cursor: found.cursor, adopted: found.legacy }
  const why = table === "created" ? `table ${target} was created by this run` : `table ${target} is empty`
  return {
    _tag: "Ignored",
    cursor: found.cursor,
    legacy: found.legacy,
    reason: `${why}: the run starts from initial`,
    clear: !found.legacy && !dryRun
  }
}

/**
 * The cursor the source is asked from: the checkpoint (or `initial`, without one or with `fullRefresh`)
 * less the lookback; none for a stream that is not incremental or has neither.
 */
export const startFrom = (
  incremental: Incremental | undefined,
  checkpoint: string | undefined,
  fullRefresh: boolean
): Option.Option<string> => {
  if (incremental === undefined) return Option.none()
  const start = fullRefresh ? incremental.initial : (checkpoint ?? incremental.initial)
  return start === undefined
    ? Option.none()
    : Option.some(Cursor.minusLookback(incremental.cursorType, start, incremental.lookback, incremental.format))
}

/**
 * The greatest cursor committed in the run once a batch is in, from `seen` (the greatest before it).
 * Only rows Postgres accepted count: a refused row's cursor would skip records. Rows are refused only
 * by a row-by-row write, so `rows` are the rows written and the refused ones are the very objects in
 * `rejected`; with none refused, the pages' own greatest cursors say it.
 */
export const committed = (
  type: CursorType,
  seen: string | undefined,
  pages: ReadonlyArray<{ readonly cursor: string | undefined }>,
  rows: ReadonlyArray<{ readonly row: Row }>,
  rejected: ReadonlyArray<{ readonly row: Row }>
): string | undefined => {
  if (rejected.length === 0) {
    const max = Cursor.max(type)
    return pages.reduce((m, p) => max(m, p.cursor), seen)
  }
  const refused = new Set(rejected.map((r) => r.row))
  return Cursor.greatest(type, seen, rows.filter((r) => !refused.has(r.row)).map((r) => r.row.cursor))
}

/** `to` when it is ahead of `checkpoint`, else `undefined`: the checkpoint never moves backwards. */
const ahead = (type: CursorType, checkpoint: string | undefined, to: string | undefined): string | undefined => {
  const next = Cursor.max(type)(checkpoint, to)
  return next !== undefined && next !== checkpoint ? next : undefined
}

/** `seen` no further than `end` (none: no bound): the checkpoint a bounded read may move to. */
export const bounded = (type: CursorType, seen: string | undefined, end: string | undefined): string | undefined =>
  end === undefined || seen === undefined || Cursor.compare(type)(seen, end) <= 0 ? seen : end

/**
 * Where a committed batch moves the checkpoint, `undefined` if it stays: with `order: asc` (every
 * record up to `committed` is in) to the greatest cursor committed so far, no further than `end`;
 * unsorted, nowhere yet.
 */
export const afterBatch = (
  order: Incremental["order"] | undefined,
  type: CursorType,
  checkpoint: string | undefined,
  committedMax: string | undefined,
  end?: string | undefined
): string | undefined => order === "asc" ? ahead(type, checkpoint, bounded(type, committedMax, end)) : undefined

/**
 * Where the checkpoint moves once the whole stream is read and committed, `undefined` if it stays: to
 * the greatest cursor committed, no further than `end`.
 */
export const afterStream = (
  type: CursorType,
  checkpoint: string | undefined,
  committedMax: string | undefined,
  end?: string | undefined
): string | undefined => ahead(type, checkpoint, bounded(type, committedMax, end))
