/**
 * JSON without rounding. `JSON.parse` turns every number into a double: `1234567890123456789` becomes
 * `1234567890123456800` and `1e400` becomes Infinity. Ferry must store numbers exactly, on Node 20
 * (no reviver `context.source`) and later, and without slowing the common page down:
 *
 * - `parse`: a cheap scan first; only a body that might hold a number a double cannot keep
 *   (more than 15 significant digits, or an exponent of 3 digits) is tokenized. Each such number
 *   token is rewritten into a string holding a per-process random marker and its text, then parsed,
 *   and those strings become `LosslessNumber`s (the exact text). Every other number stays a number.
 * - `stringify`: `JSON.stringify`, with each `LosslessNumber` written as its digits (a marker string
 *   replaced afterwards, only when the value held one).
 * - `stringifyExact`: the same, without recursion (any depth), for quarantined records.
 */
/** Per process: no source text can guess it, so no string from an API is ever taken for a number. */
const MARK = `ferry-number-${Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0")).join("")}:`

/** set by LosslessNumber.toJSON: tells `stringify` that its text holds markers to replace */
let marked = false

/** A JSON number kept as its text: a double could not hold it exactly. */
export class LosslessNumber {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text
  }
  /** a marker string that `stringify` turns back into the bare number */
  toJSON(): string {
    marked = true
    return MARK + this.text
  }
}

export const isLosslessNumber = (u: unknown): u is LosslessNumber => u instanceof LosslessNumber

// ---------------------------------------------------------------------------------------------
// parse

const isNumberChar = (c: number): boolean => (c >= 48 && c <= 57) || c === 46 // 0-9 and the point

/**
 * Whether the text has 16 digits (or 15 and a point) in a row. A regex took a quarter of JSON.parse's
 * time here; this reads one character in 16 (any such run covers one of them) and looks around the
 * digits it lands on, unless the characters 8 before and 8 after are no digits (a run of 16 through
 * this one reaches one of them): about a tenth of JSON.parse (docs/PERFORMANCE.md).
 */
const longDigitRun = (text: string): boolean => {
  const n = text.length
  for (let i = 15; i < n; i += 16) {
    if (!isNumberChar(text.charCodeAt(i))) continue
    if (!isNumberChar(text.charCodeAt(i - 8)) && !(i + 8 < n && isNumberChar(text.charCodeAt(i + 8)))) continue
    let start = i
    let end = i + 1
    while (start > 0 && isNumberChar(text.charCodeAt(start - 1))) start--
    while (end < n && end - start < 16 && isNumberChar(text.charCodeAt(end))) end++
    if (end - start >= 16) return true
  }
  return false
}

/** a 3-digit exponent (a literal-led regex: irregexp skips through the text fast) */
const longExponent = /\d[eE][-+]?\d{3}/

/**
 * A body that may hold such a number. It may also be a run of digits inside a string (a long id sent
 * as text, a hash): the tokenizer then decides.
 */
const candidate = (text: string): boolean => longDigitRun(text) || longExponent.test(text)

/** the next string or number token (strings are skipped whole, so digits inside them are never numbers) */
const tokens = /"[^"\\]*(?:\\[\s\S][^"\\]*)*"|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?/g

/** the smallest normal double: below it a double has fewer than 15 significant digits */
const minNormal = 2.2250738585072014e-308

/** Whether a double cannot stand for this number token exactly (its shortest decimal form aside). */
const needsExact = (token: string): boolean => {
  let digits = 0
  let i = token.charCodeAt(0) === 45 ? 1 : 0
  for (; i < token.length; i++) {
    const c = token.charCodeAt(i)
    if (c === 101 || c === 69) break // e, E
    if (c === 46 || (digits === 0 && c === 48)) continue // the point, leading zeros
    digits++
  }
  if (digits > 15) return true
  if (i === token.length) return false
  const n = Math.abs(Number(token))
  return n === Infinity || (digits > 0 && n < minNormal)
}

/** The text with each number token that needs it turned into a marked string; `undefined`: none does. */
const markNumbers = (text: string): string | undefined => {
  let out: Array<string> | undefined
  let last = 0
  tokens.lastIndex = 0
  for (let match = tokens.exec(text); match !== null; match = tokens.exec(text)) {
    const token = match[0]
    if (token.charCodeAt(0) === 34 || !needsExact(token)) continue
    out ??= []
    out.push(text.slice(last, match.index), "\"", MARK, token, "\"")
    last = match.index + token.length
  }
  if (out === undefined) return undefined
  out.push(text.slice(last))
  return out.join("")
}

const isMarked = (value: unknown): value is string => typeof value === "string" && value.startsWith(MARK)

/**
 * Turns the marked strings of a parsed value into LosslessNumbers, in place, without recursion. A
 * marked object key was a number in a key's place: the body was not JSON.
 */
const revive = (root: unknown): unknown => {
  if (isMarked(root)) return new LosslessNumber(root.slice(MARK.length))
  const stack: Array<unknown> = [root]
  while (stack.length > 0) {
    const node = stack.pop()
    if (typeof node !== "object" || node === null) continue
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) {
        const item: unknown = node[i]
        if (isMarked(item)) node[i] = new LosslessNumber(item.slice(MARK.length))
        else if (typeof item === "object" && item !== null) stack.push(item)
      }
    } else {
      const record = node as Record<string, unknown>
      for (const key of Object.keys(record)) {
        if (key.startsWith(MARK)) throw new SyntaxError("a number where an object key belongs")
        const item = record[key]
        if (isMarked(item)) record[key] = new LosslessNumber(item.slice(MARK.length))
        else if (typeof item === "object" && item !== null) stack.push(item)
      }
    }
  }
  return root
}

