/**
 * Parent → child streams: a child stream (`parent: { stream: repos }`) is read once per row of its
 * parent's target table, its `url`, `params` and `headers` filled from that row (`{parent.<column>}`),
 * and a column may take a parent value (`repo: { type: text, from: "{parent.full_name}" }`).
 *
 * A parent row's values are text (as Postgres prints them). One placed in the URL's path is encoded
 * segment by segment (a `/` stays a `/`, so `{parent.full_name}` = `octo/hello` reads
 * `/repos/octo/hello/issues`); a value that would move the path (a `.` or `..` segment) or break a
 * header is refused, and that parent row skipped: a parent value is data from an API, and must not
 * send the child's credentials anywhere the config did not name.
 */
import { Either, Schema } from "effect"
import { Identifier } from "./Fields.js"
import type { HttpSourceSpec } from "./HttpSourceSpec.js"
import { TargetSpec } from "./Target.js"

/** `parent:` as the config file gives it */
export const ParentField = Schema.Struct({
  /** the name of another stream of the config: its target table's rows are the child's parents */
  stream: Identifier
})

/** A child stream's parent: its name, and its target table, where the parent rows are read. */
export const ParentSpec = Schema.Struct({
  stream: Schema.String,
  target: TargetSpec
})
export type ParentSpec = typeof ParentSpec.Type

/** The parent columns a child reads: those its source and its columns name. */
export const columnsRead = (
  source: ParentTemplated,
  columns: ReadonlyArray<{ readonly from: string }>
): ReadonlyArray<string> => [
  ...new Set([
    ...templatesOf(source).flatMap(({ text }) => placeholdersIn(text)),
    ...columns.flatMap((c) => parentColumnOf(c.from) ?? [])
  ])
]

const placeholder = /\{parent\.([^{}]+)\}/g

/** `{parent.full_name}` alone: a column's `from` that takes a parent value */
const wholePlaceholder = /^\{parent\.([^{}]+)\}$/

/** The parent columns a text names (`{parent.<column>}`), in order. */
export const placeholdersIn = (text: string): ReadonlyArray<string> => Array.from(text.matchAll(placeholder), (m) => m[1]!)

/** The parent column a column's `from` names, if it is `{parent.<column>}`. */
export const parentColumnOf = (from: string): string | undefined => wholePlaceholder.exec(from)?.[1]

/** the parts of a source that may hold `{parent.<column>}` */
type ParentTemplated = Pick<HttpSourceSpec, "url" | "params" | "headers" | "body" | "graphql">

/** Every string of a JSON value, with its path below `at`. */
const jsonStrings = (value: unknown, at: ReadonlyArray<string | number>): Array<{ path: ReadonlyArray<string | number>; text: string }> => {
  if (typeof value === "string") return [{ path: at, text: value }]
  if (Array.isArray(value)) return value.flatMap((item, i) => jsonStrings(item, [...at, i]))
  if (typeof value === "object" && value !== null) return Object.entries(value).flatMap(([key, item]) => jsonStrings(item, [...at, key]))
  return []
}

/**
 * Every text of a source that may hold a placeholder, with the field it is in (for error messages):
 * the URL, params, headers, and the strings of a POST body or of GraphQL variables. (A GraphQL query
 * text may not: config/Parents.ts refuses it there.)
 */
export const templatesOf = (source: {
  readonly url: string
  readonly params: Readonly<Record<string, string>>
  readonly headers: Readonly<Record<string, string>>
  readonly body?: unknown
  readonly graphql?: { readonly variables?: unknown } | undefined
}) => [
  { path: ["source", "url"], text: source.url },
  ...Object.entries(source.params).map(([name, text]) => ({ path: ["source", "params", name], text })),
  ...Object.entries(source.headers).map(([name, text]) => ({ path: ["source", "headers", name], text })),
  ...jsonStrings(source.body, ["source", "body"]),
  ...jsonStrings(source.graphql?.variables, ["source", "graphql", "variables"])
]

/**
 * Where the URL's path starts in a URL template: a placeholder before it would choose the host (or
 * the scheme, or the port), and the credentials would follow it.
 */
export const pathStart = (url: string): number => {
  const scheme = url.indexOf("://")
  const slash = url.indexOf("/", scheme < 0 ? 0 : scheme + 3)
  return slash < 0 ? url.length : slash
}

/** A parent row: its key (the parent table's primary key values, as JSON) and its columns as text. */
export interface ParentRow {
  /** JSON array of the primary key values, as text: the child's checkpoint for this parent row */
  readonly key: string
  readonly values: Readonly<Record<string, string | null>>
}

/** A URL path segment of a value: `.` and `..` would move the path, whatever their encoding. */
const pathSegment = (segment: string): Either.Either<string, string> =>
  segment === "." || segment === ".." ? Either.left("it holds a '.' or '..' path segment") : Either.right(encodeURIComponent(segment))

