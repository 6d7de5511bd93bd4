/**
 * The CheckpointStore service: where each stream's cursor lives.
 * - `postgres` (default): table `ferry.state`, written in the same transaction as the batch's rows.
 * - `file`: one JSON file, written by write-rename-fsync after the rows commit (at-least-once:
 *   a crash between the two re-reads a batch, which the idempotent upsert absorbs).
 */
import { Context } from "effect"
import type { Effect, Option } from "effect"
import type { DatabaseError } from "./Errors.js"

export interface CheckpointStoreShape {
  readonly kind: "postgres" | "file" | "memory"
  /** true: `save` must run inside the sink's transaction; false: after it commits */
  readonly transactional: boolean
  readonly load: (stream: string) => Effect.Effect<Option.Option<string>, DatabaseError>
  readonly save: (stream: string, cursor: string) => Effect.Effect<void, DatabaseError>
  readonly clear: (stream: string) => Effect.Effect<void, DatabaseError>
}

export class CheckpointStore extends Context.Tag("ferry/CheckpointStore")<CheckpointStore, CheckpointStoreShape>() {}
