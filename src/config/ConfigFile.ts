/**
 * The configuration file's format: the model's schemas (`domain/`) plus what only the file has (the
 * `columns` map and its type aliases, `database`, `checkpoint`, the rules that span fields). It
 * validates the file (after `${VAR}` interpolation, see `Interpolation.ts`) and generates the JSON
 * Schema shipped for editors. Every error becomes ONE line naming the field path
 * (`streams[0].source.pagination.type: expected one of ...`) and never the offending value, which may
 * be a secret.
 */
import { Either, JSONSchema, ParseResult, Schema } from "effect"
import { ConfigError } from "../domain/Errors.js"
import { childrenProblems } from "./Children.js"
import * as Cron from "./Cron.js"
import { boundProblems } from "./End.js"
import { epochProblems } from "./Epoch.js"
import { parentProblems } from "./Parents.js"

/** streams at a time: each holds two database connections while it runs */
export const maxConcurrency = 64
import { TimeFormat } from "../domain/Epoch.js"
import { formatPath, humanize } from "./Messages.js"
import { LeaseField } from "../domain/Lease.js"
import { DottedPath, DurationField, Identifier, integerAtLeast, isIdentifier, NonEmpty, withDefault } from "../domain/Fields.js"
import { HttpSourceSpec, Method, requestProblems } from "../domain/HttpSourceSpec.js"
import { CursorType, Incremental } from "../domain/Incremental.js"
import * as DeletesRules from "../domain/Deletes.js"
import { Deletes } from "../domain/Deletes.js"
import { configuredColumnNames, cursorColumnOf, defaultColumns } from "../domain/DefaultShape.js"
import { MaxAgeField } from "../domain/MaxAge.js"
import { ParentField } from "../domain/Parent.js"
import { StreamSettings } from "../domain/StreamSpec.js"
import { defaultSchema, WriteMode } from "../domain/Target.js"
import { ColumnTypeField } from "./ColumnTypes.js"

// --- columns ------------------------------------------------------------------------------------------

/** `name: type` or `name: { type, from }`; `from` (a dotted path in the record) defaults to the name. */
const ColumnField = Schema.Union(
  ColumnTypeField,
  Schema.Struct({ type: ColumnTypeField, from: Schema.optional(DottedPath), format: Schema.optional(TimeFormat) })
)

// --- a stream -----------------------------------------------------------------------------------------

/** The cursor's type may be left out: it is inferred from `initial` and the cursor column's type (`Config.ts`). */
const IncrementalField = Schema.Struct({ ...Incremental.fields, cursorType: Schema.optional(CursorType) })

/** `method` as written: `graphql` implies POST, and a written GET with it is an error */
const SourceField = Schema.Struct({
  ...HttpSourceSpec.fields,
  method: Schema.optional(Method),
  incremental: Schema.optional(IncrementalField)
})

/** A nested list into a table of its own: the parent's key, then `primaryKey` (or the position, `_index`). */
const ChildField = Schema.Struct({
  path: DottedPath,
  table: Identifier,
  primaryKey: Schema.optional(Schema.Array(Identifier).pipe(Schema.minItems(1, { message: () => "must name at least one column" }))),
  columns: Schema.Record({ key: Identifier, value: ColumnField })
})

/** The target's schema is `database.schema`; its columns a map, or the default shape. */
const TargetField = Schema.Struct({
  table: Identifier,
  primaryKey: Schema.Array(Identifier).pipe(Schema.minItems(1, { message: () => "must name at least one column" })),
  /** omitted: primary key + cursor + one jsonb `record` column (DefaultShape.defaultColumns) */
  columns: Schema.optional(Schema.Record({ key: Identifier, value: ColumnField })),
  /** merge (default): one row per key; append: one per version (key + cursor); replace: the whole source, swapped in */
  write: Schema.optional(WriteMode),
  /** a jsonb column with the record as received (default without `columns`: `record`) */
  record: Schema.optional(Identifier),
  /** a jsonb column with the record's fields that no column reads */
  extra: Schema.optional(Identifier),
  /** child tables for nested lists (domain/Children.ts) */
  children: Schema.optional(Schema.Array(ChildField)),
  /** records deleted at the source: `{ path, equals, action }` or `{ detect: missing, action, allowEmpty }` */
  deletes: Schema.optional(Deletes)
})

type Issue = { readonly path: ReadonlyArray<PropertyKey>; readonly message: string }

/** append needs a cursor (a version is key + cursor); replace reads everything, every run (no checkpoint) */
const writeModeProblems = (stream: typeof StreamFields.Type): ReadonlyArray<Issue> => {
  const { write } = stream.target
  if (write === "append" && stream.source.incremental === undefined) {
    return [{
      path: ["target", "write"],
      message: "append keeps one row per version (primary key + cursor): it needs source.incremental with a cursorField"
    }]
  }
  if (write === "replace" && stream.source.incremental !== undefined) {
    return [{
      path: ["source", "incremental"],
      message: "write: replace reads the whole source every run and keeps no checkpoint: remove source.incremental"
    }]
  }
  return []
}