/**
 * `JSON.parse`, except that numbers a double cannot hold exactly become LosslessNumbers. Throws as
 * JSON.parse does on text that is not JSON.
 */
export const parse = (text: string): unknown => {
  if (!candidate(text)) return JSON.parse(text)
  const rewritten = markNumbers(text)
  return rewritten === undefined ? JSON.parse(text) : revive(JSON.parse(rewritten))
}

// ---------------------------------------------------------------------------------------------
// stringify

const markedNumber = new RegExp(`"${MARK}(-?[0-9][0-9.eE+-]*)"`, "g")

/**
 * `JSON.stringify`, with LosslessNumbers written as their digits. Costs nothing more unless the value
 * held one (the flag is set by their toJSON).
 */
export const stringify = (value: unknown): string | undefined => {
  marked = false
  const text = JSON.stringify(value) as string | undefined
  if (!marked || text === undefined) return text
  marked = false
  return text.replace(markedNumber, "$1")
}

/**
 * The JSON text of any value, at any depth (no recursion): LosslessNumbers as their digits, strings
 * escaped as JSON.stringify escapes them (NUL and lone surrogates as \u escapes), numbers a JSON text
 * cannot hold (Infinity, NaN) as strings, members whose value has no JSON (undefined, a function)
 * left out as JSON.stringify does. Keys keep their order.
 */
export const stringifyExact = (root: unknown): string => {
  const out: Array<string> = []
  // work items: a value to write, or a literal piece of text (a separator or a closing bracket)
  const stack: Array<{ readonly text: string } | { readonly value: unknown }> = [{ value: root }]
  while (stack.length > 0) {
    const item = stack.pop()!
    if ("text" in item) {
      out.push(item.text)
      continue
    }
    let value = item.value
    if (value instanceof LosslessNumber) {
      out.push(value.text)
      continue
    }
    if (typeof value === "object" && value !== null && typeof (value as { toJSON?: unknown }).toJSON === "function") {
      value = (value as { toJSON: () => unknown }).toJSON()
    }
    if (typeof value === "string") out.push(JSON.stringify(value))
    else if (typeof value === "number") out.push(Number.isFinite(value) ? JSON.stringify(value) : JSON.stringify(String(value)))
    else if (typeof value === "boolean") out.push(value ? "true" : "false")
    else if (typeof value === "bigint") out.push(value.toString())
    else if (Array.isArray(value)) {
      const parts: Array<{ readonly text: string } | { readonly value: unknown }> = [{ text: "[" }]
      value.forEach((element: unknown, i) => {
        if (i > 0) parts.push({ text: "," })
        // as JSON.stringify: an element with no JSON is null
        parts.push(hasJson(element) ? { value: element } : { text: "null" })
      })
      parts.push({ text: "]" })
      for (let i = parts.length - 1; i >= 0; i--) stack.push(parts[i]!)
    } else if (typeof value === "object" && value !== null) {
      const record = value as Record<string, unknown>
      const parts: Array<{ readonly text: string } | { readonly value: unknown }> = [{ text: "{" }]
      for (const key of Object.keys(record)) {
        const member = record[key]
        if (!hasJson(member)) continue
        parts.push({ text: `${parts.length > 1 ? "," : ""}${JSON.stringify(key)}:` }, { value: member })
      }
      parts.push({ text: "}" })
      for (let i = parts.length - 1; i >= 0; i--) stack.push(parts[i]!)
    } else out.push("null")
  }
  return out.join("")
}

const hasJson = (value: unknown): boolean =>
  value !== undefined && typeof value !== "function" && typeof value !== "symbol"
