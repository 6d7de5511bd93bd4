/**
 * The configuration file's format as one Effect Schema: it validates the file (after `${VAR}`
 * interpolation, see `Config.ts`) and generates the JSON Schema shipped for editors. Every error
 * becomes ONE line naming the field path (`streams[0].source.pagination.type: expected one of ...`)
 * and never the offending value, which may be a secret.
 */
import { Duration, Either, JSONSchema, Option, ParseResult, Schema } from "effect"
import { ConfigError } from "../domain/Errors.js"
import { originRule, parseOrigin } from "../domain/Origin.js"
import { cursorColumnOf, defaultColumns } from "../domain/RowDecoder.js"
import { type ColumnType, columnTypes } from "../domain/StreamSpec.js"

// --- leaves -------------------------------------------------------------------------------------------

/**
 * Editors check the file before `${VAR}` is read, so a JSON Schema pattern also lets a value with a
 * reference through (the real check runs after interpolation).
 */
const orReference = (pattern: string) => `${pattern}|\\$\\{`

/** A leaf's own message replaces whatever its inner parts said (`override`: unions would list every member). */
const says = (message: string) => ({ message: () => ({ message, override: true }) })

const identifierRule = "letters, digits and _, not starting with a digit, at most 63 characters"
const identifierPattern = /^[A-Za-z_][A-Za-z0-9_]*$/
const isIdentifier = (name: string) => name.length <= 63 && identifierPattern.test(name)
/** Table, schema and column names: they reach SQL (quoted), so only plain names are allowed. */
export const Identifier = Schema.String.pipe(
  Schema.filter(isIdentifier, {
    message: () => `not a valid identifier (${identifierRule})`,
    jsonSchema: { pattern: orReference(identifierPattern.source), maxLength: 63 }
  })
).annotations({ title: "a PostgreSQL identifier", description: `a PostgreSQL identifier: ${identifierRule}` })

const NonEmpty = Schema.String.pipe(Schema.minLength(1, { message: () => "must not be empty" }))
  .annotations({ title: "a non-empty string" })

const DottedPath = Schema.String.pipe(
  Schema.pattern(/^[^.]+(?:\.[^.]+)*$/, { message: () => `expected a dotted path like "customer.email"` })
).annotations({ description: "a dotted path into the JSON body or record, e.g. customer.email" })

const HeaderName = Schema.String.pipe(
  Schema.pattern(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, { message: () => "not a valid HTTP header name" })
).annotations({ title: "an HTTP header name", description: "an HTTP header name (letters, digits and !#$%&'*+.^_`|~-)" })

/** A few fixed words; Effect would report each alternative separately. */
const oneOf = <const Values extends ReadonlyArray<string>>(...values: Values) =>
  Schema.Literal(...values).annotations(says(`expected one of ${values.join(", ")}`))

const HttpUrl = Schema.String.pipe(
  Schema.filter((s) => /^https?:\/\//i.test(s) && URL.canParse(s), {
    message: () => "expected an http:// or https:// URL",
    jsonSchema: { pattern: orReference("^[hH][tT][tT][pP][sS]?://") }
  })
)

/** Query and header values: YAML reads `limit: 100` as a number, the request wants text. */
const ScalarText = Schema.transform(Schema.Union(Schema.String, Schema.Number, Schema.Boolean), Schema.String, {
  strict: true,
  decode: (value) => String(value),
  encode: (text) => text
}).annotations(says("expected a string, number or boolean"))

const durationRule = `expected a duration like "30 seconds", "500 millis", "5 minutes", or a number of milliseconds`
const durationPattern = /^\d+(?:\.\d+)?\s+(?:nanos?|micros?|millis?|seconds?|minutes?|hours?|days?|weeks?)$/

