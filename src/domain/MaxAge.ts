/**
 * How old a stream's last successful run may be before `ferry check --fresh` calls it stale: the
 * `--max-age` flag and the stream's `maxAge:`. Written as an operator writes a schedule: `2h`, `90m`,
 * `1d`, `30s`, `1w`, or Effect's long form (`2 hours`). A bare number is refused: seconds or
 * milliseconds would be a guess.
 */
import { Duration, ParseResult, Schema } from "effect"
import { says } from "./Fields.js"

const units: Readonly<Record<string, number>> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }
const pattern = /^(\d+(?:\.\d+)?)\s*(s|m|h|d|w|seconds?|minutes?|hours?|days?|weeks?)$/

export const rule = `expected an age like "2h", "90m", "1d" or "2 hours" (s, m, h, d, w), more than zero`

/** the age in milliseconds, or undefined when the text is not one */
export const parse = (text: string): number | undefined => {
  const match = pattern.exec(text.trim())
  if (match === null) return undefined
  const ms = Number(match[1]) * units[match[2]!.charAt(0)]!
  return Number.isFinite(ms) && ms > 0 ? ms : undefined
}

/** `maxAge:` in the config file; the JSON Schema lets a `${VAR}` through like every other value */
export const MaxAgeField = Schema.transformOrFail(Schema.String, Schema.DurationFromSelf, {
  strict: true,
  decode: (input, _, ast) => {
    const ms = parse(input)
    return ms === undefined ? ParseResult.fail(new ParseResult.Type(ast, input, rule)) : ParseResult.succeed(Duration.millis(ms))
  },
  encode: (duration) => ParseResult.succeed(`${Duration.toSeconds(duration)}s`)
}).annotations({
  ...says(rule),
  jsonSchema: { type: "string", pattern: pattern.source },
  description: rule.replace("expected ", "")
})

/** for messages: `2h` for 7,200,000 ms, the largest unit that divides it */
export const format = (ms: number): string => {
  for (const unit of ["w", "d", "h", "m", "s"]) {
    const size = units[unit]!
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`
  }
  return `${ms / 1000}s`
}