const valueOf = (row: ParentRow, column: string): Either.Either<string, string> => {
  const value = row.values[column]
  return value === null || value === undefined ? Either.left(`parent column ${column} is null`) : Either.right(value)
}

/** `template` with each placeholder replaced by `encode(value)`, or why a value cannot be placed. */
const fill = (
  template: string,
  row: ParentRow,
  encode: (value: string, at: number) => Either.Either<string, string>
): Either.Either<string, string> => {
  let out = ""
  let last = 0
  for (const match of template.matchAll(placeholder)) {
    const column = match[1]!
    const placed = Either.flatMap(valueOf(row, column), (value) => encode(value, match.index))
    if (Either.isLeft(placed)) return Either.left(`{parent.${column}}: ${placed.left}`)
    out += template.slice(last, match.index) + placed.right
    last = match.index + match[0].length
  }
  return Either.right(out + template.slice(last))
}

/** In the path: segment by segment (a `/` stays a separator); in the query or fragment: encoded whole. */
const fillUrl = (url: string, row: ParentRow) => {
  const query = url.search(/[?#]/)
  return fill(url, row, (value, at) =>
    query >= 0 && at > query
      ? Either.right(encodeURIComponent(value))
      : Either.map(Either.all(value.split("/").map(pathSegment)), (segments) => segments.join("/")))
}

/** A header value may not hold a line break or a NUL: it would end the header (or the request). */
const headerValue = (value: string) =>
  /[\r\n\0]/.test(value) ? Either.left("it holds a line break or a NUL, which a header value cannot") : Either.right(value)

const fillRecord = (
  entries: Readonly<Record<string, string>>,
  row: ParentRow,
  encode: (value: string) => Either.Either<string, string>
) =>
  Either.map(
    Either.all(Object.entries(entries).map(([name, text]) => Either.map(fill(text, row, encode), (filled) => [name, filled] as const))),
    (pairs) => Object.fromEntries(pairs)
  )

/**
 * A JSON template (a POST body, GraphQL variables) with its strings filled from the row: a value is
 * text (a parent column's text form) wherever it stands; JSON encoding keeps it a string.
 */
const fillJson = (template: unknown, row: ParentRow): Either.Either<unknown, string> => {
  if (typeof template === "string") return fill(template, row, Either.right)
  if (Array.isArray(template)) return Either.all(template.map((item) => fillJson(item, row)))
  if (typeof template === "object" && template !== null) {
    return Either.map(
      Either.all(Object.entries(template).map(([key, item]) => Either.map(fillJson(item, row), (filled) => [key, filled] as const))),
      (pairs) => Object.fromEntries(pairs)
    )
  }
  return Either.right(template)
}

/** The child's source for one parent row, or why that row cannot be read (it is skipped, and said so). */
const sourceFor = <S extends ParentTemplated>(source: S, row: ParentRow): Either.Either<S, string> =>
  Either.map(
    Either.all({
      url: fillUrl(source.url, row),
      params: fillRecord(source.params, row, Either.right),
      headers: fillRecord(source.headers, row, headerValue),
      body: fillJson(source.body, row),
      variables: fillJson(source.graphql?.variables, row)
    }),
    ({ body, variables, ...filled }) => ({
      ...source,
      ...filled,
      ...(source.body === undefined ? {} : { body }),
      ...(source.graphql === undefined || source.graphql.variables === undefined ? {} : { graphql: { ...source.graphql, variables } })
    })
  )

/**
 * The parent values of the record being decoded, set on it under a symbol by the child's run: no
 * JSON sees it (the `record` column, `extra`, the fields seen), and no record from an API can set it.
 */
const parentValues: unique symbol = Symbol.for("ferry/parentValues")

/** Attaches `row`'s values to a raw record for the columns that read `{parent.<column>}`. */
const withParentValues = (record: unknown, row: ParentRow): unknown => {
  if (typeof record === "object" && record !== null) {
    Object.defineProperty(record, parentValues, { value: row.values, enumerable: false, configurable: true })
  }
  return record
}

/** The reader of a column that takes a parent value: the value the run attached, or null. */
export const parentReader = (column: string) => (record: unknown): unknown => {
  const values = (record as { [parentValues]?: Readonly<Record<string, string | null>> })[parentValues]
  return values === undefined ? null : values[column] ?? null
}

/**
 * A child stream as it reads one parent row: its source filled from the row, its records decoded with
 * the row's values at hand; or why the row cannot be read.
 */
export const streamFor = <S extends { readonly source: ParentTemplated; readonly decode: (raw: unknown) => R }, R>(
  stream: S,
  row: ParentRow
): Either.Either<S, string> =>
  Either.map(sourceFor(stream.source, row), (source) => ({
    ...stream,
    source,
    decode: (raw: unknown) => stream.decode(withParentValues(raw, row))
  }))
