/**
 * A column's type as the config file writes it: case-insensitive, with the common aliases (`int8`,
 * `varchar`, `json`, …); always decodes to one of `columnTypes`.
 */
import { ParseResult, Schema } from "effect"
import { says } from "../domain/Fields.js"
import { ColumnType, columnTypes } from "../domain/Target.js"

const columnTypeAliases: Readonly<Record<string, ColumnType>> = {
  int: "integer",
  int4: "integer",
  int8: "bigint",
  float8: "double precision",
  double: "double precision",
  float4: "real",
  bool: "boolean",
  "timestamp with time zone": "timestamptz",
  json: "jsonb",
  decimal: "numeric",
  varchar: "text",
  string: "text"
}
const columnTypeRule = `expected a column type: one of ${columnTypes.join(", ")} (or an alias: ${
  Object.keys(columnTypeAliases).join(", ")
})`

/** Case-insensitive, with the common aliases; always decodes to one of `columnTypes`. */
export const ColumnTypeField = Schema.transformOrFail(Schema.String, ColumnType, {
  strict: true,
  decode: (input, _, ast) => {
    const name = input.trim().toLowerCase().replace(/\s+/g, " ")
    const type = (columnTypes as ReadonlyArray<string>).includes(name)
      ? (name as ColumnType)
      : Object.hasOwn(columnTypeAliases, name) ? columnTypeAliases[name] : undefined
    return type === undefined ? ParseResult.fail(new ParseResult.Type(ast, input, columnTypeRule)) : ParseResult.succeed(type)
  },
  encode: ParseResult.succeed
}).annotations({ ...says(columnTypeRule), description: columnTypeRule.replace("expected ", "") })
