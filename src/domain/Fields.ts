/**
 * The leaves of the model's schemas: one value each, as it is written (in the config file, or in
 * code) and as Ferry holds it, with ONE message when it is wrong. A message names the rule, never
 * the value, which may be a secret.
 */
import { Duration, Option, ParseResult, Schema } from "effect"

/** A leaf's own message replaces whatever its inner parts said (`override`: unions would list every member). */
export const says = (message: string) => ({ message: () => ({ message, override: true }) })

/** A field left out takes `value`, when decoded and when made with the schema's `make`. */
export const withDefault = <S extends Schema.Schema.Any>(schema: S, value: () => Schema.Schema.Type<S>) =>
  Schema.optionalWith(schema, { default: value })

const identifierRule = "letters, digits and _, not starting with a digit, at most 63 characters"
const identifierPattern = /^[A-Za-z_][A-Za-z0-9_]*$/
export const isIdentifier = (name: string) => name.length <= 63 && identifierPattern.test(name)

/** Table, schema and column names: they reach SQL (quoted), so only plain names are allowed. */
export const Identifier = Schema.String.pipe(
  Schema.filter(isIdentifier, {
    message: () => `not a valid identifier (${identifierRule})`,
    jsonSchema: { pattern: identifierPattern.source, maxLength: 63 }
  })
).annotations({ title: "a PostgreSQL identifier", description: `a PostgreSQL identifier: ${identifierRule}` })

export const NonEmpty = Schema.String.pipe(Schema.minLength(1, { message: () => "must not be empty" }))
  .annotations({ title: "a non-empty string" })

export const DottedPath = Schema.String.pipe(
  Schema.pattern(/^[^.]+(?:\.[^.]+)*$/, { message: () => `expected a dotted path like "customer.email"` })
).annotations({ description: "a dotted path into the JSON body or record, e.g. customer.email" })

export const HeaderName = Schema.String.pipe(
  Schema.pattern(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, { message: () => "not a valid HTTP header name" })
).annotations({ title: "an HTTP header name", description: "an HTTP header name (letters, digits and !#$%&'*+.^_`|~-)" })

/** A few fixed words; Effect would report each alternative separately. */
export const oneOf = <const Values extends ReadonlyArray<string>>(...values: Values) =>
  Schema.Literal(...values).annotations(says(`expected one of ${values.join(", ")}`))

export const HttpUrl = Schema.String.pipe(
  Schema.filter((s) => /^https?:\/\//i.test(s) && URL.canParse(s), {
    message: () => "expected an http:// or https:// URL",
    jsonSchema: { pattern: "^[hH][tT][tT][pP][sS]?://" }
  })
)

/** Query and header values: YAML reads `limit: 100` as a number, the request wants text. */
export const ScalarText = Schema.transform(Schema.Union(Schema.String, Schema.Number, Schema.Boolean), Schema.String, {
  strict: true,
  decode: (value) => String(value),
  encode: (text) => text
}).annotations(says("expected a string, number or boolean"))

const durationRule = `expected a duration like "30 seconds", "500 millis", "5 minutes", or a number of milliseconds`
const durationPattern = /^\d+(?:\.\d+)?\s+(?:nanos?|micros?|millis?|seconds?|minutes?|hours?|days?|weeks?)$/

/** "30 seconds" (the units of `Duration.decode`) or milliseconds; never negative or infinite. */
export const DurationField = Schema.transformOrFail(Schema.Union(Schema.Number, Schema.String), Schema.DurationFromSelf, {
  strict: true,
  decode: (input, _, ast) => {
    const duration = typeof input === "number"
      ? (input >= 0 ? Duration.decodeUnknown(input) : Option.none())
      : (durationPattern.test(input.trim()) ? Duration.decodeUnknown(input.trim()) : Option.none())
    return Option.match(Option.filter(duration, Duration.isFinite), {
      onNone: () => ParseResult.fail(new ParseResult.Type(ast, input, durationRule)),
      onSome: ParseResult.succeed
    })
  },
  encode: (duration) => ParseResult.succeed(Duration.toMillis(duration))
}).annotations({
  ...says(durationRule),
  jsonSchema: {
    anyOf: [
      { type: "string", pattern: durationPattern.source },
      { type: "number", minimum: 0, description: "milliseconds" }
    ]
  },
  description: durationRule.replace("expected ", "")
})

/** Whole numbers from `min`; strings of digits too, since a `${LIMIT}` in the file always yields a string. */
export const integerAtLeast = (min: number) => {
  const rule = `expected a whole number >= ${min}`
  return Schema.transformOrFail(Schema.Union(Schema.Number, Schema.String), Schema.Number, {
    strict: true,
    decode: (input, _, ast) => {
      const n = typeof input === "number" ? input : /^\s*-?\d+\s*$/.test(input) ? Number(input) : Number.NaN
      return Number.isSafeInteger(n) && n >= min
        ? ParseResult.succeed(n)
        : ParseResult.fail(new ParseResult.Type(ast, input, rule))
    },
    encode: ParseResult.succeed
  }).annotations({
    ...says(rule),
    jsonSchema: { anyOf: [{ type: "integer", minimum: min }, { type: "string", pattern: "^\\d+$" }] }
  })
}
