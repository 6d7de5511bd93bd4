/**
 * `ferry/testing`: in-memory layers of Ferry's ports, for an application's tests (and Ferry's own). A
 * Sink and a CheckpointStore that share one in-memory database (its transactions included), and a
 * Source that serves given pages.
 */
import { Layer } from "effect"
import type { CheckpointStore } from "../CheckpointStore.js"
import type { Sink } from "../Sink.js"
import * as MemoryCheckpoints from "./MemoryCheckpoints.js"
import * as MemoryDatabase from "./MemoryDatabase.js"
import * as MemorySink from "./MemorySink.js"

/** The in-memory CheckpointStore (`layer`), over the `MemoryDatabase` in context. */
export * as MemoryCheckpoints from "./MemoryCheckpoints.js"
/** The in-memory Sink (`layer`) and its key of a checkpoint. */
export * as MemorySink from "./MemorySink.js"
/** A Source that serves the pages a function returns (`layer`). */
export * as MemorySource from "./MemorySource.js"
/** The in-memory database: the tag through which a test reads what was written, and a fresh one. */
export { make, MemoryDatabase, type MemoryDatabaseShape, type MemoryState, type StoredRow } from "./MemoryDatabase.js"

/** Sink + CheckpointStore over one in-memory database (a fresh one by default), also provided for assertions. */
export const layer = (
  db: MemoryDatabase.MemoryDatabaseShape = MemoryDatabase.make()
): Layer.Layer<Sink | CheckpointStore | MemoryDatabase.MemoryDatabase> =>
  Layer.mergeAll(MemorySink.layer, MemoryCheckpoints.layer).pipe(
    Layer.provideMerge(Layer.succeed(MemoryDatabase.MemoryDatabase, db))
  )
