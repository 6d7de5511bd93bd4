/** A client-side limit on a stream's requests (`source/http/RateLimit.ts` keeps it): `requests` per `per`. */
import { Duration, Schema } from "effect"
import { DurationField, integerAtLeast, says } from "./Fields.js"

/** A duration longer than zero: a window of no length would limit nothing. */
const PositiveDuration = DurationField.pipe(
  Schema.filter((duration) => Duration.greaterThan(duration, Duration.zero), says("expected a duration longer than zero"))
)

export const RateLimit = Schema.Struct({
  /** at most this many requests (retries included) start within any window of length `per` */
  requests: integerAtLeast(1),
  per: PositiveDuration
})
export type RateLimit = typeof RateLimit.Type
