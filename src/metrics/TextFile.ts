/**
 * `--metrics-file PATH` (or FERRY_METRICS_FILE): after every run, the file node_exporter's textfile
 * collector reads, in the Prometheus text format, one series per stream of the config, labelled with the
 * config file's path (`config`). Written whole to a temporary file beside it and renamed over it, so the
 * collector never reads half a file; under a lock file beside it, so two runs never lose each other's.
 *
 * The file is its own memory: a stream this run did not run (`--stream`), or whose run failed, keeps
 * the samples the previous file had (its last success above all); the streams that ran get this run's.
 * No database read is needed, so a run that could not reach the database still says so. Several configs
 * share one file: a run rewrites only its own config's series and keeps the others' as they were.
 */
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { basename, dirname, join } from "node:path"
import * as FileLock from "../lib/FileLock.js"
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

/** a sample's identity: its family and labels (in name order: the file's order is not the identity) */
type Key = string
const keyOf = ({ labels, name }: Stored): Key => `${name}${JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)))}`

interface Stored {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

const sampleLine = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/
const labelPair = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g
const unescape = (text: string) => text.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c))

/**
 * The samples of a file this module wrote (other lines are ignored; a missing file has none). A file
 * that cannot be read throws: writing over it would lose the other configs' series.
 */
const readPrevious = (path: string): ReadonlyArray<Stored> => {
  let text: string
  try {
    text = readFileSync(path, "utf8")
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return []
    throw error
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

/** This run's samples of one stream of the config `config`. */
const samplesOf = (config: string, outcome: StreamOutcome, endedAt: number): ReadonlyArray<Stored> => {
  const { stream, summary } = outcome
  const labels = { config, stream }
  const samples: Array<Stored> = [
    { name: "ferry_last_run_timestamp_seconds", labels, value: endedAt / 1000 },
    { name: "ferry_last_exit_code", labels, value: outcome.exitCode }
  ]
  if (summary?.status === "succeeded") samples.push({ name: "ferry_last_success_timestamp_seconds", labels, value: endedAt / 1000 })
  if (summary !== undefined) {
    samples.push({ name: "ferry_run_duration_seconds", labels, value: summary.durationMs / 1000 })
    for (const outcome of outcomes) samples.push({ name: "ferry_records", labels: { config, stream, outcome }, value: summary[outcome] })
    samples.push({ name: "ferry_retries", labels, value: summary.retries })
  }
  if (outcome.lagSeconds !== undefined) samples.push({ name: "ferry_checkpoint_lag_seconds", labels, value: outcome.lagSeconds })
  return samples
}

/** The config a sample belongs to: the previous release wrote none, and the first config to write takes it over. */
const owned = (s: Stored, config: string): Stored =>
  s.labels.config !== undefined ? s : { ...s, labels: { config, ...s.labels } }

/**
 * The file's text after this run of `config`: the previous samples, with this run's over its own (a
 * stream gone from this config is dropped; a failed run keeps the last success). Other configs' samples
 * stay as they were.
 */
const render = (
  previous: ReadonlyArray<Stored>,
  config: string,
  streams: ReadonlyArray<string>,
  ran: ReadonlyArray<StreamOutcome>,
  endedAt: number
): string => {
  const inConfig = new Set(streams)
  const ours = (s: Stored) => s.labels.config === config
  const samples = new Map<Key, Stored>()
  for (const s of previous.map((s) => owned(s, config))) {
    if (!ours(s) || inConfig.has(s.labels.stream ?? "")) samples.set(keyOf(s), s)
  }
  for (const outcome of ran) {
    // a failed run's last-run series replace the old ones; the last success stays
    for (const [key, s] of samples) {
      if (ours(s) && s.labels.stream === outcome.stream && s.name !== "ferry_last_success_timestamp_seconds") samples.delete(key)
    }
    for (const s of samplesOf(config, outcome, endedAt)) samples.set(keyOf(s), s)
  }
  const order = (s: Stored) => `${s.labels.config}\u0000${s.labels.stream}\u0000${s.labels.outcome ?? ""}`
  return format(families.map((family) => ({
    ...family,
    samples: [...samples.values()]
      .filter((s) => s.name === family.name)
      .sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0))
      .map(({ labels, value }) => ({ labels, value }))
  })))
}

/** How long a run waits for another run's write of the same file (a write takes milliseconds). */
const lockWait = "5 seconds"

const lockProblem = (error: FileLock.Held | FileLock.Failed): string =>
  error._tag === "FileLockFailed"
    ? `cannot take the lock file ${error.file}: ${error.reason}`
    : `another process holds the lock file ${error.file}${error.info === undefined ? "" : ` (pid ${error.info.pid} on ${error.info.host})`}`

/** The file's new text, made from its previous samples, written beside it and renamed over it. */
const replace = (path: string, next: (previous: ReadonlyArray<Stored>) => string) =>
  Effect.try({
    try: () => {
      const text = next(readPrevious(path))
      const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(3).toString("hex")}`)
      try {
        writeFileSync(temporary, text, { mode: 0o644 })
        renameSync(temporary, path)
      } finally {
        rmSync(temporary, { force: true })
      }
    },
    catch: (error) => (error instanceof Error ? error.message : String(error))
  })

/**
 * Writes the metrics file after a run of the config file `config` (its absolute path: the `config`
 * label): read, rendered and renamed into place while holding `PATH.lock`, so a run of another config
 * writing at the same moment is waited for rather than overwritten. A file that cannot be written (or
 * locked within a few seconds) is a warning, never the run's failure: the run's data is committed either
 * way, and the last-run time that stops moving is what an alert sees.
 */
export const write = (
  path: string,
  run: { readonly config: string; readonly streams: ReadonlyArray<string>; readonly ran: ReadonlyArray<StreamOutcome> },
  endedAt: number
) =>
  FileLock.acquire(`${path}.lock`, { wait: lockWait }).pipe(
    Effect.mapError(lockProblem),
    Effect.zipRight(replace(path, (previous) => render(previous, run.config, run.streams, run.ran, endedAt))),
    Effect.scoped,
    Effect.catchAll((reason) =>
      Effect.logWarning("metrics.unwritten").pipe(Effect.annotateLogs({ path, reason }))
    )
  )
