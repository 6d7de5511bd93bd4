/**
 * How a raw JSON record becomes a row: each column takes the value at its path and is checked against
 * its Postgres type here, so that one bad record is quarantined with a reason instead of failing the
 * whole batch in Postgres (the sink still bisects a batch Postgres refuses, as a last resort).
 */
import { Either } from "effect"
import { valueAt } from "./JsonPath.js"
import type { Column, ColumnType, CursorType, Incremental, Row, TargetSpec } from "./StreamSpec.js"

/** Postgres cannot store U+0000 in text or jsonb. */
const NUL = "\u0000"
/** Deeper documents are refused: Postgres' JSON parser has a stack limit, and no real API nests this deep. */
export const maxDepth = 128

const isObject = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

const isoTimestamp = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?$/i
const isoDate = /^\d{4}-\d{2}-\d{2}$/
const uuid = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i
const integerText = /^-?\d+$/
const numericText = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/
const INT4 = 2 ** 31
const INT8 = 2n ** 63n

/** Checks a JSON value for what jsonb refuses: NUL characters and runaway depth. */
const jsonProblem = (value: unknown, depth = 0): string | undefined => {
  if (depth > maxDepth) return `nested deeper than ${maxDepth} levels`
  if (typeof value === "string") return value.includes(NUL) ? "contains a NUL character (\\u0000)" : undefined
  if (typeof value === "number") return Number.isFinite(value) ? undefined : `is ${value}`
  if (Array.isArray(value)) {
    for (const item of value) {
      const problem = jsonProblem(item, depth + 1)
      if (problem) return problem
    }
  } else if (isObject(value)) {
    for (const [key, item] of Object.entries(value)) {
      if (key.includes(NUL)) return "has a key with a NUL character (\\u0000)"
      const problem = jsonProblem(item, depth + 1)
      if (problem) return problem
    }
  }
  return undefined
}

const describe = (value: unknown): string =>
  value === null ? "null" : Array.isArray(value) ? "an array" : typeof value === "string" ? "a string" : `a ${typeof value}`

/** The value converted for a column of `type`, or why it does not fit. `null` stays null. */
export const convert = (type: ColumnType, value: unknown): Either.Either<unknown, string> => {
  if (value === null || value === undefined) return Either.right(null)
  const wrong = (expected: string) => Either.left(`expected ${expected}, got ${describe(value)}`)
  switch (type) {
    case "text":
      if (typeof value === "string") {
        return value.includes(NUL) ? Either.left("contains a NUL character (\\u0000), which Postgres text cannot store") : Either.right(value)
      }
      return typeof value === "number" || typeof value === "boolean" ? Either.right(String(value)) : wrong("text")
    case "integer": {
      const n = typeof value === "string" && integerText.test(value) ? Number(value) : value
      if (typeof n !== "number" || !Number.isInteger(n)) return wrong("an integer")
      return n >= -INT4 && n < INT4 ? Either.right(n) : Either.left(`${n} is out of range for integer`)
    }
    case "bigint": {
      const text = typeof value === "number" && Number.isSafeInteger(value) ? String(value) : value
      if (typeof text !== "string" || !integerText.test(text)) return wrong("an integer")
      const n = BigInt(text)
      return n >= -INT8 && n < INT8 ? Either.right(text) : Either.left(`${text} is out of range for bigint`)
    }
    case "numeric":
    case "double precision":
    case "real":
      if (typeof value === "number") return Number.isFinite(value) ? Either.right(value) : wrong("a finite number")
      return typeof value === "string" && numericText.test(value) ? Either.right(value) : wrong("a number")
    case "boolean":
      return typeof value === "boolean" ? Either.right(value) : wrong("true or false")
    case "timestamptz":
    case "timestamp":
      return typeof value === "string" && isoTimestamp.test(value) && !Number.isNaN(Date.parse(value))
        ? Either.right(value)
        : wrong("an ISO 8601 timestamp")
    case "date":
      return typeof value === "string" && isoDate.test(value) && !Number.isNaN(Date.parse(value))
        ? Either.right(value)
        : wrong("a date (YYYY-MM-DD)")
    case "uuid":
      return typeof value === "string" && uuid.test(value) ? Either.right(value) : wrong("a UUID")
    case "jsonb": {
      const problem = jsonProblem(value)
      return problem === undefined ? Either.right(value) : Either.left(problem)
    }
  }
}

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

/**
 * The shape used when a stream gives no `columns`: its primary key (as text), its cursor, and the
 * whole record as `record jsonb`.
 */
export const defaultColumns = (
  primaryKey: ReadonlyArray<string>,
  incremental: Incremental | undefined
): { readonly columns: ReadonlyArray<Column>; readonly cursorColumn: string | undefined } => {
  const columns: Array<Column> = primaryKey.map((name) => ({ name, type: "text", from: name }))
  let cursorColumn: string | undefined
  if (incremental) {
    const existing = cursorColumnOf(columns, incremental.cursorField)
    cursorColumn = existing ?? incremental.cursorField.split(".").join("_")
    if (existing === undefined) {
      columns.push({ name: cursorColumn, type: cursorColumnType[incremental.cursorType], from: incremental.cursorField })
    }
  }
  columns.push({ name: "record", type: "jsonb", from: "" })
  return { columns, cursorColumn }
}

/** Builds a row from any object whose column values sit at each column's `from` path. */
export const rowFrom = (target: TargetSpec, record: unknown): Either.Either<Row, string> => {
  if (!isObject(record)) return Either.left(`record is ${describe(record)}, not an object`)
  const values: Record<string, unknown> = {}
  for (const column of target.columns) {
    const converted = convert(column.type, valueAt(record, column.from))
    if (Either.isLeft(converted)) return Either.left(`${column.from || "record"}: ${converted.left}`)
    values[column.name] = converted.right
  }
  const keyValues: Array<unknown> = []
  for (const name of target.primaryKey) {
    if (values[name] === null) return Either.left(`missing primary key field ${columnSource(target, name)}`)
    keyValues.push(values[name])
  }
  let cursor: string | undefined
  if (target.cursorColumn !== undefined) {
    const value = values[target.cursorColumn]
    if (value === null) return Either.left(`missing cursor field ${columnSource(target, target.cursorColumn)}`)
    cursor = String(value)
  }
  return Either.right({ key: JSON.stringify(keyValues), cursor, values })
}

const columnSource = (target: TargetSpec, name: string): string =>
  target.columns.find((c) => c.name === name)?.from ?? name

/** The decoder of a stream configured with a `columns` map (or the default shape). */
export const fromColumns = (target: TargetSpec, _incremental: Incremental | undefined) => (raw: unknown) =>
  rowFrom(target, raw)
