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
