/**
 * Commands and flags. `node:util` parseArgs rather than @effect/cli: it costs nothing at start-up,
 * which matters for a process cron starts every minute (see docs/PERFORMANCE.md).
 */
import { parseArgs } from "node:util"
import { Either } from "effect"
import { UsageError } from "../domain/Errors.js"
import * as MaxAge from "../domain/MaxAge.js"
import { maxConcurrency } from "../config/ConfigFile.js"
import { fullRefreshConflict, type Slice } from "../sync/Window.js"
import { type Address, parseAddress } from "../worker/Health.js"

export type Command =
  | {
    readonly _tag: "run"
    readonly config: string | undefined
    readonly streams: ReadonlyArray<string>
    readonly fullRefresh: boolean
    readonly dryRun: boolean
    /** `--from` / `--to`: read this slice, leave the checkpoint (sync/Window.ts) */
    readonly slice?: Slice | undefined
    /** `--concurrency N`: streams run N at a time (absent: the config's `concurrency`, else 1) */
    readonly concurrency?: number | undefined
    /** `--metrics-file PATH`: Prometheus text for node_exporter's textfile collector (else FERRY_METRICS_FILE) */
    readonly metricsFile?: string | undefined
  }
  | {
    readonly _tag: "worker"
    readonly config: string | undefined
    /** `--listen HOST:PORT`: serve /healthz and /metrics there */
    readonly listen?: Address | undefined
    readonly concurrency?: number | undefined
    /** `--grace`: how long a stop may take, in ms (default 30 s) */
    readonly graceMillis: number
  }
  | { readonly _tag: "enqueue"; readonly config: string | undefined; readonly stream: string }
  | {
    readonly _tag: "check"
    readonly config: string | undefined
    /** `--fresh` / `--max-age`: only the database: each stream's last success against its max age */
    readonly freshness?: Freshness | undefined
  }
  | { readonly _tag: "status"; readonly config: string | undefined; readonly json: boolean }
  | { readonly _tag: "reset"; readonly config: string | undefined; readonly stream: string }
  | { readonly _tag: "sql"; readonly config: string | undefined; readonly query: string; readonly json: boolean }
  | { readonly _tag: "schema" }
  | { readonly _tag: "help" }
  | { readonly _tag: "version" }

export const usage = `Usage: ferry <command> [options]

Commands:
  run     [--config FILE] [--stream NAME]... [--full-refresh] [--dry-run] [--from CURSOR] [--to CURSOR]
          [--concurrency N] [--metrics-file PATH]
          sync the configured streams (all, or the ones named); --from/--to read that slice only
          (a cursor value or "now - 1 hour"), without reading or moving the stored checkpoint;
          --concurrency: N streams at a time (a parent still before its children);
          --metrics-file: write Prometheus metrics there after the run (node_exporter's textfile collector)
  worker  [--config FILE] [--listen HOST:PORT] [--concurrency N] [--grace 30s]
          take the config's stream jobs from the job queue (pg-boss, schema ferry_jobs) and run
          them, N at a time, on their schedules and when enqueued; Node 22.12 or later
  enqueue [--config FILE] --stream NAME
          queue one run of the stream now (for the workers)
  check   [--config FILE]
          validate the config, reach the database, make one request per source
  check   [--config FILE] --fresh | --max-age AGE [--stream NAME]... [--json]
          only the database: each stream whose last successful run is older than its maxAge
          (--max-age, e.g. 2h, overrides it for every stream) or that never succeeded exits 2
  status  [--config FILE] [--json]
          per stream: checkpoint, last run, counts
  reset   [--config FILE] --stream NAME
          forget a stream's checkpoint: the next run reads from incremental.initial
  sql     [--config FILE] [--json] "SELECT ..."
          run one SQL statement on the configured database and print the rows
  schema  print the JSON Schema of the config file

Options:
  -c, --config FILE   config file (default: $FERRY_CONFIG, else ./ferry.config.yaml|yml|json)
  -h, --help          this help
  -v, --version       Ferry's version

Environment: FERRY_CONFIG, FERRY_DATA_DIR, FERRY_METRICS_FILE, FERRY_LOG_FORMAT=json|pretty, FERRY_LOG_LEVEL=debug|info|warn|error,
             OTEL_EXPORTER_OTLP_ENDPOINT (run: traces and metrics over OTLP/HTTP; see the README, "Monitoring")
Exit codes: 0 ok, 2 stale (check --fresh), 64 usage, 65 invalid records, 69 source unavailable, 70 internal error,
            74 database error, 75 locked or rate-limited (try later), 78 bad config, 130/143 signal`