/** The rules that span fields of one stream; each names the field to fix. */
const streamProblems = (stream: typeof StreamFields.Type): ReadonlyArray<Issue> => {
  const { incremental } = stream.source
  const { primaryKey, columns } = stream.target
  const issues: Array<Issue> = [...Cron.issues(stream.name, stream.schedule)]
  const home = URL.canParse(stream.source.url) ? new URL(stream.source.url).origin : undefined
  stream.source.auth?.origins?.forEach((origin, i) => {
    if (origin !== home && !(stream.source.allowOrigins ?? []).includes(origin)) {
      issues.push({
        path: ["source", "auth", "origins", i],
        message: `${origin} is neither the source URL's origin nor listed in source.allowOrigins: no request goes there`
      })
    }
  })
  for (const [path, message] of requestProblems(stream.source)) issues.push({ path: ["source", ...path], message })
  if (incremental?.param !== undefined && incremental.params !== undefined) {
    issues.push({ path: ["source", "incremental"], message: "give param or params, not both" })
  }
  issues.push(...writeModeProblems(stream), ...childrenProblems(stream.target), ...DeletesRules.problems(stream.target))
  primaryKey.forEach((name, i) => {
    if (primaryKey.indexOf(name) !== i) {
      issues.push({ path: ["target", "primaryKey", i], message: `"${name}" is listed twice` })
    }
  })
  issues.push(...roleProblems(stream.target, incremental), ...epochProblems(stream), ...boundProblems(stream))
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

/** `record` and `extra` name new columns: not one of the others, nor each other */
const roleProblems = (
  target: typeof TargetField.Type,
  incremental: typeof IncrementalField.Type | undefined
): ReadonlyArray<Issue> => {
  const taken = configuredColumnNames(target, incremental)
  const issues: Array<Issue> = []
  if (target.columns !== undefined && target.record !== undefined && Object.hasOwn(target.columns, target.record)) {
    issues.push({ path: ["target", "record"], message: `"${target.record}" is one of the columns: name a new column` })
  }
  if (target.extra !== undefined && taken.includes(target.extra)) {
    issues.push({ path: ["target", "extra"], message: `"${target.extra}" is already a column (or the record column): name a new column` })
  }
  return issues
}

/** A stream as written: the model's settings, with a plain name, the source above and the file's target. */
const StreamFields = Schema.Struct({
  ...StreamSettings.fields,
  name: Identifier,
  source: SourceField,
  target: TargetField,
  /** a complete read (from `initial`) when the last one is older than this: hard-delete detection */
  fullEvery: Schema.optional(DurationField),
  maxAge: Schema.optional(MaxAgeField), // `ferry check --fresh`: stale when the last success is older
  /** a child stream: read once per row of the parent stream's table (`{parent.<column>}`, domain/Parent.ts) */
  parent: Schema.optional(ParentField),
  schedule: Schema.optional(Cron.Field)
})
const StreamField = StreamFields.pipe(Schema.filter(streamProblems))

const DatabaseUrl = Schema.String.pipe(
  Schema.filter((s) => s === "" || (/^postgres(?:ql)?:\/\//i.test(s) && URL.canParse(s)), {
    message: () => "expected a postgres:// or postgresql:// URL (empty or absent: the embedded database)"
  })
)

/** The whole file, defaults filled in; `Config.ts` maps the result to runtime shapes. */
export const ConfigFile = Schema.Struct({
  database: withDefault(
    Schema.Struct({
      url: Schema.optional(DatabaseUrl),
      schema: withDefault(Identifier, () => defaultSchema),
      // absent: Database.defaultTimeouts (unless the URL's `options=` sets them); 0: without bound
      lockTimeout: Schema.optional(DurationField),
      statementTimeout: Schema.optional(DurationField)
    }),
    () => ({ schema: defaultSchema })
  ),
  checkpoint: withDefault(
    Schema.Union(
      Schema.Struct({ store: Schema.Literal("postgres") }),
      // relative to the config file's directory (resolved in Config.ts), not to the working directory
      Schema.Struct({ store: Schema.Literal("file"), path: withDefault(NonEmpty, () => "./.ferry/checkpoints.json") })
    ),
    () => ({ store: "postgres" as const })
  ),
  /** streams run this many at a time (`ferry run --concurrency` overrides); a parent still before its children */
  concurrency: withDefault(integerAtLeast(1).pipe(Schema.filter((n) => n <= maxConcurrency, { message: () => `expected at most ${maxConcurrency}` })), () => 1),
  lease: LeaseField,
  streams: Schema.Array(StreamField).pipe(
    Schema.minItems(1, { message: () => "must list at least one stream" }),
    Schema.filter((streams) => {
      const duplicates = streams.flatMap((s, i) =>
        streams.findIndex((t) => t.name === s.name) < i
          ? [{ path: [i, "name"], message: `duplicate stream name "${s.name}"` }]
          : []
      )
      return duplicates.length > 0 ? duplicates : parentProblems(streams)
    })
  )
}).annotations({ title: "Ferry configuration", description: "Streams from HTTP JSON APIs into PostgreSQL" })

export type ConfigFile = typeof ConfigFile.Type
export type StreamConfig = ConfigFile["streams"][number]

/** The `columns` map as runtime columns, in file order. */
export const columnList = (columns: NonNullable<StreamConfig["target"]["columns"]>) =>
  Object.entries(columns).map(([name, column]) =>
    typeof column === "string" ? { name, type: column, from: name }
    : { name, type: column.type, from: column.from ?? name, ...(column.format === undefined ? {} : { format: column.format }) }
  )

// --- errors -------------------------------------------------------------------------------------------

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

/**
 * Editors check the file before `${VAR}` is read, so each value pattern also lets a reference through
 * (the real check runs after interpolation). Keys are never interpolated: their patterns stay.
 */
const allowReferences = (node: unknown, key?: string): unknown => {
  if (Array.isArray(node)) return node.map((item) => allowReferences(item))
  if (typeof node !== "object" || node === null) return node
  return Object.fromEntries(Object.entries(node).map(([name, value]) => [
    name,
    name === "pattern" && typeof value === "string" && key !== "propertyNames"
      ? `${value}|\\$\\{`
      : allowReferences(value, name)
  ]))
}

/** The JSON Schema of the file format, for editors (yaml-language-server, VS Code `json.schemas`). */
export const jsonSchema = (): object => allowReferences(JSONSchema.make(ConfigFile)) as object
