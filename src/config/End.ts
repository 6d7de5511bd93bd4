/**
 * The rules of `incremental.end` and of `{cursor}` / `{end}` in `source.params` that span fields: the
 * end is a value of the stream's cursor (or `now - <duration>` for a timestamp or epoch cursor); a
 * bounded read is never complete, so it cannot find hard deletes; a template needs the incremental
 * read that fills it.
 */
import * as Bound from "../domain/Bound.js"
import type { TimeFormat } from "../domain/Epoch.js"
import type { CursorType } from "../domain/Incremental.js"
import { inferCursorType } from "../domain/DefaultShape.js"
import type { ColumnType } from "../domain/Target.js"
import * as Template from "../domain/Template.js"
import { cursorFormat } from "./Epoch.js"

type Issue = { readonly path: ReadonlyArray<PropertyKey>; readonly message: string }
type ColumnEntry = ColumnType | { readonly type: ColumnType; readonly from?: string | undefined; readonly format?: TimeFormat | undefined }
interface Stream {
  readonly source: {
    readonly params: Readonly<Record<string, string>>
    readonly incremental?: {
      readonly cursorField: string
      readonly cursorType?: CursorType | undefined
      readonly format?: TimeFormat | undefined
      readonly initial?: string | undefined
      readonly end?: string | undefined
    } | undefined
  }
  readonly target: {
    readonly columns?: Readonly<Record<string, ColumnEntry>> | undefined
    readonly deletes?: object | undefined
  }
  readonly fullEvery?: unknown
}

/** the cursor's type as Config.ts will settle it: epoch is a number, else as given, else inferred */
const cursorForm = (stream: Stream): Bound.CursorForm => {
  const incremental = stream.source.incremental!
  const format = cursorFormat(stream)
  if (format === "unix" || format === "unix_ms") return { cursorType: "number", format }
  const column = Object.entries(stream.target.columns ?? {})
    .find(([name, c]) => (typeof c === "string" || c.from === undefined ? name : c.from) === incremental.cursorField)?.[1]
  const columnType = column === undefined ? undefined : typeof column === "string" ? column : column.type
  return { cursorType: incremental.cursorType ?? inferCursorType(incremental.initial, columnType) }
}

const endProblems = (stream: Stream): Array<Issue> => {
  const end = stream.source.incremental?.end
  if (end === undefined) return []
  const at = ["source", "incremental", "end"]
  const deletes = stream.target.deletes
  if (deletes !== undefined && "detect" in deletes && deletes.detect === "missing") {
    return [{ path: at, message: "a read with an end never sees the whole collection: deletes.detect: missing would never act; remove one" }]
  }
  if (stream.fullEvery !== undefined) {
    return [{ path: at, message: "a read with an end is never complete: fullEvery would re-read from initial every run; remove one" }]
  }
  // `now` does not change whether a value fits: any instant will do
  const resolved = Bound.resolve(end, cursorForm(stream), Date.UTC(2000, 0, 1))
  return resolved._tag === "Left" ? [{ path: at, message: resolved.left }] : []
}

const bounds = ["cursor", "end"]

const paramProblems = (stream: Stream): Array<Issue> =>
  stream.source.incremental !== undefined ? [] : Object.entries(stream.source.params).flatMap(([name, value]) =>
    Template.uses(value, bounds)
      ? [{ path: ["source", "params", name], message: "{cursor} and {end} are filled by source.incremental, which this stream has not" }]
      : []
  )

export const boundProblems = (stream: Stream): ReadonlyArray<Issue> => [...endProblems(stream), ...paramProblems(stream)]
