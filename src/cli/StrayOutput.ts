/**
 * In JSON log mode every line on stderr is one JSON object, whoever writes it: a log shipper that reads
 * Ferry's stderr must never meet a plain-text line. Others do write there: Node's own warnings
 * (deprecations such as pg's PGPASSFILE notice), `console.*` calls in dependencies, a driver's notice.
 * This module turns each such line into a JSON log line (`msg: "stderr"`, or `"node.warning"`), through
 * the same redactor as every log line. Ferry's own logger writes whole JSON lines and passes unchanged.
 * `console.log` goes to stderr too: stdout is for the command's own output (`status --json`).
 */
import { format } from "node:util"

export interface StrayOutputOptions {
  readonly runId: string
  /** applied to every captured line (the logger's redactor) */
  readonly redact: (text: string) => string
}

type Write = typeof process.stderr.write

const lineOf = (runId: string, level: string, msg: string, fields: Record<string, unknown>) =>
  JSON.stringify({ ts: new Date().toISOString(), level, msg, run_id: runId, stream: null, ...fields }) + "\n"

/** Installs the capture for the life of the process (the bin calls it once, in JSON mode only). */
export const captureAsJson = (options: StrayOutputOptions): void => {
  const original: Write = process.stderr.write.bind(process.stderr)
  // a partial line waits for its end, so a line written in pieces becomes one log line
  let pending = ""
  const emit = (text: string) => {
    if (text.trim() === "") return
    original(options.redact(lineOf(options.runId, "warn", "stderr", { text })))
  }
  const write = ((chunk: Uint8Array | string, encoding?: unknown, callback?: unknown): boolean => {
    const text = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8")
    const done = typeof encoding === "function" ? encoding : typeof callback === "function" ? callback : undefined
    if (pending === "" && text.startsWith("{") && text.endsWith("}\n")) {
      return original(text, done as () => void)
    }
    const lines = (pending + text).split("\n")
    pending = lines.pop() ?? ""
    for (const line of lines) emit(line)
    if (typeof done === "function") process.nextTick(done as () => void)
    return true
  }) as Write
  process.stderr.write = write
  process.on("exit", () => {
    if (pending !== "") emit(pending)
    pending = ""
  })

  const toStderr = (...args: Array<unknown>) => void process.stderr.write(format(...args) + "\n")
  console.log = toStderr
  console.info = toStderr
  console.warn = toStderr
  console.error = toStderr
  console.debug = toStderr

  // Node prints warnings through a listener of its own: replace it with a JSON line
  process.removeAllListeners("warning")
  process.on("warning", (warning: Error & { code?: string }) => {
    original(options.redact(lineOf(options.runId, "warn", "node.warning", {
      name: warning.name,
      ...(warning.code === undefined ? {} : { code: warning.code }),
      text: warning.message
    })))
  })
}
