/**
 * The config file's syntax: JSON or YAML to a tree of plain values, each error one line with the
 * line and column and without the file's text (it may hold a secret).
 */
import { Either } from "effect"
import YAML from "yaml"
import * as Json from "../domain/Json.js"
import { ConfigError } from "../domain/Errors.js"
import { hideReferences } from "./Interpolation.js"

const lineColumn = (text: string, offset: number) => {
  const lines = text.slice(0, Math.max(0, offset)).split("\n")
  return { line: lines.length, column: (lines[lines.length - 1] ?? "").length + 1 }
}

/** Where JSON.parse stopped, for the errors V8 reports without a position ("Unexpected token 'x', ..."). */
const jsonErrorOffset = (text: string): number => {
  let i = 0
  const space = () => {
    while (" \t\n\r".includes(text[i] ?? "-")) i++
  }
  const scalar = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null|"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y
  const token = (): boolean => {
    scalar.lastIndex = i
    const match = scalar.exec(text)
    if (match !== null) i += match[0].length
    return match !== null
  }
  const value = (): boolean => {
    space()
    const open = text[i]
    if (open !== "{" && open !== "[") return token()
    const close = open === "{" ? "}" : "]"
    i++
    space()
    if (text[i] === close) return (i++, true)
    for (;;) {
      if (open === "{") {
        space()
        if (text[i] !== "\"" || !token()) return false
        space()
        if (text[i] !== ":") return false
        i++
      }
      if (!value()) return false
      space()
      if (text[i] === close) return (i++, true)
      if (text[i] !== ",") return false
      i++
    }
  }
  if (value()) space()
  return i
}

const parseJson = (text: string, file: string): Either.Either<unknown, ConfigError> =>
  Either.try({
    // Json.parse: `initial: 9007199254740993` keeps its digits (resolveTree makes it a string)
    try: (): unknown => Json.parse(text),
    catch: (error) => {
      const message = error instanceof Error ? error.message : String(error)
      const position = /at position (\d+)/.exec(message)?.[1]
      const { line, column } = lineColumn(text, position === undefined ? jsonErrorOffset(text) : Number(position))
      // V8 quotes the text around the error (`, "..." is not valid JSON`, or `, ...".."...`): it may hold a secret
      const what = message.replace(/, (?:\.\.\.)?"[\s\S]*$/, "").replace(/ in JSON at position[\s\S]*$/, "")
      return new ConfigError({ path: "", reason: `invalid JSON in ${file} at line ${line}, column ${column}: ${what}` })
    }
  })

const parseYaml = (text: string, file: string): Either.Either<{ tree: unknown; refs: ReadonlyArray<string> }, ConfigError> => {
  const { refs, text: hidden } = hideReferences(text)
  // intAsBigInt: an integer past 2^53 keeps its digits (resolveTree makes it a string)
  const doc = YAML.parseDocument(hidden, { uniqueKeys: true, prettyErrors: true, intAsBigInt: true })
  const error = doc.errors[0]
  if (error !== undefined) {
    const at = error.linePos?.[0]
    const where = at === undefined ? "" : ` at line ${at.line}, column ${at.col}`
    // the first line only: the rest quotes the file, which may hold a secret
    const what = (error.message.split("\n")[0] ?? "").replace(/ at line \d+, column \d+:?$/, "")
    return Either.left(new ConfigError({ path: "", reason: `invalid YAML in ${file}${where}: ${what}` }))
  }
  return Either.try({
    try: () => ({ tree: doc.toJS({ maxAliasCount: 100 }) as unknown, refs }),
    catch: () => new ConfigError({ path: "", reason: `invalid YAML in ${file}: too many aliases (*name)` })
  })
}

/** The tree of `text`; `file` (absolute) picks the syntax (`.json` or YAML) and names errors. */
export const parseSyntax = (
  text: string,
  file: string
): Either.Either<{ tree: unknown; refs: ReadonlyArray<string> }, ConfigError> =>
  file.toLowerCase().endsWith(".json")
    ? Either.map(parseJson(text.replace(/^\uFEFF/, ""), file), (tree) => ({ tree, refs: [] }))
    : parseYaml(text, file)
