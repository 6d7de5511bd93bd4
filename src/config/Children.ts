/**
 * The config file's rules for `target.children` (`domain/Children.ts`): what makes a child table
 * impossible or ambiguous, each naming the field to fix.
 */
import { digestColumn, indexColumn, parentColumn } from "../domain/Children.js"
import { isIdentifier } from "../domain/Fields.js"

type Issue = { readonly path: ReadonlyArray<PropertyKey>; readonly message: string }

interface ChildField {
  readonly table: string
  readonly primaryKey?: ReadonlyArray<string> | undefined
  readonly columns: Readonly<Record<string, unknown>>
}

interface TargetFields {
  readonly table: string
  readonly primaryKey: ReadonlyArray<string>
  readonly columns?: Readonly<Record<string, unknown>> | undefined
  readonly write?: string | undefined
  readonly children?: ReadonlyArray<ChildField> | undefined
}

const ownProblems = (target: TargetFields, child: ChildField, i: number): Array<Issue> => {
  const at = (...path: ReadonlyArray<PropertyKey>) => ["target", "children", i, ...path]
  const issues: Array<Issue> = []
  const names = Object.keys(child.columns)
  child.primaryKey?.forEach((name, j) => {
    if (!names.includes(name)) issues.push({ path: at("primaryKey", j), message: `"${name}" is not one of the child's columns (${names.join(", ")})` })
    else if (child.primaryKey!.indexOf(name) !== j) issues.push({ path: at("primaryKey", j), message: `"${name}" is listed twice` })
  })
  const reserved = target.primaryKey.map(parentColumn)
  if (child.primaryKey === undefined) reserved.push(indexColumn)
  for (const name of reserved) {
    if (!isIdentifier(name)) {
      issues.push({ path: at("table"), message: `the child table's column "${name}" (the parent's key) is not a valid identifier: shorten the key column's name` })
    } else if (names.includes(name)) {
      issues.push({ path: at("columns", name), message: `"${name}" is the column Ferry fills with ${name === indexColumn ? "the element's position" : "the parent's key"}: rename it` })
    }
  }
  return issues
}

/** Child tables are written with `write: merge` only, each to a table of its own. */
export const childrenProblems = (target: TargetFields): ReadonlyArray<Issue> => {
  const children = target.children
  if (children === undefined) return []
  if (target.write === "append" || target.write === "replace") {
    return [{ path: ["target", "children"], message: `child tables are written with write: merge only, not ${target.write}` }]
  }
  const issues: Array<Issue> = []
  if (target.columns !== undefined && Object.hasOwn(target.columns, digestColumn)) {
    issues.push({ path: ["target", "columns", digestColumn], message: `with children, "${digestColumn}" is the column Ferry fills with a digest of the child rows: rename it` })
  }
  children.forEach((child, i) => {
    const earlier = children.findIndex((c) => c.table === child.table)
    if (child.table === target.table || earlier < i) {
      issues.push({ path: ["target", "children", i, "table"], message: `"${child.table}" is already the table of ${earlier < i ? `target.children[${earlier}]` : "the stream"}` })
    }
    issues.push(...ownProblems(target, child, i))
  })
  return issues
}
