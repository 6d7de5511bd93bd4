/**
 * The end of a replace stream's run (`write: replace`): after a complete, successful read, what the run
 * loaded becomes the table, in one transaction that, once begun, is finished (as a batch's is). Never
 * after a failure, an interruption, or more invalid records than `maxInvalid`: the table stays as it was.
 */
import { Effect } from "effect"
import type { StreamSpec } from "../domain/StreamSpec.js"
import type { SinkShape } from "../Sink.js"

export const finishLoad = (sink: SinkShape, stream: StreamSpec, target: string) =>
  Effect.gen(function*() {
    const swapped = yield* sink.transaction(stream, sink.finishLoad(stream)).pipe(Effect.uninterruptible)
    if (swapped) yield* Effect.logInfo("target.replaced").pipe(Effect.annotateLogs({ target }))
    else {
      yield* Effect.logWarning("target.kept").pipe(
        Effect.annotateLogs({ target, reason: "the run loaded no row: write: replace keeps the table as it was" })
      )
    }
  })
