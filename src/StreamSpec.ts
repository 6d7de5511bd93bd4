/**
 * One stream: where its records come from (HTTP), how a record becomes a row, and where it goes.
 * Built from the config file (`Config.ts`, a `columns` map) or in code (`StreamSpec.make` with an
 * Effect Schema). `Sync` only ever sees this shape.
 */
import type { Duration, Either, Redacted } from "effect"

export type Auth =
  | { readonly type: "bearer"; readonly token: Redacted.Redacted<string> }
  | { readonly type: "basic"; readonly username: string; readonly password: Redacted.Redacted<string> }
  /** a custom header, e.g. `X-Api-Key: ...` */
  | { readonly type: "header"; readonly name: string; readonly value: Redacted.Redacted<string> }
  /** a query parameter, e.g. `?api_key=...` */
  | { readonly type: "query"; readonly name: string; readonly value: Redacted.Redacted<string> }

/** Each style answers two questions: what is the next request, and is there one. See `http/Pagination.ts`. */
export type Pagination =
  | { readonly type: "none" }
  /** RFC 8288 `Link: <...>; rel="next"` */
  | { readonly type: "link" }
  /** a token in the body at `nextPath`, sent back as `param` */
  | { readonly type: "cursor"; readonly param: string; readonly nextPath: string }
  /** the last record's `fromRecord` field sent as `param` (Stripe's `starting_after`), while `hasMorePath` is true */
  | {
    readonly type: "cursor"
    readonly param: string
    readonly fromRecord: string
    readonly hasMorePath?: string | undefined
  }
  | { readonly type: "offset"; readonly offsetParam: string; readonly limitParam: string; readonly limit: number }
  | {
    readonly type: "page"
    readonly pageParam: string
    readonly sizeParam: string
    readonly size: number
    readonly firstPage: number
  }

/** How cursor values compare: as instants, as numbers, or as strings. */
export type CursorType = "timestamp" | "number" | "string"

export interface Incremental {
  /** dotted path in each record */
  readonly cursorField: string
  readonly cursorType: CursorType
  /** send the cursor as `?param=<cursor>` */
  readonly param?: string | undefined
  /** or as templates: `{ updated_at: "gte.{cursor}" }` */
  readonly params?: Readonly<Record<string, string>> | undefined
  /** the cursor of the very first run; absent: the first run reads everything */
  readonly initial?: string | undefined
  /** re-read this much before the checkpoint (timestamp cursors) */
  readonly lookback: Duration.Duration
  /** `asc`: the source returns records sorted by cursor, so the checkpoint may advance per batch */
  readonly order: "asc" | "unsorted"
}

export interface Retry {
  /** total attempts per request, the first included */
  readonly attempts: number
  readonly base: Duration.Duration
  readonly max: Duration.Duration
}

export interface HttpSourceSpec {
  readonly url: string
  readonly auth?: Auth | undefined
  readonly headers: Readonly<Record<string, string>>
  readonly params: Readonly<Record<string, string>>
  /** dotted path to the array of records; absent: the body is the array */
  readonly records?: string | undefined
  readonly pagination: Pagination
  readonly incremental?: Incremental | undefined
  readonly timeout: Duration.Duration
  readonly retry: Retry
}

export const columnTypes = [
  "text",
  "integer",
  "bigint",
  "numeric",
  "double precision",
  "real",
  "boolean",
  "timestamptz",
  "timestamp",
  "date",
  "jsonb",
  "uuid"
] as const
export type ColumnType = (typeof columnTypes)[number]

export interface Column {
  readonly name: string
  readonly type: ColumnType
  /** dotted path in the decoded record; defaults to the column name */
  readonly from: string
}

export interface TargetSpec {
  /** Postgres schema of the target table */
  readonly schema: string
  readonly table: string
  readonly primaryKey: ReadonlyArray<string>
  readonly columns: ReadonlyArray<Column>
  /** the column holding the incremental cursor; the upsert never replaces a row with an older cursor */
  readonly cursorColumn?: string | undefined
}

/** A decoded record, ready for the sink. `values` are JSON-safe (dates as ISO strings). */
export interface Row {
  /** the primary key values, JSON-encoded: identity within the stream */
  readonly key: string
  /** the record's cursor value as text, when the stream is incremental */
  readonly cursor: string | undefined
  readonly values: Readonly<Record<string, unknown>>
}

export interface StreamSpec {
  readonly name: string
  readonly source: HttpSourceSpec
  readonly target: TargetSpec
  /** raw JSON record -> row, or the reason it is invalid (it goes to ferry.quarantine) */
  readonly decode: (raw: unknown) => Either.Either<Row, string>
  /** invalid records tolerated per run before the run exits 65 */
  readonly maxInvalid: number
}
