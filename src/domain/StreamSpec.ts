/**
 * One stream: where its records come from (HTTP), how a record becomes a row, and where it goes.
 * Built from the config file (`Config.ts`, a `columns` map) or in code (`StreamSpec.make` with an
 * Effect Schema). `Sync` only ever sees this shape.
 */
import { Duration, Either, Option, ParseResult, Schema, SchemaAST } from "effect"
import type { Redacted } from "effect"
import { parseOrigin } from "./Origin.js"
import { inferCursorType, rowFrom } from "./RowDecoder.js"

export type Auth = (
  | { readonly type: "bearer"; readonly token: Redacted.Redacted<string> }
  | { readonly type: "basic"; readonly username: string; readonly password: Redacted.Redacted<string> }
  /** a custom header, e.g. `X-Api-Key: ...` */
  | { readonly type: "header"; readonly name: string; readonly value: Redacted.Redacted<string> }
  /** a query parameter, e.g. `?api_key=...` */
  | { readonly type: "query"; readonly name: string; readonly value: Redacted.Redacted<string> }
) & {
  /**
   * origins (`https://host[:port]`) that receive the auth and the fixed headers besides the source URL's
   * own, which always does; each must also be in `allowOrigins` to be requested at all
   */
  readonly origins?: ReadonlyArray<string> | undefined
}

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
  /**
   * other origins (`https://host[:port]`) a next page may be on; fetched without credentials unless
   * `auth.origins` lists them (`http/Origin.ts`). Absent: the source URL's origin only.
   */
  readonly allowOrigins?: ReadonlyArray<string> | undefined
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

/**
 * `schema.table`, each part double-quoted unless it is plain lower-case letters, digits and `_`: the
 * name that says which table a checkpoint, a lock, a run and a quarantined record belong to. Two
 * different tables never have the same name (`"A.b".c` is not `a."b.c"`).
 */
export const targetName = (target: Pick<TargetSpec, "schema" | "table">): string => {
  const part = (name: string) => (/^[a-z_][a-z0-9_]*$/.test(name) ? name : `"${name.replace(/"/g, "\"\"")}"`)
  return `${part(target.schema)}.${part(target.table)}`
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

// ---------------------------------------------------------------------------------------------
// Streams defined in code: an Effect Schema for the records instead of a `columns` map.

/** Column types for a schema's fields: strings are text, numbers double precision, Dates timestamptz, the rest jsonb. */
const columnTypeOf = (ast: SchemaAST.AST): ColumnType => {
  switch (ast._tag) {
    case "StringKeyword":
    case "TemplateLiteral":
    case "Enums":
      return "text"
    case "NumberKeyword":
      return "double precision"
    case "BooleanKeyword":
      return "boolean"
    case "BigIntKeyword":
      return "numeric"
    case "Literal":
      return typeof ast.literal === "string" ? "text" : typeof ast.literal === "number" ? "double precision" :
        typeof ast.literal === "boolean" ? "boolean" : "jsonb"
    case "Declaration":
      return Option.getOrUndefined(SchemaAST.getIdentifierAnnotation(ast)) === "DateFromSelf" ? "timestamptz" : "jsonb"
    case "Refinement": {
      const id = Option.getOrUndefined(SchemaAST.getIdentifierAnnotation(ast))
      if (id === "Int" || id === "NonNegativeInt" || id === "PositiveInt") return "bigint"
      return columnTypeOf(ast.from)
    }
    case "Union": {
      const members = ast.types.filter((t) => t._tag !== "UndefinedKeyword" && !(t._tag === "Literal" && t.literal === null))
      const types = new Set(members.map(columnTypeOf))
      return types.size === 1 ? [...types][0]! : "jsonb"
    }
    case "Suspend":
      return columnTypeOf(ast.f())
    default:
      return "jsonb"
  }
}

/** Dates become ISO strings and bigints decimal strings, so the row travels as JSON. */
const jsonSafe = (value: unknown): unknown => {
  if (value instanceof Date) return value.toISOString()
  if (typeof value === "bigint") return value.toString()
  if (Array.isArray(value)) return value.map(jsonSafe)
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonSafe(v)]))
  }
  return value
}

/** Origins given in code, normalised as the config file's are; a malformed one is a programming error. */
const origins = (stream: string, field: string, given: ReadonlyArray<string> | undefined) =>
  given?.map((text, i) =>
    Either.getOrThrowWith(parseOrigin(text), (rule) => new Error(`StreamSpec.make(${stream}): ${field}[${i}]: ${rule}`))
  )

