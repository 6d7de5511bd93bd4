/**
 * Commits and wall time of a parent → child run, one build against another (interleaved): a parent stream
 * of N rows and a child stream with an unsorted incremental cursor, 3 records per parent row, one page each,
 * each run into a new database. Commits from pg_stat_database.xact_commit (autocommitted reads count too).
 *
 *   node scripts/bench/parents.mjs PAIRS BIN_A BIN_B [PARENTS=300] [--database-url URL]
 *
 * BIN_A, BIN_B: two copies of bin/ferry.mjs (each beside its dist/). docs/PERFORMANCE.md, "The final
 * checkpoint rides in the last batch".
 */
import { spawn } from "node:child_process"
import { createServer } from "node:http"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import pg from "pg"
const args = process.argv.slice(2)
const urlAt = args.indexOf("--database-url")
const serverUrl = urlAt >= 0 ? args.splice(urlAt, 2)[1] : "postgres://postgres@127.0.0.1:5432/postgres"
const [pairs, A, B, n = "300"] = args
if (B === undefined) {
  process.stderr.write("usage: parents.mjs PAIRS BIN_A BIN_B [PARENTS] [--database-url URL]\n")
  process.exit(64)
}
const dbUrl = (name) => Object.assign(new URL(serverUrl), { pathname: `/${name}` }).toString()
const N = Number(n)
const server = createServer((req, res) => {
  const url = new URL(req.url, "http://x")
  const m = /^\/teams\/(\d+)\/members$/.exec(url.pathname)
  const data = url.pathname === "/teams" ? Array.from({ length: N }, (_, i) => ({ id: i + 1 }))
    : m ? [1, 2, 3].map((k) => ({ id: k, team: Number(m[1]), updated_at: new Date(Date.UTC(2024, 0, 1) + k * 1000).toISOString() })) : []
  res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ data }))
})
await new Promise((r) => server.listen(0, "127.0.0.1", r))
const base = `http://127.0.0.1:${server.address().port}`
const admin = new pg.Client({ connectionString: serverUrl })
await admin.connect()
const dir = mkdtempSync(join(tmpdir(), "ferry-parents-"))
writeFileSync(join(dir, "ferry.config.yaml"), `database: { url: "\${DATABASE_URL}" }
streams:
  - name: teams
    source: { url: "${base}/teams", records: data }
    target: { table: teams, primaryKey: [id], columns: { id: bigint } }
  - name: members
    parent: { stream: teams }
    source:
      url: "${base}/teams/{parent.id}/members"
      records: data
      incremental: { cursorField: updated_at, param: since, initial: "2020-01-01T00:00:00Z" }
    target: { table: members, primaryKey: [team, id], columns: { team: { type: bigint, from: "{parent.id}" }, id: bigint, updated_at: timestamptz } }
`)
const once = async (bin) => {
  await admin.query("DROP DATABASE IF EXISTS ferry_par WITH (FORCE)"); await admin.query("CREATE DATABASE ferry_par")
  const before = (await admin.query("SELECT xact_commit::int AS c FROM pg_stat_database WHERE datname = 'ferry_par'")).rows[0]?.c ?? 0
  const t0 = Date.now()
  const code = await new Promise((r) => spawn(process.execPath, [bin, "run"], { cwd: dir, env: { PATH: process.env.PATH, DATABASE_URL: dbUrl("ferry_par"), FERRY_LOG_FORMAT: "json" }, stdio: "ignore" }).on("exit", r))
  const wall = Date.now() - t0
  await new Promise((r) => setTimeout(r, 700)) // stats flush
  const after = (await admin.query("SELECT xact_commit::int AS c FROM pg_stat_database WHERE datname = 'ferry_par'")).rows[0]?.c ?? 0
  return { code, wall, commits: after - before }
}
for (let i = 0; i < Number(pairs); i++) {
  const a = await once(A), b = await once(B)
  console.log(`A ${JSON.stringify(a)} | B ${JSON.stringify(b)}`)
}
await admin.query("DROP DATABASE IF EXISTS ferry_par WITH (FORCE)")
server.close(); await admin.end()
