// Types for scripts/truth-check.mjs (plain JS so that scripts/chaos.mjs runs with bare node).
import type { TruthRecord } from "./truth-source.mjs"

export type Query = (text: string, params?: ReadonlyArray<unknown>) => Promise<Array<any>>

export interface TargetRow {
  readonly version: number
  readonly ms: number
  readonly name: string
  readonly amount: number
  /** `_deleted_at` is set (read with `{ marked: true }`) */
  readonly marked?: boolean
}

export declare const msOf: (cursor: string | null | undefined) => number
export declare const readTarget: (
  query: Query,
  table: string,
  schema?: string,
  options?: { readonly marked?: boolean }
) => Promise<Map<string, TargetRow>>
export declare const readCheckpoint: (
  query: Query,
  store: "postgres" | "file",
  stream: string,
  file?: string
) => Promise<string | undefined>
export declare const diff: (
  truth: ReadonlyMap<string, TruthRecord>,
  target: ReadonlyMap<string, TargetRow>
) => { missing: Array<string>; extra: Array<string>; stale: Array<string> }
export declare const checkpointViolations: (o: {
  truth: ReadonlyMap<string, TruthRecord>
  target: ReadonlyMap<string, TargetRow>
  checkpoint: string | undefined
  previous: string | undefined
  store: "postgres" | "file"
  order: "asc" | "unsorted"
  lookbackMs: number
  completed: boolean
}) => Array<string>
export declare const runRowViolations: (
  query: Query,
  runId: string | undefined,
  stream: string,
  checkpoint: string | undefined
) => Promise<{ violations: Array<string>; finished: boolean }>
export declare const replaceViolations: (o: {
  previous: ReadonlyMap<string, TargetRow>
  target: ReadonlyMap<string, TargetRow>
  served: ReadonlyMap<string, ReadonlyArray<TruthRecord>>
  completed: boolean
}) => Array<string>
export declare const deleteViolations: (o: {
  previous: ReadonlyMap<string, TargetRow>
  target: ReadonlyMap<string, TargetRow>
  truth: ReadonlyMap<string, TruthRecord>
  gone: ReadonlyMap<string, TruthRecord>
  removed: ReadonlySet<string>
  action: "delete" | "mark"
  completed: boolean
}) => Array<string>
export declare const sameTable: (a: ReadonlyMap<string, TargetRow>, b: ReadonlyMap<string, TargetRow>) => boolean
