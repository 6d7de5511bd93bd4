/**
 * The Prometheus text exposition format (version 0.0.4): what `ferry worker --listen` serves at
 * /metrics, and what a textfile collector reads. One family per metric name: its HELP and TYPE lines,
 * then its samples. Names and label names are checked (a bad one is a bug in Ferry, not in the data);
 * label values and help texts are escaped.
 */

type MetricType = "counter" | "gauge"

export interface Sample {
  readonly labels?: Readonly<Record<string, string>>
  readonly value: number
}

export interface Family {
  readonly name: string
  readonly help: string
  readonly type: MetricType
  readonly samples: ReadonlyArray<Sample>
}

export const contentType = "text/plain; version=0.0.4; charset=utf-8"

const metricName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const labelName = /^[a-zA-Z_][a-zA-Z0-9_]*$/

const escapeHelp = (text: string) => text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")
const escapeLabel = (text: string) => text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, "\\\"")

const formatValue = (value: number): string =>
  Number.isNaN(value) ? "NaN" : value === Infinity ? "+Inf" : value === -Infinity ? "-Inf" : String(value)

const formatLabels = (labels: Readonly<Record<string, string>> | undefined): string => {
  const entries = Object.entries(labels ?? {})
  if (entries.length === 0) return ""
  for (const [name] of entries) {
    if (!labelName.test(name) || name.startsWith("__")) throw new Error(`not a Prometheus label name: ${name}`)
  }
  return `{${entries.map(([name, value]) => `${name}="${escapeLabel(value)}"`).join(",")}}`
}

/** The families as one text body (ends in a newline, as the format wants). */
export const format = (families: ReadonlyArray<Family>): string => {
  const lines: Array<string> = []
  const seen = new Set<string>()
  for (const family of families) {
    if (!metricName.test(family.name)) throw new Error(`not a Prometheus metric name: ${family.name}`)
    if (seen.has(family.name)) throw new Error(`metric ${family.name} written twice`)
    seen.add(family.name)
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`)
    for (const sample of family.samples) lines.push(`${family.name}${formatLabels(sample.labels)} ${formatValue(sample.value)}`)
  }
  return lines.join("\n") + "\n"
}
