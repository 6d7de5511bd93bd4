/** Where a stream's rows go: a PostgreSQL table, its columns and their types. */
import { Schema } from "effect"
import { Deletes } from "./Deletes.js"
import { TimeFormat } from "./Epoch.js"
import { withDefault } from "./Fields.js"

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
export const ColumnType = Schema.Literal(...columnTypes)
export type ColumnType = typeof ColumnType.Type

const Column = Schema.Struct({
  name: Schema.String,
  type: ColumnType,
  /** dotted path in the decoded record; "" is the whole record */
  from: Schema.String,
  /** timestamptz/timestamp/date only: the record's value is Unix seconds or milliseconds (`Epoch.ts`) */
  format: Schema.optional(TimeFormat)
})
export type Column = typeof Column.Type

/**
 * How a run's rows reach the table: `merge` (one row per primary key, the newest version wins),
 * `append` (one row per version: primary key + cursor, a version re-read adds nothing), `replace`
 * (every run loads the whole source apart and swaps it in at its end).
 */
const writeModes = ["merge", "append", "replace"] as const
export const WriteMode = Schema.Literal(...writeModes)
export type WriteMode = typeof WriteMode.Type

/**
 * A nested list of each record written to a table of its own (`domain/Children.ts`): its rows carry
 * the parent's key as `parent_<column>`; without a `primaryKey` of its own, a row is keyed by its
 * position in the list (`_index`).
 */
export const ChildSpec = Schema.Struct({
  /** dotted path of the list in the record */
  path: Schema.String,
  table: Schema.String,
  primaryKey: Schema.optional(Schema.Array(Schema.String)),
  /** each `from` is a path in one element of the list */
  columns: Schema.Array(Column)
})
export type ChildSpec = typeof ChildSpec.Type

/** The Postgres schema of a target table, and of Ferry's own tables, when the config names none. */
export const defaultSchema = "public"

export const TargetSpec = Schema.Struct({
  /** Postgres schema of the target table */
  schema: withDefault(Schema.String, () => defaultSchema),
  table: Schema.String,
  primaryKey: Schema.Array(Schema.String),
  columns: Schema.Array(Column),
  /** the column holding the incremental cursor; the upsert never replaces a row with an older cursor */
  cursorColumn: Schema.optional(Schema.String),
  /** absent: merge */
  write: Schema.optional(WriteMode),
  /** a jsonb column of `columns` holding the record as received: new columns are filled from it */
  record: Schema.optional(Schema.String),
  /** a jsonb column of `columns` holding the record's fields that no other column reads (`RowDecoder.extraOf`) */
  extra: Schema.optional(Schema.String),
  /** child tables for nested lists (absent: none) */
  children: Schema.optional(Schema.Array(ChildSpec)),
  /** records deleted at the source: flagged by a field, or missing from a complete read (Deletes.ts) */
  deletes: Schema.optional(Deletes)
})
export type TargetSpec = typeof TargetSpec.Type

/**
 * `schema.table`, each part double-quoted unless it is plain lower-case letters, digits and `_`: the
 * name that says which table a checkpoint, a lock, a run and a quarantined record belong to. Two
 * different tables never have the same name (`"A.b".c` is not `a."b.c"`).
 */
export const targetName = (target: Pick<TargetSpec, "schema" | "table">): string => {
  const part = (name: string) => (/^[a-z_][a-z0-9_]*$/.test(name) ? name : `"${name.replace(/"/g, "\"\"")}"`)
  return `${part(target.schema)}.${part(target.table)}`
}

/**
 * The table's primary key: the stream's, and for `append` the cursor column after it (each version of
 * a record is its own row). A row's identity (`Row.key`) is made of these columns.
 */
export const tableKey = (target: Pick<TargetSpec, "primaryKey" | "cursorColumn" | "write">): ReadonlyArray<string> =>
  target.write === "append" && target.cursorColumn !== undefined && !target.primaryKey.includes(target.cursorColumn)
    ? [...target.primaryKey, target.cursorColumn]
    : target.primaryKey
