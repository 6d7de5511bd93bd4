/**
 * `COPY table (columns) FROM STDIN` on the current transaction's connection: the bulk path into a
 * table that was empty when the run began (PgSink decides when). It is 3 × cheaper for Postgres than
 * the upsert (docs/PERFORMANCE.md) and sends no column names, only values.
 *
 * Two parts:
 * - `encode`: rows -> COPY's text format, or `undefined` when a value has no exact text form (a lone
 *   surrogate, a non-JSON value): the caller then takes the upsert path, which quarantines such rows.
 * - `copy`: node-postgres runs any object with a `submit` method as a query (its "Submittable"
 *   interface); this one answers the server's CopyInResponse with the payload and reports the row
 *   count from `COPY n`. No extra dependency (pg-copy-streams does the same through a Writable).
 */
import { SqlClient } from "@effect/sql"
import { SqlError } from "@effect/sql/SqlError"
import { Effect, Option } from "effect"
import * as Json from "../../domain/Json.js"
import * as Specialized from "../../domain/Specialized.js"
import type { Row, TargetSpec } from "../../domain/StreamSpec.js"

/** COPY's text format escapes exactly these four; `\N` is NULL */
const special = /[\\\t\n\r]/
const specialAll = /[\\\t\n\r]/g
const escapes: Readonly<Record<string, string>> = { "\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r" }
const escape = (text: string): string => special.test(text) ? text.replace(specialAll, (c) => escapes[c]!) : text

/** a string Postgres would receive unchanged: UTF-8 cannot carry a lone surrogate (Buffer writes U+FFFD) */
const isWellFormed = (text: string): boolean => (text as { isWellFormed?: () => boolean }).isWellFormed?.() ?? true

/** A value's COPY field, or `undefined` when it has none that Postgres would read back as the same value. */
type Field = (value: unknown) => string | undefined

/** text-like columns: strings as they are; numbers and booleans as JSON writes them (as the upsert's JSON would) */
const scalarField: Field = (value) => {
  if (typeof value === "string") return isWellFormed(value) ? escape(value) : undefined
  if (typeof value === "number") return Number.isFinite(value) ? String(value) : undefined
  if (typeof value === "boolean") return value ? "t" : "f"
  return undefined
}

/** jsonb: the value's JSON, whatever its type (a long number with its exact digits) */
const jsonField: Field = (value) => {
  try {
    const text = Json.stringify(value)
    return text === undefined ? undefined : escape(text)
  } catch {
    return undefined
  }
}

/**
 * One row's fields and separators, written into `parts` from `at`: the index after them, or -1 when a
 * value has no COPY text.
 */
type Line = (values: Readonly<Record<string, unknown>>, parts: Array<string>, at: number) => number

/** The generic line: a loop over the columns (`writtenLine` writes the same steps out per column). */
const genericLine = (names: ReadonlyArray<string>, fields: ReadonlyArray<Field>): Line => (values, parts, at) => {
  const width = names.length
  for (let i = 0; i < width; i++) {
    const value = values[names[i]!]
    let field: string | undefined
    if (value === null || value === undefined) field = "\\N"
    else {
      field = fields[i]!(value)
      if (field === undefined) return -1
    }
    parts[at++] = field
    parts[at++] = i === width - 1 ? "\n" : "\t"
  }
  return at
}

/** `genericLine` written out for these columns, each value read at its own site (Specialized.ts) */
const writtenLine = (names: ReadonlyArray<string>, fields: ReadonlyArray<Field>): Line | undefined => {
  if (names.length > Specialized.maxColumns) return undefined
  const { literal } = Specialized
  const bindings: Record<string, unknown> = {}
  const steps = names.map((name, i) => {
    bindings[`f${i}`] = fields[i]
    return [
      `v = values[${literal(name)}]`,
      `if (v === null || v === undefined) parts[at++] = ${literal("\\N")}`,
      `else if ((f = f${i}(v)) === undefined) return -1`,
      "else parts[at++] = f",
      `parts[at++] = ${literal(i === names.length - 1 ? "\n" : "\t")}`
    ].join("\n")
  })
  return Specialized.compile<Line>(bindings, `return function line(values, parts, at) {\nlet v, f\n${steps.join("\n")}\nreturn at\n}`)
}

const fieldsOf = (target: TargetSpec, names: ReadonlyArray<string>): ReadonlyArray<Field> =>
  names.map((name) => target.columns.find((c) => c.name === name)?.type === "jsonb" ? jsonField : scalarField)

/** a target's COPY columns and the line that writes a row's values in their order, worked out once per target */
interface Layout {
  /** the columns it was made for: a target whose columns changed in place gets a new one, as COPY's statement does */
  readonly columns: TargetSpec["columns"]
  readonly names: ReadonlyArray<string>
  readonly line: Line
}
const layouts = new WeakMap<TargetSpec, Layout>()
const layoutOf = (target: TargetSpec): Layout => {
  let layout = layouts.get(target)
  if (layout === undefined || layout.columns !== target.columns) {
    const names = columnNames(target)
    const fields = fieldsOf(target, names)
    layout = { columns: target.columns, names, line: writtenLine(names, fields) ?? genericLine(names, fields) }
    layouts.set(target, layout)
  }
  return layout
}

