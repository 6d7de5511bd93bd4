/**
 * New fields: the dotted paths of record fields that no column maps (`Unmapped.ts`) and that the
 * stream and its target never saw before (`ferry.fields`, through the Sink), for the run summary's
 * `new_fields` and the `schema.drift` log line.
 *
 * Bounded: paths go `maxDepth` levels deep (an array is one field, never entered), and at most
 * `maxPaths` are kept per stream and target; past that the tracker stops (it says so once).
 *
 * Cheap when nothing is new: each object's keys are compared, in order, with the keys its place had
 * last time (one `for…in`, no allocation). Only keys that differ are looked up; only objects are
 * entered; a field a column reads whole is not entered.
 */
import { isMapped, type MappedTree, mappedPaths, mappedTree } from "../domain/Unmapped.js"
import type { TargetSpec } from "../domain/Target.js"

const maxDepth = 3
export const maxPaths = 1000

interface Node {
  /** the dotted path of the field ("" for the record) */
  readonly path: string
  /** the keys of the last object seen here, in order */
  last: Array<string>
  readonly children: Map<string, Node>
  /** a column reads this field whole: nothing under it is new */
  readonly mapped: boolean
  /** first seen in this run: the fields under it are new too, recorded but not reported */
  fresh: boolean
}

/** what a page brought: paths to record, and those to report (a new field's own new fields are not) */
export interface Found {
  readonly paths: ReadonlyArray<string>
  readonly reported: ReadonlyArray<string>
}

export interface Tracker {
  /** the new paths of these records (each path once per tracker); `undefined`: none */
  readonly observe: (records: ReadonlyArray<unknown>) => Found | undefined
  /** true once, when `maxPaths` is reached (or was already): newer fields are no longer tracked */
  readonly capNotice: () => boolean
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)
const hasOwn = Object.prototype.hasOwnProperty

const node = (path: string, mapped: boolean): Node => ({ path, last: [], children: new Map(), mapped, fresh: false })

/** the node of a known path, made with its parents if missing */
const place = (root: Node, mapped: MappedTree, keys: ReadonlyArray<string>): Node => {
  let at = root
  for (let i = 0; i < keys.length; i++) {
    let child = at.children.get(keys[i]!)
    if (child === undefined) {
      child = node(keys.slice(0, i + 1).join("."), isMapped(mapped, keys.slice(0, i + 1)))
      at.children.set(keys[i]!, child)
    }
    at = child
  }
  return at
}

/** A tracker for `target`'s records that knows `known` (stored paths) already. */
export const make = (target: TargetSpec, known: ReadonlyArray<string>): Tracker => {
  const mapped = mappedTree(mappedPaths(target))
  const root = node("", false)
  for (const path of [...mappedPaths(target), ...known]) place(root, mapped, path.split(".").slice(0, maxDepth))
  let stored = known.length
  let stopped = stored >= maxPaths
  let noticed = false

  /** the keys of `value` that its place does not know: recorded, and reported unless under a new one */
  const learn = (value: Record<string, unknown>, at: Node, fresh: boolean, found: Array<[string, boolean]>) => {
    const keys: Array<string> = []
    for (const key in value) {
      if (!hasOwn.call(value, key)) continue
      keys.push(key)
      if (at.children.has(key)) continue
      const path = at.path === "" ? key : `${at.path}.${key}`
      const child = node(path, isMapped(mapped, path.split(".")))
      at.children.set(key, child)
      if (child.mapped || stopped) continue
      if (stored >= maxPaths) {
        stopped = true
        continue
      }
      stored++
      child.fresh = true
      found.push([path, !fresh])
    }
    at.last = keys
  }

  const walk = (value: Record<string, unknown>, at: Node, depth: number, fresh: boolean, found: Array<[string, boolean]>) => {
    const last = at.last
    let i = 0
    let same = true
    for (const key in value) {
      if (last[i] !== key) {
        same = false
        break
      }
      i++
    }
    if (!same || i !== last.length) learn(value, at, fresh, found)
    if (depth >= maxDepth) return
    for (const key in value) {
      const inner = value[key]
      if (!isRecord(inner) || !hasOwn.call(value, key)) continue
      const child = at.children.get(key)!
      if (child.mapped) continue
      walk(inner, child, depth + 1, fresh || child.fresh, found)
    }
  }

  return {
    observe: (records) => {
      if (stopped) return undefined
      const found: Array<[string, boolean]> = []
      for (let r = 0; r < records.length; r++) {
        const record = records[r]
        if (isRecord(record)) walk(record, root, 1, false, found)
      }
      if (found.length === 0) return undefined
      return { paths: found.map(([p]) => p), reported: found.filter(([, report]) => report).map(([p]) => p) }
    },
    capNotice: () => {
      if (!stopped || noticed) return false
      noticed = true
      return true
    }
  }
}
