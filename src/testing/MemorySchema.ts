/**
 * The in-memory database's table shapes, as PgSink's prepare treats a Postgres table: created from the
 * stream's columns; a column the stream lists and the table lacks is added and filled from the
 * record column (as Evolve.ts fills it, with the stream's own decoder); a column whose type differs or
 * a different primary key is a TargetMismatch and changes nothing.
 */
import { Either } from "effect"
import { TargetMismatch } from "../domain/Errors.js"
import { columnValue } from "../domain/RowDecoder.js"
import type { Column, TargetSpec } from "../domain/StreamSpec.js"
import type { SchemaChange } from "../Sink.js"

export interface TableShape {
  readonly columns: ReadonlyArray<Pick<Column, "name" | "type">>
  readonly primaryKey: ReadonlyArray<string>
}

interface StoredValues {
  readonly cursor: string | undefined
  readonly values: Readonly<Record<string, unknown>>
}

const displayName = (target: TargetSpec) => `${target.schema}.${target.table}`

/**
 * The table's shape after prepare, and the columns added (their rows filled in `rows`, in place); a
 * TargetMismatch when it does not fit but by columns it lacks.
 */
export const evolve = (
  target: TargetSpec,
  shape: TableShape,
  rows: Map<string, StoredValues>
): Either.Either<{ readonly shape: TableShape; readonly changes: ReadonlyArray<SchemaChange> }, TargetMismatch> => {
  const problems: Array<string> = []
  const missing: Array<Column> = []
  for (const c of target.columns) {
    const found = shape.columns.find((e) => e.name === c.name)
    if (found === undefined) {
      if (!missing.some((m) => m.name === c.name)) missing.push(c)
    } else if (found.type !== c.type) problems.push(`column "${c.name}" is ${found.type}, the stream needs ${c.type}`)
  }
  if ([...shape.primaryKey].sort().join(",") !== [...target.primaryKey].sort().join(",")) {
    problems.push(`the primary key is (${shape.primaryKey.join(", ")}), the stream needs (${target.primaryKey.join(", ")})`)
  }
  if (problems.length > 0) {
    return Either.left(new TargetMismatch({ table: displayName(target), problems, sql: ["-- (in-memory database)"] }))
  }
  const record = target.record
  const canFill = record !== undefined && !missing.some((c) => c.name === record)
  const changes = missing.map((c): SchemaChange => {
    if (!canFill) return { table: displayName(target), column: c.name, type: c.type, filled: rows.size === 0 ? 0 : undefined, unfit: 0 }
    const read = columnValue(target, c.name)
    let filled = 0
    let unfit = 0
    for (const [key, row] of rows) {
      const value = read(row.values[record])
      if (Either.isLeft(value)) unfit++
      else if (value.right !== null) {
        rows.set(key, { ...row, values: { ...row.values, [c.name]: value.right } })
        filled++
      }
    }
    return { table: displayName(target), column: c.name, type: c.type, filled, unfit }
  })
  return Either.right({ shape: { ...shape, columns: [...shape.columns, ...missing] }, changes })
}