/** "30 seconds" (the units of `Duration.decode`) or milliseconds; never negative or infinite. */
export const DurationField = Schema.transformOrFail(Schema.Union(Schema.Number, Schema.String), Schema.DurationFromSelf, {
  strict: true,
  decode: (input, _, ast) => {
    const duration = typeof input === "number"
      ? (input >= 0 ? Duration.decodeUnknown(input) : Option.none())
      : (durationPattern.test(input.trim()) ? Duration.decodeUnknown(input.trim()) : Option.none())
    return Option.match(Option.filter(duration, Duration.isFinite), {
      onNone: () => ParseResult.fail(new ParseResult.Type(ast, input, durationRule)),
      onSome: ParseResult.succeed
    })
  },
  encode: (duration) => ParseResult.succeed(Duration.toMillis(duration))
}).annotations({
  ...says(durationRule),
  jsonSchema: {
    anyOf: [
      { type: "string", pattern: orReference(durationPattern.source) },
      { type: "number", minimum: 0, description: "milliseconds" }
    ]
  },
  description: durationRule.replace("expected ", "")
})

/** Whole numbers; strings of digits too, since `${LIMIT}` always yields a string. */
const integerAtLeast = (min: number) => {
  const rule = `expected a whole number >= ${min}`
  return Schema.transformOrFail(Schema.Union(Schema.Number, Schema.String), Schema.Number, {
    strict: true,
    decode: (input, _, ast) => {
      const n = typeof input === "number" ? input : /^\s*-?\d+\s*$/.test(input) ? Number(input) : Number.NaN
      return Number.isSafeInteger(n) && n >= min
        ? ParseResult.succeed(n)
        : ParseResult.fail(new ParseResult.Type(ast, input, rule))
    },
    encode: ParseResult.succeed
  }).annotations({
    ...says(rule),
    jsonSchema: { anyOf: [{ type: "integer", minimum: min }, { type: "string", pattern: orReference("^\\d+$") }] }
  })
}

const columnTypeAliases: Readonly<Record<string, ColumnType>> = {
  int: "integer",
  int4: "integer",
  int8: "bigint",
  float8: "double precision",
  double: "double precision",
  float4: "real",
  bool: "boolean",
  "timestamp with time zone": "timestamptz",
  json: "jsonb",
  decimal: "numeric",
  varchar: "text",
  string: "text"
}
const columnTypeRule = `expected a column type: one of ${columnTypes.join(", ")} (or an alias: ${
  Object.keys(columnTypeAliases).join(", ")
})`

/** Case-insensitive, with the common aliases; always decodes to one of `columnTypes`. */
export const ColumnTypeField = Schema.transformOrFail(Schema.String, Schema.Literal(...columnTypes), {
  strict: true,
  decode: (input, _, ast) => {
    const name = input.trim().toLowerCase().replace(/\s+/g, " ")
    const type = (columnTypes as ReadonlyArray<string>).includes(name)
      ? (name as ColumnType)
      : Object.hasOwn(columnTypeAliases, name) ? columnTypeAliases[name] : undefined
    return type === undefined ? ParseResult.fail(new ParseResult.Type(ast, input, columnTypeRule)) : ParseResult.succeed(type)
  },
  encode: ParseResult.succeed
}).annotations({ ...says(columnTypeRule), description: columnTypeRule.replace("expected ", "") })

/** `name: type` or `name: { type, from }`; `from` (a dotted path in the record) defaults to the name. */
const ColumnField = Schema.Union(
  ColumnTypeField,
  Schema.Struct({ type: ColumnTypeField, from: Schema.optional(DottedPath) })
)

/** `https://cdn.example.com[:port]`, normalised to the form `URL.origin` gives (lower-case host, no default port). */
const Origin = Schema.transformOrFail(Schema.String, Schema.String, {
  strict: true,
  decode: (input, _, ast) =>
    Either.match(parseOrigin(input), {
      onLeft: (rule) => ParseResult.fail(new ParseResult.Type(ast, input, rule)),
      onRight: ParseResult.succeed
    }),
  encode: ParseResult.succeed
}).annotations({
  ...says(originRule),
  jsonSchema: {
    type: "string",
    pattern: orReference("^[hH][tT][tT][pP][sS]?://[^/?#]+/?$"),
    description: "an origin: http(s)://host[:port], without a path"
  }
})

const Origins = Schema.Array(Origin)

// --- a stream -----------------------------------------------------------------------------------------

