/**
 * Runs the bundled `ferry` bin as a child process, the way cron does, and reads its JSON log lines.
 */
import { spawn, type ChildProcess } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

export const bin = join(import.meta.dirname, "..", "..", "bin", "ferry.mjs")

export interface CliResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  /** stderr's JSON log lines */
  readonly logs: ReadonlyArray<Record<string, any>>
}

export const parseLogs = (stderr: string): Array<Record<string, any>> =>
  stderr.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))

export const summaries = (result: CliResult) => result.logs.filter((l) => l.msg === "run.summary")

export interface Running {
  readonly child: ChildProcess
  readonly done: Promise<CliResult>
}

export const start = (
  args: ReadonlyArray<string>,
  options: { env?: Record<string, string | undefined>; cwd?: string } = {}
): Running => {
  const child = spawn(process.execPath, [bin, ...args], {
    cwd: options.cwd ?? process.cwd(),
    env: { PATH: process.env.PATH, FERRY_LOG_FORMAT: "json", ...options.env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let stdout = ""
  let stderr = ""
  child.stdout!.on("data", (d) => (stdout += d))
  child.stderr!.on("data", (d) => (stderr += d))
  const done = new Promise<CliResult>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr, logs: parseLogs(stderr) }))
  )
  return { child, done }
}

export const ferry = (args: ReadonlyArray<string>, options: { env?: Record<string, string | undefined>; cwd?: string } = {}) =>
  start(args, options).done

/** A temp directory holding `ferry.config.yaml` with this text. */
export const configDir = (yaml: string): string => {
  const dir = mkdtempSync(join(tmpdir(), "ferry-test-"))
  writeFileSync(join(dir, "ferry.config.yaml"), yaml)
  return dir
}

export interface StreamConfigOptions {
  /** the source URL (a Link-paginated `{ data: [...] }` endpoint filtered by `since`) */
  readonly url: string
  /** the stream's name, and its table's unless `table` is given */
  readonly name: string
  readonly table?: string
  /** the `database:` line; default: the URL from `${DATABASE_URL}`; "" for the embedded database */
  readonly database?: string
  /** the `checkpoint:` value, e.g. "{ store: file, path: ./checkpoints.json }" */
  readonly checkpoint?: string
  /** the `auth:` value, e.g. `{ type: bearer, token: "${TOKEN}" }` */
  readonly auth?: string
  readonly columns?: string
  /** the `incremental:` value; default: on updated_at from 2000-01-01, order asc; null: none */
  readonly incremental?: string | null
  /** the target's `write:` value (merge, append, replace) */
  readonly write?: string
  /** the `timeout:` value (per request); default: Ferry's */
  readonly timeout?: string
  /** the `retry:` value; default: 2 attempts, 10 ms to 1 s apart */
  readonly retry?: string
  readonly maxInvalid?: number
  /** lines appended to the stream (indented by the caller) */
  readonly extra?: string
}

/** A temp directory with a one-stream config in the shape most end-to-end tests use. */
export const streamConfig = (o: StreamConfigOptions): string =>
  configDir(`
${o.database ?? `database: { url: "\${DATABASE_URL}" }`}
${o.checkpoint === undefined ? "" : `checkpoint: ${o.checkpoint}`}
streams:
  - name: ${o.name}
    source:
      url: ${o.url}
      ${o.auth === undefined ? "" : `auth: ${o.auth}`}
      records: data
      pagination: { type: link }
      ${o.incremental === null ? "" : `incremental: ${o.incremental ?? `{ cursorField: updated_at, param: since, initial: "2000-01-01T00:00:00Z", order: asc }`}`}
      ${o.timeout === undefined ? "" : `timeout: ${o.timeout}`}
      retry: ${o.retry ?? "{ attempts: 2, base: 10 millis, max: 1 second }"}
    target:
      table: ${o.table ?? o.name}
      primaryKey: [id]
      ${o.write === undefined ? "" : `write: ${o.write}`}
      columns: ${o.columns ?? "{ id: text, name: text, amount: numeric, updated_at: timestamptz }"}
    ${o.maxInvalid === undefined ? "" : `maxInvalid: ${o.maxInvalid}`}
${o.extra ?? ""}
`)
