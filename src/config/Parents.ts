/**
 * The config file's rules for parent → child streams (`domain/Parent.ts`), across the streams of
 * the file: the parent exists and is another stream, no stream is its own ancestor, every
 * `{parent.<column>}` names a column of the parent's table and sits where it cannot choose the host,
 * and the child is a stream that can be read in parts. Each issue names the field to fix.
 */
import { parentColumnOf, pathStart, placeholdersIn, templatesOf } from "../domain/Parent.js"
import { configuredColumnNames } from "../domain/DefaultShape.js"

type Issue = { readonly path: ReadonlyArray<PropertyKey>; readonly message: string }

interface StreamFields {
  readonly name: string
  readonly parent?: { readonly stream: string } | undefined
  readonly fullEvery?: unknown
  readonly source: {
    readonly url: string
    readonly params: Readonly<Record<string, string>>
    readonly headers: Readonly<Record<string, string>>
    readonly body?: unknown
    readonly graphql?: { readonly query: string; readonly variables?: unknown } | undefined
    readonly incremental?: { readonly cursorField: string } | undefined
  }
  readonly target: {
    readonly table: string
    readonly primaryKey: ReadonlyArray<string>
    readonly columns?: Readonly<Record<string, string | { readonly from?: string | undefined }>> | undefined
    readonly record?: string | undefined
    readonly extra?: string | undefined
    readonly write?: string | undefined
    readonly deletes?: { readonly detect?: string | undefined } | object | undefined
  }
}

/** The columns of a stream's target table, as the child's `{parent.<column>}` may name them. */
const tableColumns = (stream: StreamFields): ReadonlyArray<string> => {
  const names = configuredColumnNames(stream.target, stream.source.incremental)
  return stream.target.extra === undefined ? names : [...names, stream.target.extra]
}

/** A stream whose ancestors include itself: a run could never order them. */
const inCycle = (streams: ReadonlyArray<StreamFields>, start: StreamFields): boolean => {
  const byName = new Map(streams.map((s) => [s.name, s]))
  const seen = new Set<string>()
  let current: StreamFields | undefined = start
  while (current?.parent !== undefined) {
    if (seen.has(current.name)) return true
    seen.add(current.name)
    current = byName.get(current.parent.stream)
    if (current === start) return true
  }
  return false
}

/** What a child stream cannot be: it is read in parts, never as one whole collection. */
const partProblems = (stream: StreamFields): Array<Issue> => {
  const issues: Array<Issue> = []
  if (stream.target.write === "replace") {
    issues.push({ path: ["target", "write"], message: "a child stream is read one parent row at a time: write: replace needs one read of the whole source" })
  }
  const deletes = stream.target.deletes as { readonly detect?: string } | undefined
  if (deletes?.detect !== undefined) {
    issues.push({ path: ["target", "deletes", "detect"], message: "a child stream is read one parent row at a time: deletes.detect: missing needs one read of the whole source" })
  }
  if (stream.fullEvery !== undefined) {
    issues.push({ path: ["fullEvery"], message: "a child stream is read one parent row at a time: it has no complete read to schedule" })
  }
  return issues
}

const placeholderProblems = (stream: StreamFields, parent: StreamFields): Array<Issue> => {
  const issues: Array<Issue> = []
  const known = tableColumns(parent)
  const unknown = (column: string) =>
    `{parent.${column}}: "${column}" is not a column of ${parent.name}'s table (${known.join(", ")})`
  let used = false
  for (const { path, text } of templatesOf(stream.source)) {
    for (const column of placeholdersIn(text)) {
      used = true
      if (!known.includes(column)) issues.push({ path, message: unknown(column) })
    }
  }
  if (placeholdersIn(stream.source.graphql?.query ?? "").length > 0) {
    used = true
    issues.push({ path: ["source", "graphql", "query"], message: "{parent.…} would write a parent value into the query's text: pass it in graphql.variables (e.g. owner: \"{parent.owner}\") and declare the variable in the query" })
  }
  const first = stream.source.url.indexOf("{parent.")
  if (first >= 0 && first < pathStart(stream.source.url)) {
    issues.push({ path: ["source", "url"], message: "{parent.…} may stand in the URL's path or query, not in its scheme, host or port: the credentials would follow a parent value" })
  }
  if (!used) {
    issues.push({ path: ["source", "url"], message: `a child stream reads one URL per parent row: use {parent.<column>} in source.url, params, headers, body or graphql.variables (columns of ${parent.name}: ${known.join(", ")})` })
  }
  for (const [name, column] of Object.entries(stream.target.columns ?? {})) {
    const from = typeof column === "string" ? undefined : parentColumnOf(column.from ?? "")
    if (from !== undefined && !known.includes(from)) issues.push({ path: ["target", "columns", name, "from"], message: unknown(from) })
  }
  return issues
}

/** The rules for stream `i` of `streams`, paths from the `streams` list. */
const streamIssues = (streams: ReadonlyArray<StreamFields>, stream: StreamFields, i: number): Array<Issue> => {
  const at = (issue: Issue): Issue => ({ path: [i, ...issue.path], message: issue.message })
  const columnsTakingParent = Object.entries(stream.target.columns ?? {}).filter(([, c]) =>
    typeof c !== "string" && parentColumnOf(c.from ?? "") !== undefined
  )
  if (stream.parent === undefined) {
    const placed = templatesOf(stream.source).find(({ text }) => placeholdersIn(text).length > 0)
    return [
      ...(placed === undefined ? [] : [{ path: placed.path, message: "{parent.…} needs a parent: add parent: { stream: <name> }" }]),
      ...columnsTakingParent.map(([name]) => ({ path: ["target", "columns", name, "from"], message: "{parent.…} needs a parent: add parent: { stream: <name> }" }))
    ].map(at)
  }
  const name = stream.parent.stream
  const parent = streams.find((s) => s.name === name)
  if (name === stream.name) return [at({ path: ["parent", "stream"], message: "a stream cannot be its own parent" })]
  if (parent === undefined) {
    return [at({ path: ["parent", "stream"], message: `no stream "${name}" in the config (streams: ${streams.map((s) => s.name).join(", ")})` })]
  }
  if (inCycle(streams, stream)) return [at({ path: ["parent", "stream"], message: `"${stream.name}" is its own ancestor through "${name}"` })]
  const issues = [...partProblems(stream), ...placeholderProblems(stream, parent)]
  if (parent.target.table === stream.target.table) {
    issues.push({ path: ["target", "table"], message: `the parent stream ${name} writes table ${parent.target.table} too: a child needs a table of its own` })
  }
  return issues.map(at)
}

export const parentProblems = (streams: ReadonlyArray<StreamFields>): ReadonlyArray<Issue> =>
  streams.flatMap((stream, i) => streamIssues(streams, stream, i))
