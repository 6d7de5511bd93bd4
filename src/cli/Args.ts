/**
 * Commands and flags. `node:util` parseArgs rather than @effect/cli: it costs nothing at start-up,
 * which matters for a process cron starts every minute (see docs/PERFORMANCE.md).
 */
import { parseArgs } from "node:util"
import { Either } from "effect"
import { UsageError } from "../domain/Errors.js"
import { maxConcurrency } from "../config/ConfigFile.js"
import { fullRefreshConflict, type Slice } from "../sync/Window.js"

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
  | { readonly _tag: "check"; readonly config: string | undefined }
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
  check   [--config FILE]
          validate the config, reach the database, make one request per source
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

Environment: FERRY_CONFIG, FERRY_DATA_DIR, FERRY_METRICS_FILE, FERRY_LOG_FORMAT=json|pretty, FERRY_LOG_LEVEL=debug|info|warn|error
Exit codes: 0 ok, 64 usage, 65 invalid records, 69 source unavailable, 70 internal error,
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
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "v" }
} as const

type Flag = keyof typeof flags

/** Which flags each command accepts; any other is a usage error, not silently ignored. */
const accepted: Record<string, ReadonlyArray<Flag>> = {
  run: ["config", "stream", "full-refresh", "dry-run", "from", "to", "concurrency", "metrics-file"],
  check: ["config"],
  status: ["config", "json"],
  reset: ["config", "stream"],
  sql: ["config", "json"],
  schema: []
}

const usageError = (message: string) => Either.left(new UsageError({ message }))

/** node's parseArgs messages are long and mention its own API; keep the part a user needs. */
const shortMessage = (error: unknown): string => {
  const text = error instanceof Error ? error.message : String(error)
  const unknown = /Unknown option '([^']+)'/.exec(text)
  if (unknown) return `unknown option ${unknown[1]}`
  const missing = /Option '([^']+)' argument missing/.exec(text)
  if (missing) return `option ${missing[1]} needs a value`
  return text.split(". ")[0] ?? text
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
      const concurrency = values.concurrency === undefined ? undefined : Number(values.concurrency)
      if (concurrency !== undefined && !(/^\d+$/.test(values.concurrency!) && concurrency >= 1 && concurrency <= maxConcurrency)) {
        return usageError(`--concurrency takes a whole number from 1 to ${maxConcurrency}`)
      }
      if (values["metrics-file"]?.trim() === "") return usageError("--metrics-file needs a file path")
      return Either.right({
        _tag: "run",
        config,
        streams,
        fullRefresh: values["full-refresh"] === true,
        dryRun: values["dry-run"] === true,
        ...(sliced ? { slice: { from: values.from, to: values.to } } : {}),
        ...(concurrency === undefined ? {} : { concurrency }),
        ...(values["metrics-file"] === undefined ? {} : { metricsFile: values["metrics-file"] })
      })
    }
    case "check":
      return Either.right({ _tag: "check", config })
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