/** `origins`: where else the auth (and the fixed headers) may go; see http/Origin.ts */
const Auth = Schema.Union(
  Schema.Struct({ type: Schema.Literal("bearer"), token: Schema.Redacted(Schema.String), origins: Schema.optional(Origins) }),
  Schema.Struct({
    type: Schema.Literal("basic"),
    username: Schema.String,
    password: Schema.Redacted(Schema.String),
    origins: Schema.optional(Origins)
  }),
  Schema.Struct({
    type: Schema.Literal("header"),
    name: HeaderName,
    value: Schema.Redacted(Schema.String),
    origins: Schema.optional(Origins)
  }),
  Schema.Struct({
    type: Schema.Literal("query"),
    name: NonEmpty,
    value: Schema.Redacted(Schema.String),
    origins: Schema.optional(Origins)
  })
)

const withDefault = <S extends Schema.Schema.Any>(schema: S, value: () => Schema.Schema.Type<S>) =>
  Schema.optionalWith(schema, { default: value })

const PaginationField = Schema.Union(
  Schema.Struct({ type: Schema.Literal("none") }),
  Schema.Struct({ type: Schema.Literal("link") }),
  // exactly one of nextPath / fromRecord: checked with the stream, where the error can name the field
  Schema.Struct({
    type: Schema.Literal("cursor"),
    param: NonEmpty,
    nextPath: Schema.optional(DottedPath),
    fromRecord: Schema.optional(DottedPath),
    hasMorePath: Schema.optional(DottedPath)
  }),
  Schema.Struct({
    type: Schema.Literal("offset"),
    offsetParam: withDefault(NonEmpty, () => "offset"),
    limitParam: withDefault(NonEmpty, () => "limit"),
    limit: withDefault(integerAtLeast(1), () => 100)
  }),
  Schema.Struct({
    type: Schema.Literal("page"),
    pageParam: withDefault(NonEmpty, () => "page"),
    sizeParam: withDefault(NonEmpty, () => "per_page"),
    size: withDefault(integerAtLeast(1), () => 100),
    firstPage: withDefault(integerAtLeast(0), () => 1)
  })
)

const CursorTemplate = Schema.String.pipe(
  Schema.filter((s) => s.includes("{cursor}"), { message: () => "template must contain {cursor}" })
)

const IncrementalField = Schema.Struct({
  cursorField: DottedPath,
  /** how cursors compare; inferred from `initial` and the cursor column's type when absent */
  cursorType: Schema.optional(oneOf("timestamp", "number", "string")),
  param: Schema.optional(NonEmpty),
  params: Schema.optional(Schema.Record({ key: NonEmpty, value: CursorTemplate })),
  initial: Schema.optional(ScalarText),
  lookback: withDefault(DurationField, () => Duration.zero),
  order: withDefault(oneOf("asc", "unsorted"), () => "unsorted" as const)
})

const RetryField = Schema.Struct({
  attempts: withDefault(integerAtLeast(1), () => 6),
  base: withDefault(DurationField, () => Duration.millis(500)),
  max: withDefault(DurationField, () => Duration.seconds(60))
})

const SourceField = Schema.Struct({
  url: HttpUrl,
  auth: Schema.optional(Auth),
  headers: withDefault(Schema.Record({ key: HeaderName, value: ScalarText }), () => ({})),
  params: withDefault(Schema.Record({ key: NonEmpty, value: ScalarText }), () => ({})),
  /** other origins a next page may be on (fetched without credentials unless auth.origins lists them) */
  allowOrigins: Schema.optional(Origins),
  records: Schema.optional(DottedPath),
  pagination: withDefault(PaginationField, () => ({ type: "none" as const })),
  incremental: Schema.optional(IncrementalField),
  timeout: withDefault(DurationField, () => Duration.seconds(30)),
  retry: withDefault(RetryField, () => RetryField.make({}))
})

const TargetField = Schema.Struct({
  table: Identifier,
  primaryKey: Schema.Array(Identifier).pipe(Schema.minItems(1, { message: () => "must name at least one column" })),
  /** omitted: primary key + cursor + one jsonb `record` column (RowDecoder.defaultColumns) */
  columns: Schema.optional(Schema.Record({ key: Identifier, value: ColumnField }))
})