/** A target's line, written out or generic (the tests check which). */
export const lineOf = (target: TargetSpec): Line => layoutOf(target).line

/** The COPY text of `rows` with the generic line: for the tests that hold the written-out one to it. */
export const encodeGeneric = (target: TargetSpec, rows: ReadonlyArray<Row>): string | undefined => {
  const names = columnNames(target)
  return encodeWith(names.length, genericLine(names, fieldsOf(target, names)), rows)
}

/** rows per joined piece: one piece for an ordinary page, a bounded array of parts for a huge one */
const rowsPerPiece = 2048

/**
 * One COPY text line per row, columns in `columnNames` order, the same values the upsert's JSON would
 * carry: strings as they are, numbers as JSON writes them, booleans as t/f, jsonb as its JSON; `\N` for null.
 * Fields and separators go into an array joined once per `rowsPerPiece` rows: building each line by
 * `+` made a string per piece (250 of the 1,300 MB a 500,000-record first load allocated; now 165).
 */
export const encode = (target: TargetSpec, rows: ReadonlyArray<Row>): string | undefined => {
  const { line, names } = layoutOf(target)
  return encodeWith(names.length, line, rows)
}

const encodeWith = (width: number, line: Line, rows: ReadonlyArray<Row>): string | undefined => {
  const pieces: Array<string> = []
  const parts = new Array<string>(Math.min(rows.length, rowsPerPiece) * width * 2)
  let at = 0
  for (let r = 0; r < rows.length; r++) {
    at = line(rows[r]!.values, parts, at)
    if (at < 0) return undefined
    if (at === parts.length) {
      pieces.push(parts.join(""))
      at = 0
    }
  }
  if (at > 0) pieces.push(parts.slice(0, at).join(""))
  return pieces.length === 1 ? pieces[0]! : pieces.join("")
}

/** each column once, in order (a repeated name keeps one place, as the JSON object did): COPY's column list */
export const columnNames = (target: TargetSpec): ReadonlyArray<string> => [...new Set(target.columns.map((c) => c.name))]

/** the part of node-postgres' Connection a Submittable uses */
interface PgConnection {
  query(text: string): void
  sendCopyFromChunk(chunk: Buffer): void
  endCopyFrom(): void
}

/** 1 MiB CopyData messages: any size works, this keeps each message's copy small */
const chunkBytes = 1024 * 1024

/**
 * A query object node-postgres drives: `submit` sends the statement; the server answers
 * CopyInResponse, we send the data and CopyDone; then CommandComplete (`COPY n`) and ReadyForQuery.
 * pg sets `callback` from `client.query(submittable, values, callback)`. On an ErrorResponse pg calls
 * `handleError` and never `handleReadyForQuery`, so the callback is called there.
 */
class CopyFromStdin {
  callback: ((error: unknown, result?: { readonly rowCount: number }) => void) | undefined
  private rowCount = 0
  private done = false

  constructor(readonly text: string, private readonly payload: ReadonlyArray<Buffer>) {}

  submit(connection: PgConnection): void {
    connection.query(this.text)
  }

  handleCopyInResponse(connection: PgConnection): void {
    for (const buffer of this.payload) {
      for (let at = 0; at < buffer.length; at += chunkBytes) {
        connection.sendCopyFromChunk(buffer.subarray(at, at + chunkBytes))
      }
    }
    connection.endCopyFrom()
  }

  handleCommandComplete(message: { readonly text?: string }): void {
    const match = /^COPY (\d+)$/.exec(message.text ?? "")
    this.rowCount = match ? Number(match[1]) : -1
  }

  handleReadyForQuery(): void {
    this.finish(undefined)
  }

  handleError(error: unknown): void {
    this.finish(error)
  }

  // messages a COPY FROM never gets; pg may call them on a protocol surprise
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handlePortalSuspended(): void {}
  handleEmptyQuery(): void {}
  handleCopyData(): void {}

  private finish(error: unknown): void {
    if (this.done) return
    this.done = true
    if (error !== undefined) this.callback?.(error)
    else this.callback?.(null, { rowCount: this.rowCount })
  }
}

/**
 * COPYs `payload` (the UTF-8 of texts from `encode`, in order) with `statement` (`COPY t (columnNames) FROM STDIN`) on the current transaction's
 * connection: the rows are part of that transaction. The count Postgres reports, or its SqlError.
 */
export const copy = (statement: string, payload: ReadonlyArray<Buffer>): Effect.Effect<number, SqlError> =>
  Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (current) =>
    Option.match(current, {
      // PgSink always calls it inside sql.withTransaction; outside one, no connection would hold the rows
      onNone: () => Effect.fail(new SqlError({ cause: new Error("COPY outside a transaction") })),
      onSome: ([connection]) =>
        // executeRaw hands its first argument to pg's client.query, which runs a Submittable as is
        connection.executeRaw(new CopyFromStdin(statement, payload) as unknown as string, []).pipe(
          Effect.map((result) => (result as { readonly rowCount: number }).rowCount)
        )
    }))
