/**
 * Deletes in the in-memory database, as PgSink applies them (sink/postgres/Deletes.ts): flagged rows
 * after the batch's other rows (`delete` removes the stored row, `mark` keeps the first
 * `_deleted_at`), never over a newer stored cursor; a deleted row's child rows with it; the keys a complete-read stream wrote, kept in the
 * database's state (so a rolled-back batch forgets them too) until `deleteMissing`.
 */
import * as Cursor from "../domain/Cursor.js"
import * as Deletes from "../domain/Deletes.js"
import type { CursorType, Row, StreamSpec } from "../domain/StreamSpec.js"
import type { WriteResult } from "../Sink.js"

interface StoredRow {
  readonly cursor: string | undefined
  readonly values: Readonly<Record<string, unknown>>
}

type Write = (rows: ReadonlyArray<Row>) => WriteResult

/** told the stored values of the rows a delete removed (their child rows go with them: MemoryChildren.remove) */
type Removed = (rows: ReadonlyArray<Readonly<Record<string, unknown>>>) => void

const sameBut = (a: Readonly<Record<string, unknown>>, b: Readonly<Record<string, unknown>>, column: string) =>
  JSON.stringify({ ...a, [column]: null }) === JSON.stringify({ ...b, [column]: null })

/** one flagged row: what happened to its stored row */
const applyFlag = (
  table: Map<string, StoredRow>,
  row: Row,
  mark: boolean,
  compare: (a: string, b: string) => number,
  removed: Removed
): "inserted" | "updated" | "deleted" | "unchanged" => {
  const stored = table.get(row.key)
  const newer = stored !== undefined && stored.cursor !== undefined && row.cursor !== undefined &&
    compare(stored.cursor, row.cursor) > 0
  if (!mark) {
    if (stored === undefined || newer) return "unchanged"
    table.delete(row.key)
    removed([stored.values])
    return "deleted"
  }
  if (stored === undefined) {
    table.set(row.key, { cursor: row.cursor, values: row.values })
    return "inserted"
  }
  const at = stored.values[Deletes.deletedAtColumn]
  if (newer || (at !== null && at !== undefined && sameBut(stored.values, row.values, Deletes.deletedAtColumn))) return "unchanged"
  table.set(row.key, { cursor: row.cursor, values: { ...row.values, [Deletes.deletedAtColumn]: at ?? row.values[Deletes.deletedAtColumn] } })
  return "updated"
}

/**
 * `write` for a stream with deletes: `plain` upserts the rows not flagged; a complete-read stream's
 * keys go to `seen`.
 */
export const write = (
  stream: StreamSpec,
  table: Map<string, StoredRow>,
  seen: Set<string>,
  rows: ReadonlyArray<Row>,
  plain: Write,
  removed: Removed
): WriteResult => {
  if (Deletes.missing(stream.target) !== undefined) {
    const result = plain(rows)
    for (const row of rows) seen.add(row.key)
    return result
  }
  if (Deletes.flagged(stream.target) === undefined) return plain(rows)
  const type: CursorType = Cursor.typeOf(stream)
  const kept = Cursor.latestPerKey(rows, type)
  const result = plain(kept.filter((r) => r.deleted !== true))
  const counts = { inserted: result.inserted, updated: result.updated, deleted: 0, unchanged: 0 }
  for (const row of kept) {
    if (row.deleted === true) counts[applyFlag(table, row, Deletes.marks(stream.target), Cursor.compare(type), removed)]++
  }
  const changed = counts.inserted + counts.updated + counts.deleted + result.rejected.length
  return { ...counts, unchanged: rows.length - changed, rejected: result.rejected }
}

/** as PgSink: a first load is bulk-written unless flagged rows must be left out (`delete`) */
export const copies = (stream: StreamSpec): boolean => Deletes.flagged(stream.target)?.action !== "delete"

/** the keys seen by the run of the stream under `lock` (made when first asked) */
export const seenOf = (all: Map<string, Set<string>>, lock: string): Set<string> => {
  const seen = all.get(lock) ?? new Set<string>()
  all.set(lock, seen)
  return seen
}

/** as PgSink: the rows whose key the run did not see, deleted or marked (`at`); their number; the keys forgotten */
export const deleteMissing = (
  stream: StreamSpec,
  table: Map<string, StoredRow>,
  all: Map<string, Set<string>>,
  lock: string,
  at: string | undefined,
  removed: Removed
): number => {
  const seen = seenOf(all, lock)
  all.delete(lock)
  if (at === undefined) return 0
  let n = 0
  const gone: Array<Readonly<Record<string, unknown>>> = []
  for (const [key, row] of table) {
    if (seen.has(key)) continue
    if (!Deletes.marks(stream.target)) {
      table.delete(key)
      gone.push(row.values)
      n++
    } else if (row.values[Deletes.deletedAtColumn] === null || row.values[Deletes.deletedAtColumn] === undefined) {
      table.set(key, { ...row, values: { ...row.values, [Deletes.deletedAtColumn]: at } })
      n++
    }
  }
  removed(gone)
  return n
}

/** when the stream's last complete read that succeeded started */
export const lastCompleteRead = (
  runs: ReadonlyMap<string, { readonly stream: string; readonly status: string; readonly startedAt?: number; readonly completeRead?: boolean | undefined }>,
  stream: StreamSpec
): number | undefined => {
  let last: number | undefined
  for (const run of runs.values()) {
    if (run.stream === stream.name && run.status === "succeeded" && run.completeRead === true && run.startedAt !== undefined) {
      last = Math.max(last ?? run.startedAt, run.startedAt)
    }
  }
  return last
}
