/**
 * Functions written for one target's columns, for the two loops that run once per record (decoding a
 * record into a row, and writing a row as COPY text). A generic loop reads `record[names[i]]` and calls
 * `reads[i](…)`: each of those sites sees every column, so V8's inline caches go megamorphic and every
 * read is a lookup. Written out per column, each read has its own site and stays monomorphic, which
 * halves a page's decoding (docs/PERFORMANCE.md).
 *
 * Safety: a name from the config enters the source only through `literal` (a JSON string literal: JSON
 * is a subset of JavaScript's string syntax, quotes, backslashes, line separators and lone surrogates
 * escaped); every other value is passed in as a binding, never written into the source. Where the runtime
 * refuses code from strings (`--disallow-code-generation-from-strings`), `compile` returns undefined and
 * the caller keeps its generic loop.
 */

/**
 * Past this many columns the caller keeps its loop: V8 does not optimise a function whose bytecode
 * passes ~60 KB, and a written-out column takes a few hundred bytes.
 */
export const maxColumns = 200

/** `text` as a JavaScript string literal */
export const literal = (text: string): string => JSON.stringify(text)

/**
 * The value `body` returns, run once with `bindings` as its only free names (strict mode). `undefined`
 * when code generation is disallowed; any other error (a bug in a generated body) is thrown.
 */
export const compile = <F>(bindings: Readonly<Record<string, unknown>>, body: string): F | undefined => {
  const names = Object.keys(bindings)
  let make: (...args: ReadonlyArray<unknown>) => F
  try {
    make = new Function(...names, `"use strict";\n${body}`) as typeof make
  } catch (error) {
    if (error instanceof EvalError) return undefined
    throw error
  }
  return make(...names.map((name) => bindings[name]))
}
