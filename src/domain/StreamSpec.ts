/**
 * One stream: where its records come from (HTTP), how a record becomes a row, and where it goes.
 * Each part is one Effect Schema (`HttpSourceSpec.ts`, `Target.ts`, ...) that the config file is read
 * with (`config/ConfigFile.ts`, a `columns` map) and that `make` fills in for a stream defined in code
 * (an Effect Schema for the records). `Sync` only ever sees this shape.
 */
import { Duration, Either, Option, ParseResult, Schema, SchemaAST } from "effect"
import type { Auth } from "./Auth.js"
import { integerAtLeast, withDefault } from "./Fields.js"
import { HttpSourceSpec, requestProblems } from "./HttpSourceSpec.js"
import { type CursorType, Incremental } from "./Incremental.js"
import { parseOrigin } from "./Origin.js"
import { Pagination } from "./Pagination.js"
import { ParentSpec } from "./Parent.js"
import { Retry } from "./Retry.js"
import { inferCursorType } from "./DefaultShape.js"
import { type Row, rowFrom } from "./RowDecoder.js"
import { type Column, type ColumnType, TargetSpec, type WriteMode } from "./Target.js"

// the parts, under the names the rest of Ferry (and `ferry`'s `StreamSpec` namespace) knows them by
export type { Auth } from "./Auth.js"
export type { HttpSourceSpec } from "./HttpSourceSpec.js"
export type { CursorType, Incremental } from "./Incremental.js"
export type { Pagination } from "./Pagination.js"
export type { Retry } from "./Retry.js"
export type { Row } from "./RowDecoder.js"
export { type Column, type ColumnType, columnTypes, tableKey, type TargetSpec, targetName, type WriteMode } from "./Target.js"

/** A stream's settings, everything but its `decode`. */
export const StreamSettings = Schema.Struct({
  name: Schema.String,
  source: HttpSourceSpec,
  target: TargetSpec,
  /** invalid records tolerated per run before the run exits 65 */
  maxInvalid: withDefault(integerAtLeast(0), () => 0),
  /** an incremental stream reads the whole collection when its last complete read is older than this */
  fullEvery: Schema.optional(Schema.DurationFromSelf),
  /** `ferry check --fresh`: the stream is stale when its last successful run is older than this */
  maxAge: Schema.optional(Schema.DurationFromSelf),
  /** a child stream: read once per row of this stream's target table (`Parent.ts`) */
  parent: Schema.optional(ParentSpec)
})

export interface StreamSpec extends Schema.Schema.Type<typeof StreamSettings> {
  /** raw JSON record -> row, or the reason it is invalid (it goes to ferry.quarantine) */
  readonly decode: (raw: unknown) => Either.Either<Row, string>
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

/** The first issue of a failed check as `path: message`, as the config file's errors name the field. */
const firstIssue = (error: ParseResult.ParseError): string =>
  ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) =>
    issue.path.length > 0 ? `${issue.path.join(".")}: ${issue.message}` : issue.message
  ).join("; ")

const orThrow = <A>(stream: string, result: Either.Either<A, ParseResult.ParseError>): A =>
  Either.getOrThrowWith(result, (error) => new Error(`StreamSpec.make(${stream}): ${firstIssue(error)}`))

const durationOf = (input: Duration.DurationInput | undefined) => input === undefined ? undefined : Duration.decode(input)

export interface MakeOptions<A, I> {
  readonly name: string
  /** the records' schema; its decoded fields are the table's columns */
  readonly schema: Schema.Schema<A, I>
  readonly source: {
    readonly url: string
    /** default GET; `graphql` implies POST */
    readonly method?: HttpSourceSpec["method"] | undefined
    /** with POST: the JSON body; strings that are exactly `"{cursor}"`/`"{next}"` become the value (`Template.ts`) */
    readonly body?: unknown
    /** `{ query, variables }`, POSTed as JSON; records at `records` (`data.orders.nodes`) */
    readonly graphql?: { readonly query: string; readonly variables?: Readonly<Record<string, unknown>> | undefined } | undefined
    readonly auth?: Auth | undefined
    readonly headers?: HttpSourceSpec["headers"] | undefined
    readonly params?: HttpSourceSpec["params"] | undefined
    /** other origins a next page may be on (`https://cdn.example.com`); see `HttpSourceSpec.allowOrigins` */
    readonly allowOrigins?: ReadonlyArray<string> | undefined
    readonly records?: HttpSourceSpec["records"]
    /** as in the config file: `{ type: "cursor", param: "after", nextPath: "meta.next" }` */
    readonly pagination?: typeof Pagination.Encoded | undefined
    readonly timeout?: Duration.DurationInput | undefined
    readonly retry?: { readonly attempts?: number; readonly base?: Duration.DurationInput; readonly max?: Duration.DurationInput } | undefined
  }
  readonly incremental?: {
    /** a field of the decoded record */
    readonly cursorField: keyof A & string
    readonly cursorType?: CursorType | undefined
    readonly param?: Incremental["param"]
    readonly params?: Incremental["params"]
    readonly endParam?: Incremental["endParam"]
    /** a cursor value or `now - 1 hour`: the read's upper bound (README "incremental.end") */
    readonly end?: Incremental["end"]
    readonly initial?: Incremental["initial"]
    readonly lookback?: Duration.DurationInput | undefined
    readonly order?: Incremental["order"] | undefined
  } | undefined
  readonly target: {
    readonly table: string
    /** Postgres schema; default `public` */
    readonly schema?: string | undefined
    readonly primaryKey: ReadonlyArray<keyof A & string>
    /** override the type inferred for some columns */
    readonly columnTypes?: Partial<Record<keyof A & string, ColumnType>> | undefined
    /** merge (default), append (needs `incremental`) or replace (without `incremental`): see the README */
    readonly write?: WriteMode | undefined
  }
  readonly maxInvalid?: number | undefined
  /**
   * a child stream: read once per row of this stream's table, with `{parent.<column>}` in `source.url`,
   * `params` and `headers` (see the README, "Parent → child streams")
   */
  readonly parent?: { readonly name: string; readonly target: TargetSpec } | undefined
}

