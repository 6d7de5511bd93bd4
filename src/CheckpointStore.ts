/**
 * The CheckpointStore service: where each stream's cursor lives, keyed by the stream and its target
 * table (`CheckpointKey`).
 * - `postgres` (default): table `ferry.state`, written in the same transaction as the batch's rows.
 * - `file`: one JSON file, written by write-rename-fsync after the rows commit (at-least-once:
 *   a crash between the two re-reads a batch, which the idempotent upsert absorbs).
 * Checkpoints saved by releases that keyed them by the stream alone are `legacy`: the first target
 * that holds rows adopts one, and no other target can then.
 */
import { Context } from "effect"
import type { Effect, Option } from "effect"
import * as Cursor from "./domain/Cursor.js"
import type { DatabaseError } from "./domain/Errors.js"
import { type CursorType, type StreamSpec, targetName } from "./domain/StreamSpec.js"

/** Whose checkpoint: a stream AND its target table, so that same-named streams of other configs never share one. */
export interface CheckpointKey {
  readonly stream: string
  /** the target table, `StreamSpec.targetName`: `schema.table` */
  readonly target: string
  /** how its cursors compare (the file store keeps the greatest) */
  readonly cursorType: CursorType
  /** a child stream's parent row (its key as JSON, `Parent.ts`): each parent row has its own checkpoint */
  readonly parent?: string | undefined
}

export const keyOf = (stream: StreamSpec): CheckpointKey => ({
  stream: stream.name,
  target: targetName(stream.target),
  cursorType: Cursor.typeOf(stream)
})

export interface Stored {
  readonly cursor: string
  /**
   * saved by a release that keyed checkpoints by the stream alone: it may belong to another target
   * with a stream of this name. `load` with `adopt` makes it this key's, so that only one target has it.
   */
  readonly legacy: boolean
}

export interface CheckpointStoreShape {
  readonly kind: "postgres" | "file" | "memory"
  /** true: `save` must run inside the sink's transaction; false: after it commits */
  readonly transactional: boolean
  /**
   * The key's checkpoint, else a legacy one of its stream. `adopt`: a legacy checkpoint found becomes
   * the key's (call it only for a target that holds rows: only such a target can have been filled by it).
   */
  readonly load: (
    key: CheckpointKey,
    options?: { readonly adopt?: boolean | undefined }
  ) => Effect.Effect<Option.Option<Stored>, DatabaseError>
  /**
   * `guard` runs right before a save that no transaction guards (the file store): it fails when the
   * run no longer holds the stream's lock. The file store also never moves a checkpoint back.
   */
  readonly save: (
    key: CheckpointKey,
    cursor: string,
    guard?: Effect.Effect<void, DatabaseError>
  ) => Effect.Effect<void, DatabaseError>
  /**
   * forgets the key's checkpoint and its stream's legacy one (`reset`: the next run starts from
   * `initial`); a key without `parent`: those of every parent row too
   */
  readonly clear: (key: CheckpointKey) => Effect.Effect<void, DatabaseError>
}

export class CheckpointStore extends Context.Tag("ferry/CheckpointStore")<CheckpointStore, CheckpointStoreShape>() {}
