/**
 * Request templates: `{cursor}` (where the read starts) and `{end}` (its upper bound) in
 * `incremental.params`, `source.params` and, for a POST source, the body's strings. A template that
 * names a value this run does not have is left out whole (`updated_before={end}` is not sent without an
 * end): a half-filled parameter would ask the API for something else. Names not in the values given
 * (`{next}`, a literal brace) are left as written.
 */

/** the run's values by placeholder name: `{ cursor, end }`, each absent when the run has none */
export type Values = Readonly<Record<string, string | undefined>>

const placeholder = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g

/** `template` with each `{name}` of `values` replaced; `undefined` if it names one whose value is absent */
export const fill = (template: string, values: Values): string | undefined => {
  let missing = false
  const filled = template.replace(placeholder, (whole, name: string) => {
    if (!Object.hasOwn(values, name)) return whole
    const value = values[name]
    if (value === undefined) missing = true
    return value ?? whole
  })
  return missing ? undefined : filled
}

/** whether `template` holds `{name}` for one of `names` */
export const uses = (template: string, names: ReadonlyArray<string>): boolean =>
  names.some((name) => template.includes(`{${name}}`))

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

/** whether `text` is what `template` may have become, each placeholder of `names` filled with anything */
export const couldBe = (template: string, names: ReadonlyArray<string>, text: string): boolean => {
  const parts = template.split(new RegExp(`(${names.map((n) => escape(`{${n}}`)).join("|")})`))
  const pattern = parts.map((part, i) => (i % 2 === 1 ? "[\\s\\S]*" : escape(part))).join("")
  return new RegExp(`^${pattern}$`).test(text)
}
