/** The checkpoint a run starts from: the stored one when it applies (CheckpointPolicy.stored). */
import { Effect, Option } from "effect"
import type { CheckpointKey, CheckpointStoreShape } from "../CheckpointStore.js"
import type { TargetState } from "../Sink.js"
import * as CheckpointPolicy from "./CheckpointPolicy.js"

/**
 * The stored checkpoint, when it applies (CheckpointPolicy.stored): the run then starts from it, else
 * from `initial`, and says why.
 */
export const load = (run: { readonly dryRun: boolean; readonly key: CheckpointKey; readonly store: CheckpointStoreShape }, table: TargetState) =>
  Effect.gen(function*() {
    const { dryRun, key, store } = run
    const found = yield* store.load(key, { adopt: CheckpointPolicy.adoptsLegacy(table, dryRun) })
    if (Option.isNone(found)) return undefined
    const verdict = CheckpointPolicy.stored(table, found.value, key.target, dryRun)
    if (verdict._tag === "Applies") {
      if (verdict.adopted) {
        yield* Effect.logInfo("checkpoint.adopted").pipe(Effect.annotateLogs({ checkpoint: verdict.cursor, target: key.target }))
      }
      return verdict.cursor
    }
    yield* Effect.logWarning("checkpoint.ignored").pipe(
      Effect.annotateLogs({ checkpoint: verdict.cursor, target: key.target, legacy: verdict.legacy, reason: verdict.reason })
    )
    if (verdict.clear) yield* store.clear(key)
    return undefined
  })
