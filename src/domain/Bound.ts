/**
 * The bounds of a read: `incremental.end`, and a slice's `--from` / `--to`. Each is a cursor value, or
 * (timestamp and epoch cursors) a time relative to the run's start, `now - 1 hour`, resolved once per run
 * so that every request of the run asks for the same slice. A bound is sent in the cursor's own form:
 * an epoch cursor's as Unix seconds or milliseconds (an ISO value converted, as `initial` is).
 */
import { Duration, Either } from "effect"
import { instantOf } from "./Cursor.js"
import { epochOfInitial, type TimeFormat } from "./Epoch.js"
import { type CursorType, relativeEnd } from "./Incremental.js"

/** what a bound is read as: the cursor's type and epoch form */
export interface CursorForm {
  readonly cursorType: CursorType
  readonly format?: TimeFormat | undefined
}

/** ISO 8601 only: `Date.parse` also reads `01/02/2024`, in the machine's zone and order */
const iso = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?$/i

const numeric = /^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/

/** 0001-01-01T00:00:00Z */
const firstInstant = -62135596800000

/** whole seconds: a bound every API accepts, and the same in every form */
const isoSeconds = (ms: number) => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(".000Z", "Z")

/** `now - <duration>` at `now` (epoch ms), floored to the second, in the cursor's form */
const relativeValue = (ago: Duration.Duration, form: CursorForm, now: number): Either.Either<string, string> => {
  const at = now - Duration.toMillis(ago)
  if (!(at >= firstInstant)) return Either.left("the duration reaches back before the year 1")
  const instant = isoSeconds(at)
  if (form.format === "unix" || form.format === "unix_ms") return Either.right(epochOfInitial(instant, form.format)!)
  return form.cursorType === "timestamp"
    ? Either.right(instant)
    : Either.left(`now - <duration> is for timestamp cursors (this one is a ${form.cursorType}); give a ${form.cursorType} value`)
}

/**
 * A bound as the cursor's value, at the run's `now` (epoch ms), or why it is none (a short reason,
 * without the value).
 */
export const resolve = (text: string, form: CursorForm, now: number): Either.Either<string, string> => {
  const ago = relativeEnd(text)
  if (ago === "invalid") return Either.left(`expected a cursor value, or now - <duration> like "now - 1 hour"`)
  if (ago !== undefined) return relativeValue(ago, form, now)
  const value = text.trim()
  if (form.format === "unix" || form.format === "unix_ms") {
    const epoch = epochOfInitial(value, form.format)
    return epoch === undefined ? Either.left(`expected ${form.format} (digits) or an ISO 8601 timestamp`) : Either.right(epoch)
  }
  switch (form.cursorType) {
    case "timestamp":
      return !iso.test(value) || Number.isNaN(instantOf(value)) ? Either.left("expected an ISO 8601 timestamp, like 2024-01-01T00:00:00Z") : Either.right(value)
    case "number":
      return numeric.test(value) ? Either.right(value) : Either.left("expected a number")
    case "string":
      return value === "" ? Either.left("must not be empty") : Either.right(value)
  }
}