type Issue = { readonly path: ReadonlyArray<PropertyKey>; readonly message: string }

/** The rules that span fields of one stream; each names the field to fix. */
const streamProblems = (stream: typeof StreamFields.Type): ReadonlyArray<Issue> => {
  const { pagination, incremental } = stream.source
  const { primaryKey, columns } = stream.target
  const issues: Array<Issue> = []
  if (pagination.type === "cursor") {
    const at = ["source", "pagination"]
    if ((pagination.nextPath === undefined) === (pagination.fromRecord === undefined)) {
      issues.push({ path: at, message: "cursor pagination needs exactly one of nextPath (token in the body) or fromRecord (field of the last record)" })
    } else if (pagination.hasMorePath !== undefined && pagination.fromRecord === undefined) {
      issues.push({ path: [...at, "hasMorePath"], message: "hasMorePath is only used with fromRecord" })
    }
  }
  const home = URL.canParse(stream.source.url) ? new URL(stream.source.url).origin : undefined
  stream.source.auth?.origins?.forEach((origin, i) => {
    if (origin !== home && !(stream.source.allowOrigins ?? []).includes(origin)) {
      issues.push({
        path: ["source", "auth", "origins", i],
        message: `${origin} is neither the source URL's origin nor listed in source.allowOrigins: no request goes there`
      })
    }
  })
  if (incremental?.param !== undefined && incremental.params !== undefined) {
    issues.push({ path: ["source", "incremental"], message: "give param or params, not both" })
  }
  primaryKey.forEach((name, i) => {
    if (primaryKey.indexOf(name) !== i) {
      issues.push({ path: ["target", "primaryKey", i], message: `"${name}" is listed twice` })
    }
  })
  if (columns === undefined) {
    // the default shape derives column names from the primary key and the cursor field: they must fit too
    const defaults = defaultColumns(primaryKey, incremental && { ...incremental, cursorType: "string" }).columns
    const bad = defaults.find((c, i) => !isIdentifier(c.name) || defaults.findIndex((d) => d.name === c.name) < i)
    if (bad !== undefined) {
      issues.push({
        path: ["target"],
        message: `without columns Ferry would create a column "${bad.name}", which is not a valid identifier or is used twice: list target.columns`
      })
    }
  } else {
    const names = Object.keys(columns)
    primaryKey.forEach((name, i) => {
      if (!names.includes(name)) {
        issues.push({ path: ["target", "primaryKey", i], message: `"${name}" is not one of the columns (${names.join(", ")})` })
      }
    })
    if (incremental !== undefined && cursorColumnOf(columnList(columns), incremental.cursorField) === undefined) {
      issues.push({
        path: ["target", "columns"],
        message: `no column takes its value from the cursor field "${incremental.cursorField}": add one, e.g. ${
          incremental.cursorField.split(".").join("_")
        }: { type: timestamptz, from: ${incremental.cursorField} }`
      })
    }
  }
  return issues
}

const StreamFields = Schema.Struct({
  name: Identifier,
  source: SourceField,
  target: TargetField,
  maxInvalid: withDefault(integerAtLeast(0), () => 0)
})
const StreamField = StreamFields.pipe(Schema.filter(streamProblems))

const DatabaseUrl = Schema.String.pipe(
  Schema.filter((s) => s === "" || (/^postgres(?:ql)?:\/\//i.test(s) && URL.canParse(s)), {
    message: () => "expected a postgres:// or postgresql:// URL (empty or absent: the embedded database)"
  })
)

