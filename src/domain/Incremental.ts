/**
 * An incremental stream: each run asks only for what changed since the checkpoint, the largest cursor
 * value the previous runs stored.
 */
import { Duration, Option, Schema } from "effect"
import { TimeFormat } from "./Epoch.js"
import { DottedPath, DurationField, NonEmpty, oneOf, ScalarText, withDefault } from "./Fields.js"

/** How cursor values compare: as instants, as numbers, or as strings. */
export const CursorType = oneOf("timestamp", "number", "string")
export type CursorType = typeof CursorType.Type

const CursorTemplate = Schema.String.pipe(
  Schema.filter((s) => s.includes("{cursor}") || s.includes("{end}"), { message: () => "template must contain {cursor} or {end}" })
)

const relative = /^now(?:\s*-\s*(.*))?$/i

/**
 * `now` or `now - <duration>` (the run's start, less the duration): that duration; `undefined` when
 * the text is a plain cursor value, `"invalid"` when it starts like one and is not.
 */
export const relativeEnd = (text: string): Duration.Duration | "invalid" | undefined => {
  const m = relative.exec(text.trim())
  if (m === null) return undefined
  if (m[1] === undefined) return Duration.zero
  return Option.getOrElse(Schema.decodeUnknownOption(DurationField)(m[1]), () => "invalid" as const)
}

/** An upper bound: a cursor value, or a time relative to the run's start. */
const End = ScalarText.pipe(
  Schema.filter((text) => relativeEnd(text) !== "invalid", {
    message: () => `expected a cursor value, or now - <duration> like "now - 1 hour"`
  })
).annotations({ description: `a cursor value, or "now - <duration>" (the run's start less the duration)` })

export const Incremental = Schema.Struct({
  /** dotted path in each record */
  cursorField: DottedPath,
  /** written: optional, inferred from `initial` and the cursor column's type (`DefaultShape.inferCursorType`) */
  cursorType: CursorType,
  /** send the cursor as `?param=<cursor>` */
  param: Schema.optional(NonEmpty),
  /** the upper bound as `?endParam=<end>` (with `end`, or `ferry run --to`) */
  endParam: Schema.optional(NonEmpty),
  /** or as templates: `{ updated_at: "gte.{cursor}" }`, `{end}` for the upper bound */
  params: Schema.optional(Schema.Record({ key: NonEmpty, value: CursorTemplate })),
  /** `unix`/`unix_ms`: the cursor is an epoch value, compared as a number, sent and stored as the API writes it */
  format: Schema.optional(TimeFormat),
  /**
   * read no further than this (`{end}`, `endParam`): a cursor value, or `now - 1 hour` (timestamp and
   * epoch cursors); the checkpoint never moves past it (sync/CheckpointPolicy.ts)
   */
  end: Schema.optional(End),
  /** the cursor of the very first run; absent: the first run reads everything */
  initial: Schema.optional(ScalarText),
  /** re-read this much before the checkpoint (timestamp cursors) */
  lookback: withDefault(DurationField, () => Duration.zero),
  /** `asc`: the source returns records sorted by cursor, so the checkpoint may advance per batch */
  order: withDefault(oneOf("asc", "unsorted"), () => "unsorted" as const)
})
export type Incremental = typeof Incremental.Type