const flags = {
  config: { type: "string", short: "c" },
  stream: { type: "string", short: "s", multiple: true },
  "full-refresh": { type: "boolean" },
  "dry-run": { type: "boolean" },
  from: { type: "string" },
  to: { type: "string" },
  concurrency: { type: "string" },
  "metrics-file": { type: "string" },
  listen: { type: "string" },
  grace: { type: "string" },
  fresh: { type: "boolean" },
  "max-age": { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "v" }
} as const

type Flag = keyof typeof flags

/** Which flags each command accepts; any other is a usage error, not silently ignored. */
const accepted: Record<string, ReadonlyArray<Flag>> = {
  run: ["config", "stream", "full-refresh", "dry-run", "from", "to", "concurrency", "metrics-file"],
  worker: ["config", "listen", "concurrency", "grace"],
  enqueue: ["config", "stream"],
  check: ["config", "fresh", "max-age", "stream", "json"],
  status: ["config", "json"],
  reset: ["config", "stream"],
  sql: ["config", "json"],
  schema: []
}

const usageError = (message: string) => Either.left(new UsageError({ message }))

export interface Freshness {
  /** `--max-age` in milliseconds: every stream's limit, over its `maxAge:` */
  readonly maxAge?: { readonly ms: number; readonly text: string } | undefined
  readonly streams: ReadonlyArray<string>
  readonly json: boolean
}

/** `check`'s freshness flags; `--stream` and `--json` belong to the database-only check */
const freshnessOf = (
  values: { readonly fresh?: boolean | undefined; readonly "max-age"?: string | undefined; readonly json?: boolean | undefined },
  streams: ReadonlyArray<string>
): Either.Either<Freshness | undefined, UsageError> => {
  const text = values["max-age"]
  if (values.fresh !== true && text === undefined) {
    return streams.length > 0 || values.json === true
      ? usageError("check takes --stream and --json only with --fresh or --max-age")
      : Either.right(undefined)
  }
  const ms = text === undefined ? undefined : MaxAge.parse(text)
  if (text !== undefined && ms === undefined) return usageError(`--max-age "${text}": ${MaxAge.rule}`)
  return Either.right({ maxAge: ms === undefined ? undefined : { ms, text: text! }, streams, json: values.json === true })
}

/** node's parseArgs messages are long and mention its own API; keep the part a user needs. */
const shortMessage = (error: unknown): string => {
  const text = error instanceof Error ? error.message : String(error)
  const unknown = /Unknown option '([^']+)'/.exec(text)
  if (unknown) return `unknown option ${unknown[1]}`
  const missing = /Option '([^']+)' argument missing/.exec(text)
  if (missing) return `option ${missing[1]} needs a value`
  const ambiguous = /Option '([^']+)' argument is ambiguous/.exec(text)
  if (ambiguous) return `option ${ambiguous[1]} needs a value (one starting with "-" is written ${ambiguous[1]}=VALUE)`
  return text.split(". ")[0] ?? text
}

const concurrencyOf = (text: string | undefined): Either.Either<number | undefined, UsageError> => {
  if (text === undefined) return Either.right(undefined)
  const n = Number(text)
  return /^\d+$/.test(text) && n >= 1 && n <= maxConcurrency
    ? Either.right(n)
    : usageError(`--concurrency takes a whole number from 1 to ${maxConcurrency}`)
}

const defaultGraceMillis = 30_000