/** The whole file. Defaults are filled in here; `Config.ts` maps the result to runtime shapes. */
export const ConfigFile = Schema.Struct({
  database: withDefault(
    Schema.Struct({
      url: Schema.optional(DatabaseUrl),
      schema: withDefault(Identifier, () => "public"),
      // absent: Database.defaultTimeouts (unless the URL's `options=` sets them); 0: without bound
      lockTimeout: Schema.optional(DurationField),
      statementTimeout: Schema.optional(DurationField)
    }),
    () => ({ schema: "public" })
  ),
  checkpoint: withDefault(
    Schema.Union(
      Schema.Struct({ store: Schema.Literal("postgres") }),
      // relative to the config file's directory (resolved in Config.ts), not to the working directory
      Schema.Struct({ store: Schema.Literal("file"), path: withDefault(NonEmpty, () => "./.ferry/checkpoints.json") })
    ),
    () => ({ store: "postgres" as const })
  ),
  streams: Schema.Array(StreamField).pipe(
    Schema.minItems(1, { message: () => "must list at least one stream" }),
    Schema.filter((streams) =>
      streams.flatMap((s, i) =>
        streams.findIndex((t) => t.name === s.name) < i
          ? [{ path: [i, "name"], message: `duplicate stream name "${s.name}"` }]
          : []
      )
    )
  )
}).annotations({ title: "Ferry configuration", description: "Streams from HTTP JSON APIs into PostgreSQL" })

export type ConfigFile = typeof ConfigFile.Type
export type StreamConfig = ConfigFile["streams"][number]

/** The `columns` map as runtime columns, in file order. */
export const columnList = (columns: NonNullable<StreamConfig["target"]["columns"]>) =>
  Object.entries(columns).map(([name, column]) =>
    typeof column === "string" ? { name, type: column, from: name } : { name, type: column.type, from: column.from ?? name }
  )

// --- errors -------------------------------------------------------------------------------------------

/** `streams[0].source.headers["X Key"]`: the form a reader looks for in the file. */
export const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>((out, key) => {
    if (typeof key === "number") return `${out}[${key}]`
    const name = String(key)
    if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(name)) return `${out}[${JSON.stringify(name)}]`
    return out === "" ? name : `${out}.${name}`
  }, "")

/** Effect's built-in messages, made human; `actual ...` is dropped, since it may hold a secret. */
const humanize = (issue: ParseResult.ArrayFormatterIssue): string => {
  if (issue._tag === "Missing") return "is required"
  if (issue._tag === "Unexpected") {
    const key = JSON.stringify(String(issue.path[issue.path.length - 1]))
    const expected = issue.message.replace(/^is unexpected, expected: /, "")
    // a struct lists its keys as literals; a map (`columns`, `headers`) describes what a key must look like
    if (!/^"[^"]*"(?: \| "[^"]*")*$/.test(expected)) return `invalid key ${key}: expected ${expected}`
    return `unknown key ${key} (expected one of ${Array.from(expected.matchAll(/"([^"]*)"/g), (m) => m[1]).join(", ")})`
  }
  const expected = /^Expected ([\s\S]*?), actual /.exec(issue.message)?.[1]
  if (expected === undefined) return issue.message
  const literals = expected.split(" | ").map((part) => /^"([^"]*)"$/.exec(part)?.[1])
  if (literals.every((l) => l !== undefined)) {
    return literals.length === 1 ? `expected "${literals[0]}"` : `expected one of ${literals.join(", ")}`
  }
  if (expected === "string" || expected === "number" || expected === "boolean") return `expected a ${expected}`
  if (expected.startsWith("ReadonlyArray<") || expected.startsWith("readonly [")) return "expected a list"
  if (expected.startsWith("{") || expected.startsWith("Struct")) return "expected a mapping (key: value)"
  return `expected ${expected}`
}

/**
 * Validates the interpolated file. Of a failing union's issues the deepest is reported: the member
 * that got furthest is the one the user meant.
 */
export const decode = (raw: unknown): Either.Either<ConfigFile, ConfigError> =>
  Schema.decodeUnknownEither(ConfigFile, { onExcessProperty: "error", errors: "first" })(raw).pipe(
    Either.mapLeft((error) => {
      const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
      const deepest = issues.reduce((best, issue) => issue.path.length > best.path.length ? issue : best)
      const reason = deepest.path.length === 0 && deepest._tag === "Type"
        ? "expected a mapping with a `streams` list at the top of the file"
        : humanize(deepest)
      return new ConfigError({ path: formatPath(deepest.path), reason })
    })
  )

/** The JSON Schema of the file format, for editors (yaml-language-server, VS Code `json.schemas`). */
export const jsonSchema = (): object => JSONSchema.make(ConfigFile)

