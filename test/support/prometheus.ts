/**
 * Checks a text in the Prometheus exposition format (0.0.4) strictly, and reads its samples: what a
 * scrape or node_exporter's textfile collector would refuse fails here, naming the line. Beside it,
 * `promtool check metrics` (Prometheus's own linter) when one is at hand: CI provides it
 * (FERRY_TEST_PROMTOOL, from Debian's prometheus package), and then it is required.
 */
import { execFileSync, spawnSync } from "node:child_process"

export interface PromSample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

const metricName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const labelName = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const types = new Set(["counter", "gauge", "histogram", "summary", "untyped"])

const parseValue = (text: string, line: number): number => {
  if (text === "NaN") return NaN
  if (text === "+Inf") return Infinity
  if (text === "-Inf") return -Infinity
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`line ${line}: "${text}" is not a value`)
  return Number(text)
}

/** `{a="x",b="y"}` at `text[at]`: the labels and where they end */
const parseLabels = (text: string, at: number, line: number): { labels: Record<string, string>; end: number } => {
  const labels: Record<string, string> = {}
  let i = at + 1
  while (text[i] !== "}") {
    const name = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(text.slice(i))?.[0]
    if (name === undefined || !labelName.test(name)) throw new Error(`line ${line}: bad label name at ${i}`)
    if (name in labels) throw new Error(`line ${line}: label ${name} twice`)
    i += name.length
    if (text.slice(i, i + 2) !== "=\"") throw new Error(`line ${line}: expected =" after ${name}`)
    i += 2
    let value = ""
    for (;;) {
      const c = text[i]
      if (c === undefined) throw new Error(`line ${line}: unterminated label value`)
      if (c === "\"") break
      if (c === "\\") {
        const next = text[i + 1]
        if (next === "n") value += "\n"
        else if (next === "\\" || next === "\"") value += next
        else throw new Error(`line ${line}: bad escape \\${next}`)
        i += 2
        continue
      }
      if (c === "\n") throw new Error(`line ${line}: raw line break in a label value`)
      value += c
      i++
    }
    labels[name] = value
    i++
    if (text[i] === ",") i++
    else if (text[i] !== "}") throw new Error(`line ${line}: expected , or } after label ${name}`)
  }
  return { labels, end: i + 1 }
}

export const checkExposition = (text: string): ReadonlyArray<PromSample> => {
  if (!text.endsWith("\n")) throw new Error("the text does not end with a line break")
  const samples: Array<PromSample> = []
  const typed = new Map<string, string>()
  const helped = new Set<string>()
  const finished = new Set<string>()
  const series = new Set<string>()
  let current: string | undefined
  text.slice(0, -1).split("\n").forEach((raw, index) => {
    const line = index + 1
    if (raw.trim() === "") return
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(raw)
    if (meta !== null) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string]
      if (!metricName.test(name)) throw new Error(`line ${line}: bad metric name ${name}`)
      if (finished.has(name) || (current !== undefined && current !== name && (typed.has(name) || helped.has(name)))) {
        throw new Error(`line ${line}: ${name}'s lines are not together`)
      }
      if (kind === "TYPE") {
        if (typed.has(name)) throw new Error(`line ${line}: a second TYPE for ${name}`)
        if (!types.has(rest)) throw new Error(`line ${line}: unknown type ${rest}`)
        if (samples.some((s) => s.name === name)) throw new Error(`line ${line}: TYPE of ${name} after its samples`)
        typed.set(name, rest)
      } else {
        if (helped.has(name)) throw new Error(`line ${line}: a second HELP for ${name}`)
        helped.add(name)
      }
      if (current !== undefined && current !== name) finished.add(current)
      current = name
      return
    }
    if (raw.startsWith("#")) return
    const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(raw)?.[0]
    if (name === undefined) throw new Error(`line ${line}: not a sample: ${raw}`)
    let at = name.length
    let labels: Record<string, string> = {}
    if (raw[at] === "{") ({ labels, end: at } = parseLabels(raw, at, line))
    const [value, timestamp, extra] = raw.slice(at).trim().split(" ")
    if (raw[at] !== " " || value === undefined || extra !== undefined) throw new Error(`line ${line}: expected one value after the name`)
    if (timestamp !== undefined && !/^-?\d+$/.test(timestamp)) throw new Error(`line ${line}: bad timestamp`)
    if (finished.has(name)) throw new Error(`line ${line}: ${name}'s samples are not together`)
    if (current !== undefined && current !== name) finished.add(current)
    current = name
    const id = `${name}${JSON.stringify(Object.entries(labels).sort())}`
    if (series.has(id)) throw new Error(`line ${line}: the series ${id} twice`)
    series.add(id)
    samples.push({ name, labels, value: parseValue(value, line) })
  })
  return samples
}

/** Prometheus's own linter, when there is one: FERRY_TEST_PROMTOOL, else `promtool` on the PATH. */
export const promtool = (): string | undefined => {
  const given = process.env.FERRY_TEST_PROMTOOL
  if (given !== undefined && given !== "") return given
  const found = spawnSync("promtool", ["--version"], { stdio: "ignore" })
  return found.status === 0 ? "promtool" : undefined
}

/** `promtool check metrics` of `text`: its complaints (empty: none); throws when it exits otherwise */
export const promtoolProblems = (tool: string, text: string): string => {
  try {
    return execFileSync(tool, ["check", "metrics"], { input: text, encoding: "utf8", stdio: ["pipe", "pipe", "pipe"] })
  } catch (error) {
    const e = error as { status?: number; stdout?: string; stderr?: string }
    return `${e.stdout ?? ""}${e.stderr ?? ""}` || `promtool exited ${e.status}`
  }
}
