/**
 * The config's `lease:`: how long a stream's lease lasts without renewal. A process that stalls longer
 * (SIGSTOP, a GC pause, a frozen VM) loses the stream to the next run (sink/postgres/Leases.ts); a run
 * renews it every third of it.
 */
import { Duration, Schema } from "effect"
import { DurationField, withDefault } from "./Fields.js"

/** shorter, a GC pause or a slow statement loses the stream; longer, a frozen owner blocks it longer */
const minLease = Duration.seconds(2)
const maxLease = Duration.hours(1)

export const LeaseField = withDefault(
  DurationField.pipe(Schema.filter((d) => Duration.between(d, { minimum: minLease, maximum: maxLease }), {
    message: () => "expected a duration from 2 seconds to 1 hour"
  })),
  () => Duration.seconds(30)
)
