/** How often and how patiently a failed request is tried again (`source/http/RetrySchedule.ts` applies it). */
import { Duration, Schema } from "effect"
import { DurationField, integerAtLeast, withDefault } from "./Fields.js"

export const Retry = Schema.Struct({
  /** total attempts per request, the first included */
  attempts: withDefault(integerAtLeast(1), () => 6),
  /** the first delay; each next one doubles, up to `max` */
  base: withDefault(DurationField, () => Duration.millis(500)),
  max: withDefault(DurationField, () => Duration.seconds(60))
})
export type Retry = typeof Retry.Type
