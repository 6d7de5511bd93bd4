/** Plain text tables for `status` and `sql` on stdout. */

const cell = (value: unknown): string => {
  if (value === null || value === undefined) return ""
  if (value instanceof Date) return value.toISOString()
  if (typeof value === "object") return JSON.stringify(value)
  return String(value)
}

const clip = (text: string, width: number): string => (text.length > width ? text.slice(0, width - 1) + "…" : text)

/** Left-aligned columns, numbers right-aligned, long cells clipped so a row stays one line. */
export const formatTable = (
  columns: ReadonlyArray<string>,
  rows: ReadonlyArray<Readonly<Record<string, unknown>>>,
  maxWidth = 60
): string => {
  const texts = rows.map((row) => columns.map((c) => clip(cell(row[c]).replace(/\s+/g, " "), maxWidth)))
  const widths = columns.map((c, i) => Math.max(c.length, ...texts.map((t) => t[i]!.length)))
  const numeric = columns.map((_, i) => texts.length > 0 && texts.every((t) => t[i] === "" || /^-?\d+(\.\d+)?$/.test(t[i]!)))
  const line = (values: ReadonlyArray<string>, header = false) =>
    values.map((v, i) => (numeric[i] && !header ? v.padStart(widths[i]!) : v.padEnd(widths[i]!))).join("  ").trimEnd()
  return [line(columns.map((c) => c.toUpperCase()), true), ...texts.map((t) => line(t))].join("\n")
}

export const formatDuration = (ms: number | null | undefined): string => {
  if (ms === null || ms === undefined) return ""
  if (ms < 1000) return `${ms} ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`
}
