/**
 * Ferry's logger: one JSON object per line on stderr when stderr is not a terminal (cron, systemd),
 * a short readable line on a terminal. `FERRY_LOG_FORMAT=json|pretty` and `FERRY_LOG_LEVEL`
 * override. Every line goes through the redactor, so a configured secret cannot reach the log even if
 * some message were to carry it.
 */
import { Cause, FiberRefs, HashMap, Inspectable, Layer, List, Logger, LogLevel } from "effect"
import { CurrentRedactor } from "../domain/Secrets.js"
import { CurrentStatusLine, type StatusLine } from "./StatusLine.js"

type LogFormat = "json" | "pretty"

export interface LoggingOptions {
  readonly format: LogFormat
  readonly level: LogLevel.LogLevel
  /** where lines go; stderr by default (above the run's status line, if one is on screen) */
  readonly write?: ((line: string) => void) | undefined
}

const levelFromEnv = (value: string | undefined): LogLevel.LogLevel | undefined => {
  switch (value?.toLowerCase()) {
    case "debug":
    case "trace":
      return LogLevel.Debug
    case "info":
      return LogLevel.Info
    case "warn":
    case "warning":
      return LogLevel.Warning
    case "error":
      return LogLevel.Error
    case "none":
    case "off":
      return LogLevel.None
    default:
      return undefined
  }
}

export const optionsFromEnv = (env: Record<string, string | undefined>, stderrIsTTY: boolean): LoggingOptions => ({
  format: env.FERRY_LOG_FORMAT === "json" ? "json" : env.FERRY_LOG_FORMAT === "pretty" ? "pretty" : stderrIsTTY ? "pretty" : "json",
  level: levelFromEnv(env.FERRY_LOG_LEVEL) ?? LogLevel.Info
})

const levelName = (level: LogLevel.LogLevel): string =>
  level._tag === "Warning" ? "warn" : level._tag === "Fatal" ? "fatal" : level.label.toLowerCase()

const messageText = (message: unknown): string => {
  const parts = Array.isArray(message) ? message : [message]
  return parts.map((p) => (typeof p === "string" ? p : Inspectable.toStringUnknown(p, 0))).join(" ")
}

/** Annotations come out of a hash map in no useful order; these lead, in this order, the rest follow sorted. */
const leading = [
  "run_id",
  "stream",
  "status",
  "pages",
  "fetched",
  "inserted",
  "updated",
  "unchanged",
  "quarantined",
  "already_quarantined",
  "retries",
  "duration_ms",
  "checkpoint"
]
const rank = (key: string) => {
  const i = leading.indexOf(key)
  return i === -1 ? leading.length : i
}

const annotationsOf = (annotations: HashMap.HashMap<string, unknown>): Record<string, unknown> => {
  const entries = [...annotations].sort(([a], [b]) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0))
  return Object.fromEntries(entries)
}

const prettyValue = (value: unknown): string =>
  typeof value === "string" ? (/[\s"=]/.test(value) ? JSON.stringify(value) : value) : JSON.stringify(value)

const prettyFields = (fields: Record<string, unknown>): string =>
  Object.entries(fields).map(([k, v]) => ` ${k}=${prettyValue(v)}`).join("")

const n = (value: unknown) => (typeof value === "number" ? value.toLocaleString("en-US") : String(value))

/** "1 retry", "2 retries" */
const counted = (value: unknown, one: string, many = `${one}s`) => `${n(value)} ${value === 1 ? one : many}`

/** The run summary as a sentence on a terminal; the JSON line keeps every field for machines. */
const prettySummary = (f: Record<string, unknown>): string => {
  const { already_quarantined, checkpoint, dry_run, duration_ms, error, exit_code, fetched, inserted, new_fields, pages, quarantined, retries, status, unchanged, updated, ...rest } = f
  const seconds = typeof duration_ms === "number" ? `${(duration_ms / 1000).toFixed(1)} s` : "?"
  const head = status === "succeeded" ? (dry_run ? "dry run, nothing kept" : "synced") : `${String(status)} (exit ${String(exit_code)})`
  return `${head}: ${n(fetched)} fetched = ${n(inserted)} new + ${n(updated)} updated + ${n(unchanged)} unchanged + ` +
    `${n(quarantined)} quarantined${
      typeof already_quarantined === "number" && already_quarantined > 0 ? ` + ${n(already_quarantined)} already quarantined` : ""
    }; ${counted(pages, "page")}, ${counted(retries, "retry", "retries")}, ${seconds}; ` +
    `checkpoint ${String(checkpoint ?? "none")}` +
    (Array.isArray(new_fields) && new_fields.length > 0 ? `; new fields: ${new_fields.join(", ")}` : "") +
    (error === undefined ? "" : `\n  error: ${String(error)}`) + prettyFields(rest)
}

const colors: Record<string, string> = { debug: "\x1b[90m", info: "\x1b[36m", warn: "\x1b[33m", error: "\x1b[31m", fatal: "\x1b[31m" }

const toStderr = (line: string, statusLine: StatusLine | undefined) =>
  statusLine === undefined ? void process.stderr.write(line + "\n") : statusLine.print(line)

/**
 * The logger. What is per run it reads from the fiber that logs: the redactor (`CurrentRedactor`) and
 * the status line on screen (`CurrentStatusLine`), so two runs in one process never mix them.
 */
const makeLogger = (options: LoggingOptions) => {
  const color = options.format === "pretty" && options.write === undefined && process.stderr.isTTY === true
  return Logger.make(({ annotations, cause, context, date, logLevel, message, spans }) => {
    const fields = annotationsOf(annotations)
    const level = levelName(logLevel)
    const msg = messageText(message)
    const error = Cause.isEmpty(cause) ? undefined : Cause.pretty(cause)
    let line: string
    if (options.format === "json") {
      const spanFields: Record<string, number> = {}
      const now = date.getTime()
      for (const span of List.toArray(spans)) spanFields[`${span.label}_ms`] = now - span.startTime
      line = JSON.stringify({
        ts: date.toISOString(),
        level,
        msg,
        ...fields,
        ...spanFields,
        ...(error === undefined ? {} : { cause: error })
      })
    } else {
      const { run_id: _runId, stream, ...rest } = fields
      const time = date.toISOString().slice(11, 19)
      const tag = color ? `${colors[level] ?? ""}${level.toUpperCase().padEnd(5)}\x1b[0m` : level.toUpperCase().padEnd(5)
      const where = stream === undefined || stream === null ? "" : ` [${String(stream)}]`
      const text = msg === "run.summary" ? prettySummary(rest) : `${msg}${prettyFields(rest)}`
      line = `${time} ${tag}${where} ${text}${error === undefined ? "" : "\n" + error}`
    }
    const redacted = FiberRefs.getOrDefault(context, CurrentRedactor).redact(line)
    if (options.write !== undefined) options.write(redacted)
    else toStderr(redacted, FiberRefs.getOrDefault(context, CurrentStatusLine))
  })
}

/** Replaces Effect's default logger (so no line is printed twice) and sets the minimum level. */
export const layer = (options: LoggingOptions): Layer.Layer<never> =>
  Layer.merge(Logger.replace(Logger.defaultLogger, makeLogger(options)), Logger.minimumLogLevel(options.level))

