/** Dotted paths into JSON (`customer.email`, `meta.next`, `items.0.id`), as the config writes them. */

const hasOwn = Object.prototype.hasOwnProperty

/** The value at a path already split into keys; own properties only (never `__proto__` and kin). */
export const valueAtKeys = (value: unknown, keys: ReadonlyArray<string>): unknown => {
  let current = value
  for (let i = 0; i < keys.length; i++) {
    if (current === null || typeof current !== "object") return undefined
    const key = keys[i]!
    if (!hasOwn.call(current, key)) return undefined
    current = (current as Record<string, unknown>)[key]
  }
  return current
}

/** A reader of `path`, split once: for a path read once per record. Same results as `valueAt`. */
export const compilePath = (path: string): (value: unknown) => unknown => {
  if (path === "") return (value) => value
  const keys = path.split(".")
  if (keys.length === 1) {
    const key = keys[0]!
    return (value) =>
      value !== null && typeof value === "object" && hasOwn.call(value, key)
        ? (value as Record<string, unknown>)[key]
        : undefined
  }
  return (value) => valueAtKeys(value, keys)
}

/** Paths come from the config, so there are few; the bound only guards against a caller with many. */
const splitPaths = new Map<string, ReadonlyArray<string>>()
const maxSplitPaths = 1024

/** The value at `path`; `""` is the value itself; own properties only (never `__proto__` and kin). */
export const valueAt = (value: unknown, path: string): unknown => {
  if (path === "") return value
  let keys = splitPaths.get(path)
  if (keys === undefined) {
    if (splitPaths.size >= maxSplitPaths) splitPaths.clear()
    keys = path.split(".")
    splitPaths.set(path, keys)
  }
  return valueAtKeys(value, keys)
}
