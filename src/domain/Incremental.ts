/**
 * An incremental stream: each run asks only for what changed since the checkpoint, the largest cursor
 * value the previous runs stored.
 */
import { Duration, Schema } from "effect"
import { TimeFormat } from "./Epoch.js"
import { DottedPath, DurationField, NonEmpty, oneOf, ScalarText, withDefault } from "./Fields.js"

/** How cursor values compare: as instants, as numbers, or as strings. */
export const CursorType = oneOf("timestamp", "number", "string")
export type CursorType = typeof CursorType.Type

const CursorTemplate = Schema.String.pipe(
  Schema.filter((s) => s.includes("{cursor}"), { message: () => "template must contain {cursor}" })
)

export const Incremental = Schema.Struct({
  /** dotted path in each record */
  cursorField: DottedPath,
  /** written: optional, inferred from `initial` and the cursor column's type (`RowDecoder.inferCursorType`) */
  cursorType: CursorType,
  /** send the cursor as `?param=<cursor>` */
  param: Schema.optional(NonEmpty),
  /** or as templates: `{ updated_at: "gte.{cursor}" }` */
  params: Schema.optional(Schema.Record({ key: NonEmpty, value: CursorTemplate })),
  /** `unix`/`unix_ms`: the cursor is an epoch value, compared as a number, sent and stored as the API writes it */
  format: Schema.optional(TimeFormat),
  /** the cursor of the very first run; absent: the first run reads everything */
  initial: Schema.optional(ScalarText),
  /** re-read this much before the checkpoint (timestamp cursors) */
  lookback: withDefault(DurationField, () => Duration.zero),
  /** `asc`: the source returns records sorted by cursor, so the checkpoint may advance per batch */
  order: withDefault(oneOf("asc", "unsorted"), () => "unsorted" as const)
})
export type Incremental = typeof Incremental.Type
