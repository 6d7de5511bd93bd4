/**
 * What of a record no column reads: the `extra` column's value (`target.extra`), and the test the
 * run's new-field report (`sync/NewFields.ts`) uses to leave mapped fields out.
 *
 * A column maps the field at its `from` path and everything under it. Its parents are only partly
 * mapped: `from: customer.email` leaves `customer.name` unmapped, and `extra` keeps it as
 * `{ "customer": { "name": … } }`. Columns that read the whole record (`from: ""`, the `record`
 * column) map nothing: they would make every field "mapped", and `extra` always empty. An array is
 * one value: a column reading `items.0.sku` does not split it, `extra` keeps the whole array.
 */
import type { TargetSpec } from "./Target.js"

/** a mapped path's tree: `true` where a column reads the field whole, a node where it reads inside it */
export type MappedTree = ReadonlyMap<string, MappedTree | true>

/** the paths of the columns that read a field (not the whole record, not `record` or `extra` themselves) */
export const mappedPaths = (target: TargetSpec): ReadonlyArray<string> => [
  ...target.columns
    .filter((c) => c.from !== "" && c.name !== target.extra && c.name !== target.record)
    .map((c) => c.from),
  // a list that goes to a child table is read whole
  ...(target.children ?? []).map((child) => child.path)
]

export const mappedTree = (paths: ReadonlyArray<string>): MappedTree => {
  const root = new Map<string, Map<string, unknown> | true>()
  for (const path of paths) {
    const keys = path.split(".")
    let node: Map<string, unknown> = root
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!
      const next = node.get(key)
      if (next === true) break // read whole already
      if (i === keys.length - 1) {
        node.set(key, true)
        break
      }
      if (next === undefined) {
        const child = new Map<string, unknown>()
        node.set(key, child)
        node = child
      } else node = next as Map<string, unknown>
    }
  }
  return root as MappedTree
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

const hasOwn = Object.prototype.hasOwnProperty

/**
 * The fields of `value` that `tree` does not map, as a new object (null-prototype: a `__proto__` key
 * is a plain key), or `undefined` when there are none. Inner objects are copied only where a column
 * reads inside them; everything else is the record's own value.
 */
export const unmappedOf = (value: Record<string, unknown>, tree: MappedTree): Record<string, unknown> | undefined => {
  let out: Record<string, unknown> | undefined
  for (const key in value) {
    if (!hasOwn.call(value, key)) continue
    const mapped = tree.get(key)
    if (mapped === true) continue
    let kept = value[key]
    if (mapped !== undefined && isRecord(kept)) {
      kept = unmappedOf(kept, mapped)
      if (kept === undefined) continue
    }
    out ??= Object.create(null) as Record<string, unknown>
    out[key] = kept
  }
  return out
}

/** Whether `path` (split) is mapped: a column reads it or a field it lies in. Its parents are not. */
export const isMapped = (tree: MappedTree, keys: ReadonlyArray<string>): boolean => {
  let node: MappedTree | true | undefined = tree
  for (const key of keys) {
    if (node === true) return true
    node = node?.get(key)
    if (node === undefined) return false
  }
  return node === true
}
