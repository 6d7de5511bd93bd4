/**
 * A stream's `schedule:`: five-field cron (minute hour day-of-month month day-of-week), checked when the
 * config loads so that a typo is a 78 for `ferry run` and `check` too, not only a failing worker. The
 * worker hands the expression to pg-boss (cron-parser), which accepts this form; checking it here keeps
 * cron-parser (and its date library) out of the bundle that every `ferry run` loads.
 */
import { Schema } from "effect"

/** the file's `schedule:` (when `ferry worker` runs the stream); checked with the stream's rules, to name it */
export const Field = Schema.String.annotations({
  description: "cron (minute hour day-of-month month day-of-week, UTC): when `ferry worker` runs this stream"
})

interface CronField {
  readonly name: string
  readonly min: number
  readonly max: number
  readonly names?: ReadonlyArray<string>
}

const fields: ReadonlyArray<CronField> = [
  { name: "minute", min: 0, max: 59 },
  { name: "hour", min: 0, max: 23 },
  { name: "day-of-month", min: 1, max: 31 },
  { name: "month", min: 1, max: 12, names: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"] },
  // 7 is Sunday too, as in most crons
  { name: "day-of-week", min: 0, max: 7, names: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"] }
]

const valueOf = (text: string, field: CronField): number | undefined => {
  const named = field.names?.indexOf(text.toUpperCase()) ?? -1
  if (named >= 0) return named + (field.name === "month" ? 1 : 0)
  if (!/^\d{1,2}$/.test(text)) return undefined
  const n = Number(text)
  return n >= field.min && n <= field.max ? n : undefined
}

/** What is wrong with one comma-separated part of a field, or undefined. */
const partProblem = (part: string, field: CronField): string | undefined => {
  const [range, step, extra] = part.split("/")
  if (extra !== undefined || range === undefined || range === "") return `"${part}" is not a value, range or step`
  if (step !== undefined && !(/^\d{1,2}$/.test(step) && Number(step) >= 1)) return `the step in "${part}" must be a whole number from 1`
  if (range === "*") return undefined
  const [from, to, more] = range.split("-")
  if (more !== undefined) return `"${part}" is not a value, range or step`
  const bounds = `${field.min}-${field.max}`
  const start = valueOf(from ?? "", field)
  if (start === undefined) return `"${from}" is not in ${bounds}`
  if (to === undefined) return undefined
  const end = valueOf(to, field)
  if (end === undefined) return `"${to}" is not in ${bounds}`
  return end < start ? `the range "${range}" runs backwards` : undefined
}

/** The numbers a field's (valid) text stands for. */
const valuesOf = (text: string, field: CronField): ReadonlySet<number> => {
  const values = new Set<number>()
  for (const part of text.split(",")) {
    const [range, step] = part.split("/")
    const [from, to] = range === "*" ? [String(field.min), String(field.max)] : range!.split("-")
    const start = valueOf(from!, field)!
    const end = to === undefined ? (step === undefined ? start : field.max) : valueOf(to, field)!
    for (let n = start; n <= end; n += Number(step ?? 1)) values.add(n)
  }
  return values
}

/** the most days each month can have (February: 29) */
const daysIn = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

/**
 * A schedule that never fires: days of the month that none of its months has (`0 0 31 2 *`). With a
 * day of the week given too, cron fires on either, so such a schedule still fires.
 */
const neverFires = (parts: ReadonlyArray<string>): string | undefined => {
  if (parts[4] !== "*" || parts[2] === "*") return undefined
  const days = valuesOf(parts[2]!, fields[2]!)
  const months = [...valuesOf(parts[3]!, fields[3]!)]
  return months.some((month) => [...days].some((day) => day <= daysIn[month - 1]!))
    ? undefined
    : `day-of-month ${parts[2]} never falls in month ${parts[3]}: the schedule would never run`
}

/** Why `expression` is not a five-field cron expression, or undefined when it is one. */
const problem = (expression: string): string | undefined => {
  const parts = expression.trim().split(/\s+/)
  if (parts.length !== fields.length) {
    return `expected 5 fields (minute hour day-of-month month day-of-week), found ${expression.trim() === "" ? 0 : parts.length}`
  }
  for (const [i, field] of fields.entries()) {
    for (const part of parts[i]!.split(",")) {
      const wrong = partProblem(part, field)
      if (wrong !== undefined) return `${field.name} field: ${wrong}`
    }
  }
  return neverFires(parts)
}

/** the stream's `schedule:` problem, naming the stream (ConfigFile's stream rules) */
export const issues = (stream: string, schedule: string | undefined) => {
  const wrong = schedule === undefined ? undefined : problem(schedule)
  return wrong === undefined ? [] : [{ path: ["schedule"], message: `stream "${stream}": not a cron schedule: ${wrong}` }]
}
