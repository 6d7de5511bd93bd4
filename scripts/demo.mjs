#!/usr/bin/env node
// `npm run demo`: Ferry on its embedded Postgres, syncing the demo API twice.
// 1. start the demo API (scripts/demo-server.mjs) on a free loopback port;
// 2. `ferry run` (full load), then `ferry run` again (incremental: only what changed in between);
// 3. show a few synced rows and `ferry status`; stop the server.
// The data lives in .ferry/pgdata beside ferry.config.yaml (FERRY_DATA_DIR overrides); delete it to start over.
import { spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { startDemoServer } from "./demo-server.mjs"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
// where `ferry` puts the embedded database for this config (beside it, unless FERRY_DATA_DIR says)
const dataDir = resolve(root, process.env.FERRY_DATA_DIR || join(".ferry", "pgdata"))
// a second `npm run demo` finds the first one's database: its first run is incremental too
const fresh = !existsSync(join(dataDir, "PG_VERSION"))
// bold only on a terminal: a log or a pipe gets plain text
const bold = (text) => (process.stdout.isTTY ? `\x1b[1m${text}\x1b[0m` : text)
const bin = join(root, "bin", "ferry.mjs")
const server = await startDemoServer({ port: 0 })

// The demo always uses the embedded database, whatever DATABASE_URL says.
const env = { ...process.env, DEMO_API_URL: server.url, DATABASE_URL: "" }
// Asynchronous on purpose: the demo API runs in this process and must keep answering.
const ferry = (title, ...args) => {
  process.stdout.write(`\n${bold(`$ ferry ${args.join(" ")}`)}   # ${title}\n`)
  const child = spawn(process.execPath, [bin, ...args, "--config", join(root, "ferry.config.yaml")], {
    cwd: root,
    env,
    stdio: "inherit"
  })
  return new Promise((resolve) => child.on("close", (code) => resolve(code ?? 1)))
}

let code = 0
try {
  process.stdout.write(
    `demo API on ${server.url}; embedded Postgres in ${dataDir}` +
      (fresh ? " (new)\n" : " (kept from an earlier demo; delete it to start over)\n")
  )
  code = await ferry(
    fresh ? "first run: everything since incremental.initial" : "a run: incremental, from the last demo's checkpoints",
    "run"
  )
  if (code === 0) code = await ferry("again: incremental, only what the API changed since", "run")
  if (code === 0) {
    await ferry("a few synced rows", "sql", "select id, status, amount, currency, customer_email, updated_at from orders order by updated_at desc, id limit 5")
    await ferry("per stream: checkpoint and last run", "status")
  }
} finally {
  await server.close()
}
process.exitCode = code
