/** The in-memory CheckpointStore: checkpoints in the `MemoryDatabase`, inside its transactions (as `ferry.state`). */
import { Effect, Layer, Option } from "effect"
import { CheckpointStore } from "../CheckpointStore.js"
import { MemoryDatabase } from "./MemoryDatabase.js"
import { checkpointKey } from "./MemorySink.js"

export const layer: Layer.Layer<CheckpointStore, never, MemoryDatabase> = Layer.effect(
  CheckpointStore,
  Effect.map(MemoryDatabase, (db) =>
    CheckpointStore.of({
      kind: "memory",
      transactional: true,
      load: (key) =>
        Effect.sync(() =>
          Option.map(Option.fromNullable(db.state.checkpoints.get(checkpointKey(key))), (cursor) => ({ cursor, legacy: false }))
        ),
      save: (key, cursor) => Effect.sync(() => void db.state.checkpoints.set(checkpointKey(key), cursor)),
      clear: (key) =>
        Effect.sync(() => {
          db.state.checkpoints.delete(checkpointKey(key))
          // a stream's key clears its parent rows' checkpoints too
          if (key.parent !== undefined) return
          for (const name of [...db.state.checkpoints.keys()]) {
            if (name.startsWith(`${checkpointKey(key)} `)) db.state.checkpoints.delete(name)
          }
        })
    })
  )
)
