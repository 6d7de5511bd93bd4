/**
 * The rules of `format` (epoch times, `domain/Epoch.ts`) that span fields: only on timestamp and
 * date columns; an epoch cursor's column reads the same form; its `initial` is an epoch value or ISO.
 */
import { epochOfInitial, type TimeFormat } from "../domain/Epoch.js"
import type { ColumnType } from "../domain/Target.js"

type Issue = { readonly path: ReadonlyArray<PropertyKey>; readonly message: string }
type ColumnEntry = ColumnType | { readonly type: ColumnType; readonly from?: string | undefined; readonly format?: TimeFormat | undefined }
type Columns = Readonly<Record<string, ColumnEntry>>
interface Stream {
  readonly source: {
    readonly incremental?: {
      readonly cursorField: string
      readonly cursorType?: string | undefined
      readonly format?: TimeFormat | undefined
      readonly initial?: string | undefined
    } | undefined
  }
  readonly target: {
    readonly columns?: Columns | undefined
    readonly children?: ReadonlyArray<{ readonly columns: Columns }> | undefined
  }
}

const temporal = (type: ColumnType) => type === "timestamptz" || type === "timestamp" || type === "date"
const epoch = (format: TimeFormat | undefined) => format === "unix" || format === "unix_ms"

const columnProblems = (columns: Columns | undefined, path: ReadonlyArray<PropertyKey>): Array<Issue> =>
  Object.entries(columns ?? {}).flatMap(([name, column]) =>
    typeof column !== "string" && column.format !== undefined && !temporal(column.type)
      ? [{ path: [...path, name, "format"], message: `format is for timestamptz, timestamp and date columns, not ${column.type}` }]
      : []
  )

/** The cursor's epoch form: its own `format`, else its column's. */
export const cursorFormat = (stream: Stream): TimeFormat | undefined => {
  const incremental = stream.source.incremental
  if (incremental === undefined) return undefined
  if (incremental.format !== undefined) return incremental.format
  const column = Object.entries(stream.target.columns ?? {})
    .find(([name, c]) => (typeof c === "string" || c.from === undefined ? name : c.from) === incremental.cursorField)?.[1]
  return column === undefined || typeof column === "string" ? undefined : column.format
}

const cursorProblems = (stream: Stream): Array<Issue> => {
  const incremental = stream.source.incremental
  if (incremental === undefined) return []
  const format = cursorFormat(stream) ?? "iso"
  const at = ["source", "incremental"]
  const column = Object.entries(stream.target.columns ?? {})
    .find(([name, c]) => (typeof c === "string" || c.from === undefined ? name : c.from) === incremental.cursorField)
  const entry = column?.[1]
  const type = entry === undefined ? undefined : typeof entry === "string" ? entry : entry.type
  const columnFormat = entry === undefined || typeof entry === "string" ? undefined : entry.format
  if (type !== undefined && temporal(type) && (columnFormat ?? "iso") !== format) {
    return [{
      path: [...at, "format"],
      message: `the cursor is ${format} but its column ${column![0]} reads ${columnFormat ?? "iso"}: give both the same format`
    }]
  }
  if (!epoch(format)) return []
  if (incremental.cursorType !== undefined && incremental.cursorType !== "number") {
    return [{ path: [...at, "cursorType"], message: `a ${format} cursor compares as a number: leave cursorType out` }]
  }
  if (incremental.initial !== undefined && epochOfInitial(incremental.initial, format as "unix" | "unix_ms") === undefined) {
    return [{ path: [...at, "initial"], message: `expected ${format} (digits) or an ISO 8601 timestamp` }]
  }
  return []
}

export const epochProblems = (stream: Stream): ReadonlyArray<Issue> => [
  ...columnProblems(stream.target.columns, ["target", "columns"]),
  ...(stream.target.children ?? []).flatMap((child, i) => columnProblems(child.columns, ["target", "children", i, "columns"])),
  ...cursorProblems(stream)
]
