/**
 * `--metrics-file PATH` (or FERRY_METRICS_FILE): after every run, the file node_exporter's textfile
 * collector reads, in the Prometheus text format, one series per stream of the config. Written whole
 * to a temporary file beside it and renamed over it, so the collector never reads half a file.
 *
 * The file is its own memory: a stream this run did not run (`--stream`), or whose run failed, keeps
 * the samples the previous file had (its last success above all); the streams that ran get this run's.
 * No database read is needed, so a run that could not reach the database still says so.
 */
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { basename, dirname, join } from "node:path"
import type { StreamSummary } from "../sync/Summary.js"
import { type Family, format } from "./Prometheus.js"

/** One stream's outcome in this run: its summary, or none when the run ended before it began. */
export interface StreamOutcome {
  readonly stream: string
  readonly summary: StreamSummary | undefined
  /** the exit code this stream ended with (the run's, when it has no summary) */
  readonly exitCode: number
  /** now minus the checkpoint, in seconds, for a timestamp cursor */
  readonly lagSeconds: number | undefined
}

const outcomes = ["inserted", "updated", "unchanged", "quarantined"] as const

const families: ReadonlyArray<Omit<Family, "samples">> = [
  { name: "ferry_last_success_timestamp_seconds", type: "gauge", help: "When the stream's last successful run ended, Unix time." },
  { name: "ferry_last_run_timestamp_seconds", type: "gauge", help: "When the stream's last run ended (whatever its outcome), Unix time." },
  { name: "ferry_last_exit_code", type: "gauge", help: "The exit code of the stream's last run (0: succeeded; see the README's exit codes)." },
  { name: "ferry_run_duration_seconds", type: "gauge", help: "How long the stream's last run took." },
  { name: "ferry_records", type: "gauge", help: "Records of the stream's last run, by outcome." },
  { name: "ferry_retries", type: "gauge", help: "HTTP retries of the stream's last run." },
  { name: "ferry_checkpoint_lag_seconds", type: "gauge", help: "Now minus the stream's checkpoint at its last run, for a timestamp cursor." }
]

/** a sample's identity: its family and labels, as the file writes them */
type Key = string
const keyOf = (name: string, labels: Readonly<Record<string, string>>): Key => `${name}${JSON.stringify(labels)}`

interface Stored {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

const sampleLine = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/
const labelPair = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g
const unescape = (text: string) => text.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c))

/** The samples of a file this module wrote (other lines are ignored; a missing file has none). */
const readPrevious = (path: string): ReadonlyArray<Stored> => {
  let text: string
  try {
    text = readFileSync(path, "utf8")
  } catch {
    return []
  }
  const known = new Set(families.map((f) => f.name))
  return text.split("\n").flatMap((line): Array<Stored> => {
    const match = sampleLine.exec(line)
    if (match === null || !known.has(match[1]!)) return []
    const labels = Object.fromEntries(Array.from((match[2] ?? "").matchAll(labelPair), (m) => [m[1]!, unescape(m[2]!)]))
    const value = Number(match[3])
    return Number.isNaN(value) ? [] : [{ name: match[1]!, labels, value }]
  })
}

/** This run's samples of one stream. */
const samplesOf = (outcome: StreamOutcome, endedAt: number): ReadonlyArray<Stored> => {
  const { stream, summary } = outcome
  const labels = { stream }
  const samples: Array<Stored> = [
    { name: "ferry_last_run_timestamp_seconds", labels, value: endedAt / 1000 },
    { name: "ferry_last_exit_code", labels, value: outcome.exitCode }
  ]
  if (summary?.status === "succeeded") samples.push({ name: "ferry_last_success_timestamp_seconds", labels, value: endedAt / 1000 })
  if (summary !== undefined) {
    samples.push({ name: "ferry_run_duration_seconds", labels, value: summary.durationMs / 1000 })
    for (const outcome of outcomes) samples.push({ name: "ferry_records", labels: { stream, outcome }, value: summary[outcome] })
    samples.push({ name: "ferry_retries", labels, value: summary.retries })
  }
  if (outcome.lagSeconds !== undefined) samples.push({ name: "ferry_checkpoint_lag_seconds", labels, value: outcome.lagSeconds })
  return samples
}

/**
 * The file's text after this run: the previous samples of the config's streams, with this run's over
 * them (a stream gone from the config is dropped; a failed run keeps the last success time).
 */
const render = (
  previous: ReadonlyArray<Stored>,
  streams: ReadonlyArray<string>,
  ran: ReadonlyArray<StreamOutcome>,
  endedAt: number
): string => {
  const inConfig = new Set(streams)
  const samples = new Map<Key, Stored>()
  for (const s of previous) if (inConfig.has(s.labels.stream ?? "")) samples.set(keyOf(s.name, s.labels), s)
  for (const outcome of ran) {
    // a failed run's last-run series replace the old ones; the last success stays
    for (const [key, s] of samples) {
      if (s.labels.stream === outcome.stream && s.name !== "ferry_last_success_timestamp_seconds") samples.delete(key)
    }
    for (const s of samplesOf(outcome, endedAt)) samples.set(keyOf(s.name, s.labels), s)
  }
  const order = (s: Stored) => `${s.labels.stream}\u0000${s.labels.outcome ?? ""}`
  return format(families.map((family) => ({
    ...family,
    samples: [...samples.values()]
      .filter((s) => s.name === family.name)
      .sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0))
      .map(({ labels, value }) => ({ labels, value }))
  })))
}

/**
 * Writes the metrics file after a run: a temporary file in the same directory, then a rename (atomic on
 * one file system). A file that cannot be written is a warning, never the run's failure: the run's
 * data is committed either way, and the last-run time that stops moving is what an alert sees.
 */
export const write = (path: string, streams: ReadonlyArray<string>, ran: ReadonlyArray<StreamOutcome>, endedAt: number) =>
  Effect.try({
    try: () => {
      const text = render(readPrevious(path), streams, ran, endedAt)
      const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(3).toString("hex")}`)
      try {
        writeFileSync(temporary, text, { mode: 0o644 })
        renameSync(temporary, path)
      } finally {
        rmSync(temporary, { force: true })
      }
    },
    catch: (error) => (error instanceof Error ? error.message : String(error))
  }).pipe(
    Effect.catchAll((reason) =>
      Effect.logWarning("metrics.unwritten").pipe(Effect.annotateLogs({ path, reason }))
    )
  )
