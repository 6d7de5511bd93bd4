/** Dotted paths into JSON (`customer.email`, `meta.next`, `items.0.id`), as the config writes them. */

/** The value at `path`; `""` is the value itself; own properties only (never `__proto__` and kin). */
export const valueAt = (value: unknown, path: string): unknown => {
  if (path === "") return value
  let current = value
  for (const key of path.split(".")) {
    if (current === null || typeof current !== "object") return undefined
    if (!Object.prototype.hasOwnProperty.call(current, key)) return undefined
    current = (current as Record<string, unknown>)[key]
  }
  return current
}
