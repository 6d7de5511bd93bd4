/**
 * The config file's errors as a reader wants them: the field path in the form the file is written in,
 * and Effect's messages made human, never quoting a value (it may be a secret).
 */
import type { ParseResult } from "effect"

/** `streams[0].source.headers["X Key"]`: the form a reader looks for in the file. */
export const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>((out, key) => {
    if (typeof key === "number") return `${out}[${key}]`
    const name = String(key)
    if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(name)) return `${out}[${JSON.stringify(name)}]`
    return out === "" ? name : `${out}.${name}`
  }, "")

/** Effect's built-in messages, made human; `actual ...` is dropped, since it may hold a secret. */
export const humanize = (issue: ParseResult.ArrayFormatterIssue): string => {
  if (issue._tag === "Missing") return "is required"
  if (issue._tag === "Unexpected") {
    const key = JSON.stringify(String(issue.path[issue.path.length - 1]))
    const expected = issue.message.replace(/^is unexpected, expected: /, "")
    // a struct lists its keys as literals; a map (`columns`, `headers`) describes what a key must look like
    if (!/^"[^"]*"(?: \| "[^"]*")*$/.test(expected)) return `invalid key ${key}: expected ${expected}`
    return `unknown key ${key} (expected one of ${Array.from(expected.matchAll(/"([^"]*)"/g), (m) => m[1]).join(", ")})`
  }
  const expected = /^Expected ([\s\S]*?), actual /.exec(issue.message)?.[1]
  if (expected === undefined) return issue.message
  const literals = expected.split(" | ").map((part) => /^"([^"]*)"$/.exec(part)?.[1])
  if (literals.every((l) => l !== undefined)) {
    return literals.length === 1 ? `expected "${literals[0]}"` : `expected one of ${literals.join(", ")}`
  }
  if (expected === "string" || expected === "number" || expected === "boolean") return `expected a ${expected}`
  if (expected.startsWith("ReadonlyArray<") || expected.startsWith("readonly [")) return "expected a list"
  if (expected.startsWith("{") || expected.startsWith("Struct")) return "expected a mapping (key: value)"
  return `expected ${expected}`
}
