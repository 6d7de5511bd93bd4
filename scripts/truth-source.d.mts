// Types for scripts/truth-source.mjs (plain JS so that scripts/chaos.mjs runs with bare node).
import type { IncomingHttpHeaders } from "node:http"

export interface TruthRecord {
  readonly id: string
  readonly name: string
  readonly amount: number
  readonly version: number
  readonly updated_at: string
}

export interface TruthApiOptions {
  readonly count: number
  readonly order: "asc" | "unsorted"
  readonly pagination: "link" | "cursor"
  readonly pageSize: number
  readonly seed: number
}

export interface TruthApi {
  readonly url: string
  readonly requests: Array<{ readonly method: string; readonly url: URL; readonly headers: IncomingHttpHeaders }>
  readonly close: () => Promise<void>
  readonly order: "asc" | "unsorted"
  /** records changed at the start of every page request (0: the source is quiet) */
  updatesPerPage: number
  /** wait before answering each page */
  delayMs: number
  /** the fraction of page requests answered with 503 (seeded; 0: none) */
  failRate: number
  /** called right after the n-th data page (counted since the server started) was sent */
  onServed: ((n: number, last: boolean) => void) | undefined
  /** data pages sent since the server started */
  readonly pagesServed: () => number
  /** the time of the last request of a first page (no pagination token) */
  readonly lastFirstPageAt: () => number
  /** change `n` random records now (one instant for all of them) */
  readonly change: (n: number) => void
  /** records removed at the start of every page request (0: none) */
  removesPerPage: number
  /** set to a new Map to record every record version a page carried, by id */
  served: Map<string, TruthRecord[]> | undefined
  /** set to a new Set to record the ids removed while it is set */
  removed: Set<string> | undefined
  /** take `n` random records out of the source (hard deletes) */
  readonly remove: (n: number) => void
  /** bring `n` random removed records back, each as a new version (`updated_at` = now) */
  readonly restore: (n: number) => void
  /** the current records (the truth), by id */
  readonly truth: () => ReadonlyMap<string, TruthRecord>
  /** the last version of each record the source no longer has, by id */
  readonly gone: () => ReadonlyMap<string, TruthRecord>
  /** the greatest `updated_at` of a record the source has */
  readonly maxCursor: () => string
  /** records with `updated_at` >= `since`: what a run from that cursor has to read */
  readonly countSince: (since: string | undefined) => number
}

export declare const startTruthApi: (options: TruthApiOptions) => Promise<TruthApi>
/** mulberry32: a small seedable PRNG returning numbers in [0, 1) */
export declare const prng: (seed: number) => () => number

export declare const truthStreamYaml: (options: {
  readonly url: string
  readonly name: string
  readonly order: "asc" | "unsorted"
  readonly lookbackMs: number
  /** the `retry:` value, e.g. `{ attempts: 2, base: 10 millis, max: 1 second }` */
  readonly retry: string
  /** false: no `incremental` (every run reads everything); default true */
  readonly incremental?: boolean
  /** `target.write` (default: none, merge) */
  readonly write?: "merge" | "append" | "replace"
  /** `target.deletes` as YAML, e.g. `{ detect: missing, action: delete }` */
  readonly deletes?: string
  /** the stream's `fullEvery`, e.g. `1 millis` */
  readonly fullEvery?: string
}) => string
