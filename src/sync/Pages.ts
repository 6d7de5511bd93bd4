/**
 * A page decoded: its records turned into rows by the stream's decoder (the invalid ones kept to be
 * quarantined), with what the program needs of it (counts, greatest cursor, signature) and its rows
 * staged for the sink (`Sink.stage`).
 */
import { Either } from "effect"
import * as Cursor from "../domain/Cursor.js"
import type { Row, StreamSpec } from "../domain/StreamSpec.js"
import type { QuarantineItem, SinkShape, Staged } from "../Sink.js"
import type { Page } from "../Source.js"
import type { Measured } from "./Batches.js"
import type { Found } from "./NewFields.js"
import * as PageRepeats from "./PageRepeats.js"

/** a page's rows, each with the record it came from (quarantined as is if Postgres refuses the row) */
export type Rows = Array<{ readonly row: Row; readonly raw: unknown }>

interface Decoded {
  readonly rows: Rows
  readonly invalid: Array<QuarantineItem>
}

/**
 * A page ready to write. Its rows are kept as they are, or, when their staged form holds them (a COPY
 * text) and the source can parse the page again, only as that form: the records themselves are dropped
 * (they are most of the memory in flight) and `rows()` rebuilds them in the rare case the sink asks.
 */
export interface DecodedPage extends Measured {
  readonly url: string
  readonly retries: number
  readonly invalid: Array<QuarantineItem>
  /** how many of its records decoded to rows */
  readonly valid: number
  /** the greatest cursor of the page's rows */
  readonly cursor: string | undefined
  /** what the page holds, to catch a source that repeats pages under new tokens (PageRepeats.ts) */
  readonly signature: number | undefined
  /** its rows staged for the sink; `undefined` when none decoded */
  readonly staged: Staged | undefined
  /** the page's rows: kept, or parsed and decoded again */
  readonly rows: () => Rows
  /** the fields its records brought that the stream never saw (NewFields.ts); `undefined`: none */
  readonly fields: Found | undefined
}

const decodeRecords = (stream: StreamSpec, records: ReadonlyArray<unknown>): Decoded => {
  const rows: Rows = []
  const invalid: Array<QuarantineItem> = []
  for (const raw of records) {
    const decoded = stream.decode(raw)
    if (Either.isRight(decoded)) rows.push({ row: decoded.right, raw })
    else invalid.push({ raw, reason: decoded.left })
  }
  return { rows, invalid }
}

export const decodePage = (
  stream: StreamSpec,
  sink: SinkShape,
  page: Page,
  newFields?: (records: ReadonlyArray<unknown>) => Found | undefined
): DecodedPage => {
  const { invalid, rows } = decodeRecords(stream, page.records)
  const fields = newFields?.(page.records)
  const cursor = Cursor.greatest(Cursor.typeOf(stream), undefined, rows.map((r) => r.row.cursor))
  const staged = rows.length === 0 ? undefined : sink.stage(stream, rows.map((r) => r.row))
  const measured = { url: page.url, retries: page.retries, records: page.records.length, bytes: page.bytes }
  const common = { ...measured, invalid, valid: rows.length, cursor, signature: PageRepeats.signature(rows, invalid), staged, fields }
  if (staged?.holdsRows === true && page.reparse !== undefined) return { ...common, rows: decodeAgain(stream, page.reparse) }
  return { ...common, rows: () => rows }
}

/**
 * The rows of a page parsed again. A function of its own so that the closure holds only `stream` and
 * `reparse`: a closure made inside decodePage would share its scope, and with it the rows and the page.
 */
const decodeAgain = (stream: StreamSpec, reparse: () => ReadonlyArray<unknown>) => () =>
  decodeRecords(stream, reparse()).rows