/** `30s`, `2m`, `500ms`, `30` (seconds), `30 seconds` */
const graceMillis = (text: string): number | undefined => {
  const match = /^(\d+)\s*(ms|millis|s|seconds?|m|minutes?)?$/.exec(text.trim())
  if (match === null) return undefined
  const unit = match[2] ?? "s"
  const n = Number(match[1])
  return unit === "ms" || unit === "millis" ? n : unit.startsWith("m") ? n * 60_000 : n * 1000
}

export const parse = (argv: ReadonlyArray<string>): Either.Either<Command, UsageError> => {
  let parsed
  try {
    parsed = parseArgs({ args: [...argv], options: flags, allowPositionals: true, strict: true })
  } catch (error) {
    return usageError(shortMessage(error))
  }
  const { positionals, values } = parsed
  if (values.version) return Either.right({ _tag: "version" })
  const [name, ...rest] = positionals
  if (values.help || name === undefined || name === "help") return Either.right({ _tag: "help" })
  const allowed = accepted[name]
  if (allowed === undefined) return usageError(`unknown command "${name}"`)
  for (const flag of Object.keys(values) as Array<Flag>) {
    if (values[flag] !== undefined && !allowed.includes(flag)) return usageError(`${name} does not take --${flag}`)
  }
  if (name !== "sql" && rest.length > 0) return usageError(`unexpected argument "${rest[0]}"`)
  const config = values.config
  const streams = values.stream ?? []
  switch (name) {
    case "run": {
      const sliced = values.from !== undefined || values.to !== undefined
      if (sliced && values["full-refresh"] === true) return usageError(fullRefreshConflict)
      const concurrency = concurrencyOf(values.concurrency)
      if (Either.isLeft(concurrency)) return Either.left(concurrency.left)
      if (values["metrics-file"]?.trim() === "") return usageError("--metrics-file needs a file path")
      return Either.right({
        _tag: "run",
        config,
        streams,
        fullRefresh: values["full-refresh"] === true,
        dryRun: values["dry-run"] === true,
        ...(sliced ? { slice: { from: values.from, to: values.to } } : {}),
        ...(concurrency.right === undefined ? {} : { concurrency: concurrency.right }),
        ...(values["metrics-file"] === undefined ? {} : { metricsFile: values["metrics-file"] })
      })
    }
    case "worker": {
      const concurrency = concurrencyOf(values.concurrency)
      if (Either.isLeft(concurrency)) return Either.left(concurrency.left)
      const listen = values.listen === undefined ? undefined : parseAddress(values.listen)
      if (values.listen !== undefined && listen === undefined) return usageError(`--listen takes HOST:PORT (e.g. 127.0.0.1:9090)`)
      const grace = values.grace === undefined ? defaultGraceMillis : graceMillis(values.grace)
      if (grace === undefined) return usageError(`--grace takes a duration such as 30s, 2m or 500ms`)
      return Either.right({
        _tag: "worker",
        config,
        graceMillis: grace,
        ...(listen === undefined ? {} : { listen }),
        ...(concurrency.right === undefined ? {} : { concurrency: concurrency.right })
      })
    }
    case "enqueue":
      if (streams.length !== 1) return usageError("enqueue needs exactly one --stream NAME")
      return Either.right({ _tag: "enqueue", config, stream: streams[0]! })
    case "check":
      return Either.map(freshnessOf(values, streams), (freshness) => ({ _tag: "check" as const, config, freshness }))
    case "status":
      return Either.right({ _tag: "status", config, json: values.json === true })
    case "reset":
      if (streams.length !== 1) return usageError("reset needs exactly one --stream NAME")
      return Either.right({ _tag: "reset", config, stream: streams[0]! })
    case "sql":
      if (rest.length !== 1) return usageError(`sql needs one statement in quotes, e.g. ferry sql "select count(*) from orders"`)
      return Either.right({ _tag: "sql", config, query: rest[0]!, json: values.json === true })
    default:
      return Either.right({ _tag: "schema" })
  }
}
