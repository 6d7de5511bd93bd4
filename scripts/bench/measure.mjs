/**
 * Running a process the way the benchmark measures it: wall time from spawn to exit (this process's
 * clock) and peak RSS from `/usr/bin/time` (the kernel's maxrss of the child, VmHWM).
 */
import { spawn } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import pg from "pg"

const TIME = "/usr/bin/time"
export const haveTime = existsSync(TIME)

/**
 * Runs `command args` to exit. Returns its wall time (ms), peak RSS (MB, when /usr/bin/time exists),
 * exit code and output.
 */
export const run = (command, args, options = {}) =>
  new Promise((resolve, reject) => {
    const dir = mkdtempSync(join(tmpdir(), "ferry-bench-time-"))
    const timeFile = join(dir, "time")
    const [cmd, argv] = haveTime ? [TIME, ["-f", "%M", "-o", timeFile, command, ...args]] : [command, args]
    const started = performance.now()
    const child = spawn(cmd, argv, { cwd: options.cwd, env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += d))
    child.stderr.on("data", (d) => (stderr += d))
    child.on("error", reject)
    child.on("close", (code) => {
      const wallMs = performance.now() - started
      let rssMb
      try {
        const lines = readFileSync(timeFile, "utf8").trim().split("\n")
        rssMb = Number(lines[lines.length - 1]) / 1024
      } catch {
        rssMb = undefined
      }
      rmSync(dir, { recursive: true, force: true })
      resolve({ code, wallMs, rssMb, stdout, stderr })
    })
  })

/** Like `run`, but fails when the process does not exit 0. */
export const runOk = async (command, args, options = {}) => {
  const result = await run(command, args, options)
  if (result.code !== 0) {
    throw new Error(`${command} ${args.join(" ")} exited ${result.code}\n${result.stderr.slice(-2000)}`)
  }
  return result
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

/** Starts a child that prints one JSON line when ready (the source server); returns that line and the child. */
export const startReady = (command, args) =>
  new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "inherit"] })
    let out = ""
    child.on("error", reject)
    child.on("exit", (code) => reject(new Error(`${args.join(" ")} exited ${code} before it was ready`)))
    child.stdout.on("data", (d) => {
      out += d
      const nl = out.indexOf("\n")
      if (nl >= 0) {
        child.removeAllListeners("exit")
        resolve({ child, ready: JSON.parse(out.slice(0, nl)) })
      }
    })
  })

/** One statement on a fresh connection (CREATE/DROP DATABASE for the bench's own database). */
export const adminQuery = async (url, text) => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query(text)
  } finally {
    await client.end()
  }
}
