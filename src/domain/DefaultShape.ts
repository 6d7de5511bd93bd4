/**
 * The columns a target has when its config gives none (its primary key, its cursor and the whole
 * record as jsonb), the names a config's columns take, and the type a cursor compares as.
 */
import { isoTimestamp, numericText } from "./ColumnValue.js"
import type { CursorType, Incremental } from "./Incremental.js"
import type { Column, ColumnType } from "./Target.js"

/** timestamp-like initial values compare as instants, numbers as numbers; a typed cursor column decides first. */
export const inferCursorType = (initial: string | undefined, cursorColumnType: ColumnType | undefined): CursorType => {
  switch (cursorColumnType) {
    case "timestamptz":
    case "timestamp":
    case "date":
      return "timestamp"
    case "integer":
    case "bigint":
    case "numeric":
    case "double precision":
    case "real":
      return "number"
    case "text":
    case "uuid":
    case "jsonb":
      return "string"
    case undefined:
      break
  }
  if (initial === undefined) return "timestamp"
  if (numericText.test(initial)) return "number"
  return isoTimestamp.test(initial) ? "timestamp" : "string"
}

const cursorColumnType: Record<CursorType, ColumnType> = { timestamp: "timestamptz", number: "numeric", string: "text" }

/** The column whose value comes from the cursor field, if any. */
export const cursorColumnOf = (columns: ReadonlyArray<Column>, cursorField: string): string | undefined =>
  columns.find((c) => c.from === cursorField)?.name

/** the record column of the default shape (`target.record` renames it) */
export const defaultRecordColumn = "record"

/** what the default shape needs of `incremental` */
type CursorOf = Pick<Incremental, "cursorField" | "cursorType"> & Partial<Pick<Incremental, "format">>

/**
 * The shape used when a stream gives no `columns`: its primary key (as text), its cursor, and the
 * whole record as `record jsonb` (or the name `record` gives).
 */
export const defaultColumns = (
  primaryKey: ReadonlyArray<string>,
  incremental: CursorOf | undefined,
  record: string = defaultRecordColumn
): { readonly columns: ReadonlyArray<Column>; readonly cursorColumn: string | undefined } => {
  const columns: Array<Column> = primaryKey.map((name) => ({ name, type: "text", from: name }))
  let cursorColumn: string | undefined
  if (incremental) {
    const existing = cursorColumnOf(columns, incremental.cursorField)
    cursorColumn = existing ?? incremental.cursorField.split(".").join("_")
    const format = incremental.format
    if (existing === undefined && format !== undefined && format !== "iso") {
      columns.push({ name: cursorColumn, type: "timestamptz", from: incremental.cursorField, format })
    } else if (existing === undefined) {
      columns.push({ name: cursorColumn, type: cursorColumnType[incremental.cursorType], from: incremental.cursorField })
    }
  }
  columns.push({ name: record, type: "jsonb", from: "" })
  return { columns, cursorColumn }
}

/**
 * The names of a target's columns as the config file writes it (before types are known): its `columns`
 * and its record column, or the default shape. `extra` is not among them.
 */
export const configuredColumnNames = (
  target: {
    readonly primaryKey: ReadonlyArray<string>
    readonly columns?: Readonly<Record<string, unknown>> | undefined
    readonly record?: string | undefined
  },
  incremental: Pick<Incremental, "cursorField"> & Partial<Pick<Incremental, "format">> | undefined
): ReadonlyArray<string> =>
  target.columns === undefined
    ? defaultColumns(target.primaryKey, incremental && { ...incremental, cursorType: "string" }, target.record).columns
      .map((c) => c.name)
    : [...Object.keys(target.columns), ...(target.record === undefined ? [] : [target.record])]
