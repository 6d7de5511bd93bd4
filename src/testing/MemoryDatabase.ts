/**
 * The in-memory database under the in-memory Sink and CheckpointStore: tables, checkpoints, quarantine
 * and runs, with transactions that commit or roll back as a whole (a snapshot restored on failure).
 */
import { Context, Effect } from "effect"
import type { RunRecord } from "../Sink.js"
import type { TableShape } from "./MemorySchema.js"
import type { Row } from "../domain/StreamSpec.js"

export interface StoredRow {
  readonly cursor: string | undefined
  readonly values: Readonly<Record<string, unknown>>
}

export interface MemoryState {
  /** table name -> key -> row */
  tables: Map<string, Map<string, StoredRow>>
  /** `checkpointKey` -> cursor */
  checkpoints: Map<string, string>
  quarantine: Array<{ stream: string; target: string; runId: string; raw: unknown; reason: string; text: string }>
  /** `startedAt`: the clock's time (ms) when the run started (`lastCompleteRead`) */
  runs: Map<string, (RunRecord | { runId: string; stream: string; status: "running" | "abandoned" }) & { startedAt?: number }>
  /** row versions written (inserts + updates): a no-op run must not add any */
  rowVersions: number
  /** table name -> its columns and primary key (MemorySchema.ts) */
  shapes: Map<string, TableShape>
  /** `checkpointKey` -> the field paths seen (Sink.knownFields) */
  fields: Map<string, Set<string>>
  /** `checkpointKey` -> the keys a complete read wrote (detect: missing) */
  seen: Map<string, Set<string>>
}

export interface MemoryDatabaseShape {
  readonly state: MemoryState
  readonly locks: Set<string>
  /** called before each `write`; returning true makes that write fail after applying (so it must roll back) */
  failWrite: (writeNumber: number) => boolean
  writes: number
  /** bulk writes taken and refused (a key already stored or repeated): tests check both paths ran */
  readonly bulk: { written: number; refused: number }
  /**
   * Rows this database refuses, as Postgres refuses a value out of range: the reason, or undefined.
   * `write` hands them back in `rejected`; a bulk write holding one is refused whole (as a COPY is).
   */
  refuse: (row: Row) => string | undefined
}

export class MemoryDatabase extends Context.Tag("ferry/MemoryDatabase")<MemoryDatabase, MemoryDatabaseShape>() {}

const emptyState = (): MemoryState => ({
  tables: new Map(),
  checkpoints: new Map(),
  quarantine: [],
  runs: new Map(),
  rowVersions: 0,
  shapes: new Map(),
  fields: new Map(),
  seen: new Map()
})

export const make = (): MemoryDatabaseShape => ({
  state: emptyState(),
  locks: new Set(),
  failWrite: () => false,
  writes: 0,
  bulk: { written: 0, refused: 0 },
  refuse: () => undefined
})

const restore = (db: MemoryDatabaseShape, snapshot: MemoryState) => {
  Object.assign(db.state, snapshot)
}

export const inTransaction = <A, E, R>(db: MemoryDatabaseShape, effect: Effect.Effect<A, E, R>, alwaysRollback: boolean) =>
  Effect.suspend(() => {
    const snapshot = structuredClone(db.state)
    return effect.pipe(
      Effect.onExit((exit) =>
        Effect.sync(() => {
          if (alwaysRollback || exit._tag === "Failure") restore(db, snapshot)
        })
      )
    )
  })
