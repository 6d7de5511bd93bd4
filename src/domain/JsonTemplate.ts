/**
 * Placeholders in a JSON template (a POST `body`, GraphQL `variables`): `{cursor}`, `{next}`, and any
 * other name the caller gives a value for (`{end}`). Generic over the map of values, so a new
 * placeholder is one more entry.
 *
 * - a string that is exactly one placeholder becomes the value itself, with its JSON type: a numeric
 *   cursor or an offset stays a number (`first: "{next}"` sends `first: 100`, as an `Int` variable wants);
 * - a string that holds placeholders among other text gets each value written as text;
 * - a placeholder whose value is absent (no cursor on a full read, no token on the first page) makes
 *   its whole string `null` (`after: null` is GraphQL's and most APIs' "from the start"; half a filter
 *   such as `"updated > "` would be an error);
 * - `{name}` with no entry in the map is left as it is (braces are common in text).
 */

/** The value of each placeholder; `undefined`: known, but absent in this request. */
export type TemplateValues = Readonly<Record<string, unknown>>

const placeholder = /\{([A-Za-z_][A-Za-z0-9_.]*)\}/g

const textOf = (value: unknown): string => typeof value === "string" ? value : String(value)

const fillString = (text: string, values: TemplateValues): unknown => {
  const exact = /^\{([A-Za-z_][A-Za-z0-9_.]*)\}$/.exec(text)
  if (exact !== null && Object.hasOwn(values, exact[1]!)) return values[exact[1]!] ?? null
  let absent = false
  const filled = text.replace(placeholder, (whole, name: string) => {
    if (!Object.hasOwn(values, name)) return whole
    const value = values[name]
    if (value === undefined || value === null) absent = true
    return absent ? "" : textOf(value)
  })
  return absent ? null : filled
}

/** `template` with its placeholders filled; objects and arrays are copied, the template is never changed. */
export const fill = (template: unknown, values: TemplateValues): unknown => {
  if (typeof template === "string") return fillString(template, values)
  if (Array.isArray(template)) return template.map((item) => fill(item, values))
  if (typeof template === "object" && template !== null && Object.getPrototypeOf(template) === Object.prototype) {
    return Object.fromEntries(Object.entries(template).map(([key, value]) => [key, fill(value, values)]))
  }
  return template
}
