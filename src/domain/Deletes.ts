/**
 * Deletes (issue 13 item 4): what a target does with records the source deleted.
 *
 * - flagged by the source, `{ path: deleted, equals: true, action }`: a record whose field at `path`
 *   equals `equals` (as JSON values) deletes its row (`delete`) or sets the row's `_deleted_at` to the
 *   run's time (`mark`); a record that comes back unflagged clears it. An older flag than the stored
 *   row's cursor changes nothing (never older over newer).
 * - missing from a complete read, `{ detect: missing, action, allowEmpty }`: after a run that read the
 *   whole collection, the rows whose key the run did not see are deleted or marked (sync/Deletes.ts).
 *
 * A deleted row takes its child rows (`target.children`) with it; `mark` keeps the row and its children.
 * `mark` adds the column `_deleted_at timestamptz` to the target; the decoder fills it (null, or the
 * run's time for a flagged record), so that the ordinary upsert clears it when a record comes back.
 */
import { Either, Schema } from "effect"
import { DottedPath, withDefault } from "./Fields.js"
import { compilePath } from "./JsonPath.js"

// Target.ts holds `deletes`: this module knows a target and a row by their shape only (no import cycle)
interface HasDeletes {
  readonly deletes?: Deletes | undefined
}
interface Columned extends HasDeletes {
  readonly columns: ReadonlyArray<{ readonly name: string; readonly type: string; readonly from: string }>
}
interface RowLike {
  readonly values: Readonly<Record<string, unknown>>
  readonly deleted?: true | undefined
}

const DeleteAction = Schema.Literal("delete", "mark").annotations({
  description: "delete: the row is deleted; mark: the row's _deleted_at is set to the run's time"
})

const Flagged = Schema.Struct({
  /** dotted path of the record's field that says it is deleted */
  path: DottedPath,
  /** the value (compared as JSON) that means deleted */
  equals: Schema.Union(Schema.String, Schema.Number, Schema.Boolean),
  action: DeleteAction
}).annotations({ title: "deletes flagged by the source" })

const Missing = Schema.Struct({
  /** rows whose key a complete read did not see */
  detect: Schema.Literal("missing"),
  action: DeleteAction,
  /** a complete read that saw no record at all deletes nothing, unless this is true */
  allowEmpty: withDefault(Schema.Boolean, () => false)
}).annotations({ title: "deletes detected by a complete read" })

export const Deletes = Schema.Union(Flagged, Missing)
export type Deletes = typeof Deletes.Type

/** the column `action: mark` adds (DESIGN.md) */
export const deletedAtColumn = "_deleted_at"

const deletedAt = { name: deletedAtColumn, type: "timestamptz", from: deletedAtColumn } as const

type WithDeletes = HasDeletes

export const flagged = (target: WithDeletes): Extract<Deletes, { path: string }> | undefined =>
  target.deletes !== undefined && "path" in target.deletes ? target.deletes : undefined

export const missing = (target: WithDeletes): Extract<Deletes, { detect: "missing" }> | undefined =>
  target.deletes !== undefined && "detect" in target.deletes ? target.deletes : undefined

export const marks = (target: WithDeletes): boolean => target.deletes?.action === "mark"

/** the target as the table has it: for `mark`, with `_deleted_at` after the stream's columns */
export const withColumns = <T extends Columned>(target: T): T =>
  marks(target) ? { ...target, columns: [...target.columns, deletedAt] } : target

/**
 * The config file's rules: `mark`'s column is Ferry's; append keeps every version (a delete is one
 * more); replace already drops what the source no longer has, and would stamp `_deleted_at` anew on
 * every run.
 */
export const problems = (
  target: {
    readonly deletes?: Deletes | undefined
    readonly write?: string | undefined
    readonly columns?: object | undefined
  }
): ReadonlyArray<{ readonly path: ReadonlyArray<string>; readonly message: string }> => {
  const { deletes, write } = target
  if (deletes === undefined) return []
  const at = ["target", "deletes"]
  if (write === "append") {
    return [{ path: at, message: "write: append keeps every version of a record: a delete flag is one more version; remove deletes" }]
  }
  if (write === "replace" && "detect" in deletes) {
    return [{ path: at, message: "write: replace already drops the rows a run did not read: remove deletes" }]
  }
  if (write === "replace" && deletes.action === "mark") {
    return [{
      path: [...at, "action"],
      message: "write: replace reloads the table every run: _deleted_at would be each run's time; use action: delete"
    }]
  }
  if (deletes.action === "mark" && target.columns !== undefined && Object.hasOwn(target.columns, deletedAtColumn)) {
    return [{ path: ["target", "columns", deletedAtColumn], message: "action: mark adds this column itself: remove it from columns" }]
  }
  return []
}

/** a record's flag: the value at `path` equals `equals` as JSON values (1 is not "1") */
const flagReader = (spec: Extract<Deletes, { path: string }>) => {
  const read = compilePath(spec.path)
  return (raw: unknown): boolean => read(raw) === spec.equals
}

/**
 * The decoder of a target with deletes, for one run (`at`: the run's time, ISO): a flagged record's
 * row says so (`deleted`); with `mark`, every row carries `_deleted_at` (null, or `at` if flagged). A
 * target without deletes keeps its decoder as it is.
 */
export const decoding = <R extends RowLike>(
  target: HasDeletes,
  decode: (raw: unknown) => Either.Either<R, string>,
  at: string
): (raw: unknown) => Either.Either<R, string> => {
  const flag = flagged(target)
  const mark = marks(target)
  if (flag === undefined && !mark) return decode
  const isFlagged = flag === undefined ? () => false : flagReader(flag)
  return (raw) =>
    Either.map(decode(raw), (row) => {
      const deleted = isFlagged(raw)
      const values = mark ? { ...row.values, [deletedAtColumn]: deleted ? at : null } : row.values
      return deleted ? { ...row, values, deleted: true } : { ...row, values }
    })
}