/** The table's columns: the schema's fields, their types inferred or given in `target.columnTypes`. */
const columnsOf = <A, I>(options: MakeOptions<A, I>): ReadonlyArray<Column> => {
  const ast = SchemaAST.typeAST(options.schema.ast)
  const fields = ast._tag === "TypeLiteral" ? ast.propertySignatures : []
  if (fields.length === 0) throw new Error(`StreamSpec.make(${options.name}): the schema must be a Schema.Struct`)
  const overrides: Partial<Record<string, ColumnType>> = options.target.columnTypes ?? {}
  return fields.map((field) => {
    const name = String(field.name)
    return { name, type: overrides[name] ?? columnTypeOf(field.type), from: name }
  })
}

/**
 * A schema's `make` fills in its defaults; what code gives is taken as given, unchecked (as `make` always
 * did), but for the pagination, which is decoded to its style.
 */
const unchecked = { disableValidation: true }

/** The source as given, with the defaults of the schemas filled in. */
const sourceOf = <A, I>(options: MakeOptions<A, I>, incremental: Incremental | undefined): HttpSourceSpec => {
  const { auth, graphql, method, pagination, retry, timeout } = options.source
  const decoded = pagination && orThrow(options.name, Schema.decodeUnknownEither(Pagination)(pagination))
  const problem = requestProblems({ ...options.source, pagination: decoded ?? { _tag: "None" } })[0]
  if (problem !== undefined) throw new Error(`StreamSpec.make(${options.name}): source.${problem[0].join(".")}: ${problem[1]}`)
  return HttpSourceSpec.make({
    ...options.source,
    method: graphql === undefined ? method : "POST",
    graphql: graphql && { query: graphql.query, variables: graphql.variables ?? {} },
    auth: auth && { ...auth, origins: origins(options.name, "source.auth.origins", auth.origins) },
    allowOrigins: origins(options.name, "source.allowOrigins", options.source.allowOrigins),
    pagination: decoded,
    incremental,
    timeout: durationOf(timeout),
    retry: Retry.make({ attempts: retry?.attempts, base: durationOf(retry?.base), max: durationOf(retry?.max) }, unchecked)
  }, unchecked)
}

/**
 * A stream defined in code. The table's columns are the schema's fields (types inferred, or given
 * in `target.columnTypes`); a record that does not decode is quarantined with the schema's message.
 */
export const make = <A, I>(options: MakeOptions<A, I>): StreamSpec => {
  const columns = columnsOf(options)
  const inc = options.incremental
  const incremental = inc && Incremental.make({
    ...inc,
    cursorType: inc.cursorType ?? inferCursorType(inc.initial, columns.find((c) => c.name === inc.cursorField)?.type),
    lookback: durationOf(inc.lookback)
  }, unchecked)
  const stream = StreamSettings.make({
    name: options.name,
    source: sourceOf(options, incremental),
    target: TargetSpec.make({
      schema: options.target.schema,
      table: options.target.table,
      primaryKey: options.target.primaryKey,
      columns,
      cursorColumn: inc?.cursorField,
      write: options.target.write
    }, unchecked),
    maxInvalid: options.maxInvalid,
    parent: options.parent && { stream: options.parent.name, target: options.parent.target }
  }, unchecked)
  const decodeRecord = Schema.decodeUnknownEither(options.schema, { errors: "first", onExcessProperty: "ignore" })
  return {
    ...stream,
    decode: (raw) =>
      Either.flatMap(Either.mapLeft(decodeRecord(raw), firstIssue), (record) => rowFrom(stream.target, jsonSafe(record)))
  }
}