export interface MakeOptions<A, I> {
  readonly name: string
  /** the records' schema; its decoded fields are the table's columns */
  readonly schema: Schema.Schema<A, I>
  readonly source: {
    readonly url: string
    readonly auth?: Auth | undefined
    readonly headers?: Readonly<Record<string, string>> | undefined
    readonly params?: Readonly<Record<string, string>> | undefined
    /** other origins a next page may be on (`https://cdn.example.com`); see `HttpSourceSpec.allowOrigins` */
    readonly allowOrigins?: ReadonlyArray<string> | undefined
    readonly records?: string | undefined
    readonly pagination?: Pagination | undefined
    readonly timeout?: Duration.DurationInput | undefined
    readonly retry?: { readonly attempts?: number; readonly base?: Duration.DurationInput; readonly max?: Duration.DurationInput } | undefined
  }
  readonly incremental?: {
    /** a field of the decoded record */
    readonly cursorField: keyof A & string
    readonly cursorType?: CursorType | undefined
    readonly param?: string | undefined
    readonly params?: Readonly<Record<string, string>> | undefined
    readonly initial?: string | undefined
    readonly lookback?: Duration.DurationInput | undefined
    readonly order?: "asc" | "unsorted" | undefined
  } | undefined
  readonly target: {
    readonly table: string
    /** Postgres schema; default `public` */
    readonly schema?: string | undefined
    readonly primaryKey: ReadonlyArray<keyof A & string>
    /** override the type inferred for some columns */
    readonly columnTypes?: Partial<Record<keyof A & string, ColumnType>> | undefined
  }
  readonly maxInvalid?: number | undefined
}

/**
 * A stream defined in code. The table's columns are the schema's fields (types inferred, or given
 * in `target.columnTypes`); a record that does not decode is quarantined with the schema's message.
 */
export const make = <A, I>(options: MakeOptions<A, I>): StreamSpec => {
  const ast = SchemaAST.typeAST(options.schema.ast)
  const fields = ast._tag === "TypeLiteral" ? ast.propertySignatures : []
  if (fields.length === 0) throw new Error(`StreamSpec.make(${options.name}): the schema must be a Schema.Struct`)
  const overrides: Partial<Record<string, ColumnType>> = options.target.columnTypes ?? {}
  const columns: Array<Column> = fields.map((field) => {
    const name = String(field.name)
    return { name, type: overrides[name] ?? columnTypeOf(field.type), from: name }
  })
  const inc = options.incremental
  const cursorColumnType = inc ? columns.find((c) => c.name === inc.cursorField)?.type : undefined
  const incremental: Incremental | undefined = inc && {
    cursorField: inc.cursorField,
    cursorType: inc.cursorType ?? inferCursorType(inc.initial, cursorColumnType),
    param: inc.param,
    params: inc.params,
    initial: inc.initial,
    lookback: Duration.decode(inc.lookback ?? Duration.zero),
    order: inc.order ?? "unsorted"
  }
  const target: TargetSpec = {
    schema: options.target.schema ?? "public",
    table: options.target.table,
    primaryKey: options.target.primaryKey,
    columns,
    cursorColumn: inc?.cursorField
  }
  const decodeRecord = Schema.decodeUnknownEither(options.schema, { errors: "first", onExcessProperty: "ignore" })
  const retry = options.source.retry
  return {
    name: options.name,
    source: {
      url: options.source.url,
      auth: options.source.auth && {
        ...options.source.auth,
        origins: origins(options.name, "source.auth.origins", options.source.auth.origins)
      },
      headers: options.source.headers ?? {},
      params: options.source.params ?? {},
      allowOrigins: origins(options.name, "source.allowOrigins", options.source.allowOrigins),
      records: options.source.records,
      pagination: options.source.pagination ?? { type: "none" },
      incremental,
      timeout: Duration.decode(options.source.timeout ?? Duration.seconds(30)),
      retry: {
        attempts: retry?.attempts ?? 6,
        base: Duration.decode(retry?.base ?? Duration.millis(500)),
        max: Duration.decode(retry?.max ?? Duration.seconds(60))
      }
    },
    target,
    decode: (raw) =>
      Either.flatMap(
        Either.mapLeft(decodeRecord(raw), (error) =>
          ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) =>
            issue.path.length > 0 ? `${issue.path.join(".")}: ${issue.message}` : issue.message
          ).join("; ")),
        (record) => rowFrom(target, jsonSafe(record))
      ),
    maxInvalid: options.maxInvalid ?? 0
  }
}
