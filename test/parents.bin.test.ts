/**
 * Parent → child streams (issue 14 item 2) through the bin, on a server and on the embedded database:
 * repositories, then the issues of each, as GitHub serves them (`/repos/{owner}/{name}/issues?since=`).
 * Each parent row has its own checkpoint; a new parent row starts from `initial` while the others go
 * on from theirs; a 404 is skipped, not fatal; a parent value can neither leave the configured path
 * nor reach another host; the parent rows are read in chunks.
 */
import { readFileSync } from "node:fs"
import pg from "pg"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { configDir, ferry, summaries } from "./support/cli.js"
import { json, startServer, type TestServer } from "./support/http.js"
import { fileDatabase, serverOnly } from "./support/pg.js"

const db = fileDatabase("ferry_parents")
let api: TestServer

interface Issue {
  readonly id: number
  readonly title: string
  readonly updated_at: string
}
const repos: Array<{ id: number; full_name: string }> = []
const issues = new Map<string, Array<Issue>>()
/** repositories whose issues answer 500 */
const broken = new Set<string>()

beforeAll(async () => {
  api = await startServer((req, res, url) => {
    if (req.headers.authorization !== "Bearer s3cret-token") return json(res, { message: "Bad credentials" }, 401)
    if (url.pathname === "/repos") return json(res, repos)
    const match = /^\/repos\/(.+)\/issues$/.exec(url.pathname)
    const name = match === null ? undefined : decodeURIComponent(match[1]!)
    if (name !== undefined && broken.has(name)) return json(res, { message: "boom" }, 500)
    const list = name === undefined ? undefined : issues.get(name)
    if (list === undefined) return json(res, { message: "Not Found" }, 404)
    const since = url.searchParams.get("since")
    json(res, list.filter((i) => since === null || i.updated_at >= since))
  })
})
afterAll(async () => {
  await api?.close()
})

const config = (childExtra = "", childSource = "") =>
  configDir(`
database: { url: "\${DATABASE_URL}" }
streams:
  - name: issues
    parent: { stream: repos }
    source:
      url: ${api.url}/repos/{parent.full_name}/issues
      auth: { type: bearer, token: "\${TOKEN}" }
      headers: { X-Repo-Id: "{parent.id}" }
      incremental: { cursorField: updated_at, param: since, initial: "2020-01-01T00:00:00Z", order: asc }
      retry: { attempts: 1, base: 10 millis, max: 10 millis }
      ${childSource}
    target:
      table: issues
      primaryKey: [repo, id]
      columns:
        repo: { type: text, from: "{parent.full_name}" }
        id: bigint
        title: text
        updated_at: timestamptz
    ${childExtra}
  - name: repos
    source:
      url: ${api.url}/repos
      auth: { type: bearer, token: "\${TOKEN}" }
    target:
      table: repos
      primaryKey: [id]
      columns: { id: bigint, full_name: text }
`)

const readConfig = (dir: string) => readFileSync(join(dir, "ferry.config.yaml"), "utf8")
/** the one-line error of a run that failed before any stream ran */
const errorLine = (result: { readonly logs: ReadonlyArray<Record<string, any>> }) =>
  String(result.logs.find((l) => l.level === "error")?.msg)
const env = () => ({ DATABASE_URL: db.url, TOKEN: "s3cret-token" })
const run = (dir: string, ...args: Array<string>) => ferry(["run", ...args], { cwd: dir, env: env() })
const issueRequests = () => api.requests.filter((r) => r.url.pathname.endsWith("/issues"))
const states = async () =>
  Object.fromEntries(
    (await db.query(`SELECT parent, cursor FROM ferry.state WHERE stream = 'issues' ORDER BY parent`)).map((r) => [r.parent, r.cursor])
  )

describe("parent → child streams", () => {
  it("reads each parent row's child URL after the parent, with a checkpoint per parent row; a 404 is skipped", async () => {
    repos.push({ id: 1, full_name: "octo/alpha" }, { id: 2, full_name: "octo/beta" }, { id: 3, full_name: "octo/gone" })
    issues.set("octo/alpha", [{ id: 10, title: "a1", updated_at: "2024-01-01T00:00:00Z" }])
    issues.set("octo/beta", [{ id: 10, title: "b1", updated_at: "2024-02-01T00:00:00Z" }])
    const dir = config()
    const first = await run(dir)
    expect(first.code, first.stderr).toBe(0)
    // the parent ran first although the config lists it second
    expect(summaries(first).map((s) => s.stream)).toEqual(["repos", "issues"])
    const [, child] = summaries(first)
    expect(child).toMatchObject({ status: "succeeded", fetched: 2, inserted: 2, parents: 3, parents_skipped: 1, checkpoint: null })
    const skipped = first.logs.find((l) => l.msg === "parent.skipped")
    expect(skipped).toMatchObject({ stream: "issues", parent: "[\"3\"]", reason: expect.stringMatching(/404/) })
    expect(first.stderr).not.toContain("s3cret-token")
    // the path keeps the full name's slash; the header carries the parent's id; the first read starts at initial
    const seen = issueRequests().map((r) => [r.url.pathname, r.headers["x-repo-id"], r.url.searchParams.get("since")])
    expect(seen).toEqual([
      ["/repos/octo/alpha/issues", "1", "2020-01-01T00:00:00Z"],
      ["/repos/octo/beta/issues", "2", "2020-01-01T00:00:00Z"],
      ["/repos/octo/gone/issues", "3", "2020-01-01T00:00:00Z"]
    ])
    expect(await db.query(`SELECT repo, id::int AS id, title FROM issues ORDER BY repo, id`)).toEqual([
      { repo: "octo/alpha", id: 10, title: "a1" },
      { repo: "octo/beta", id: 10, title: "b1" }
    ])
    expect(await states()).toEqual({ "[\"1\"]": "2024-01-01T00:00:00Z", "[\"2\"]": "2024-02-01T00:00:00Z" })

    // a new repository starts from initial; the others go on from their own checkpoints
    repos.push({ id: 4, full_name: "octo/delta" })
    issues.set("octo/delta", [{ id: 1, title: "d1", updated_at: "2021-05-05T00:00:00Z" }])
    issues.get("octo/alpha")!.push({ id: 11, title: "a2", updated_at: "2024-03-01T00:00:00Z" })
    api.requests.length = 0
    const second = await run(dir)
    expect(second.code, second.stderr).toBe(0)
    const since = Object.fromEntries(issueRequests().map((r) => [r.url.pathname, r.url.searchParams.get("since")]))
    expect(since["/repos/octo/alpha/issues"]).toBe("2024-01-01T00:00:00Z")
    expect(since["/repos/octo/beta/issues"]).toBe("2024-02-01T00:00:00Z")
    expect(since["/repos/octo/delta/issues"]).toBe("2020-01-01T00:00:00Z")
    expect(summaries(second)[1]).toMatchObject({ fetched: 4, inserted: 2, unchanged: 2, parents: 4 })
    expect((await states())["[\"4\"]"]).toBe("2021-05-05T00:00:00Z")

    // the child alone reads the parent's table as it stands: no request for the parent
    api.requests.length = 0
    const alone = await run(dir, "--stream", "issues")
    expect(alone.code, alone.stderr).toBe(0)
    expect(api.requests.some((r) => r.url.pathname === "/repos")).toBe(false)
    expect(issueRequests()).toHaveLength(4)
  })

  it("check reads the child's first page for the parent's first row, or says there is none yet", async () => {
    api.requests.length = 0
    const result = await ferry(["check"], { cwd: config(), env: env() })
    expect(result.code, result.stdout + result.stderr).toBe(0)
    expect(result.stdout).toMatch(/^ok {4}issues: 2 record\(s\) on the first page, 0 invalid$/m)
    expect(issueRequests().map((r) => r.url.pathname)).toEqual(["/repos/octo/alpha/issues"])
    const fresh = configDir(readConfig(config()).replaceAll("table: repos", "table: repos_unrun").replace("table: issues", "table: issues_unrun"))
    const none = await ferry(["check"], { cwd: fresh, env: env() })
    expect(none.code, none.stdout + none.stderr).toBe(0)
    expect(none.stdout).toMatch(/^skip {2}issues: no row in repos's table yet to read a child page for \(run repos first\)$/m)
  })

  it("stops at a failing parent row with its exit code, keeping what the others committed", async () => {
    broken.add("octo/beta")
    issues.get("octo/delta")!.push({ id: 2, title: "d2", updated_at: "2022-01-01T00:00:00Z" })
    const result = await run(config(), "--stream", "issues")
    broken.clear()
    expect(result.code).toBe(69)
    expect(summaries(result)[0]).toMatchObject({ status: "failed", exit_code: 69, error: expect.stringMatching(/octo\/beta/) })
    // alpha (before beta) committed; delta (after it) not reached
    expect((await states())["[\"4\"]"]).toBe("2021-05-05T00:00:00Z")
  })

  it("never lets a parent value leave the configured path: a '..' segment is skipped, '?' and '#' stay in the path", async () => {
    repos.push({ id: 5, full_name: "../../admin" }, { id: 6, full_name: "odd/na?me#x" })
    issues.set("odd/na?me#x", [{ id: 1, title: "odd", updated_at: "2023-01-01T00:00:00Z" }])
    api.requests.length = 0
    const result = await run(config())
    expect(result.code, result.stderr).toBe(0)
    expect(api.requests.some((r) => r.url.pathname.includes("admin"))).toBe(false)
    expect(result.logs.find((l) => l.msg === "parent.skipped" && l.parent === "[\"5\"]")).toMatchObject({
      reason: expect.stringMatching(/\{parent\.full_name\}: .*'\.\.'/)
    })
    const odd = issueRequests().find((r) => r.headers["x-repo-id"] === "6")!
    expect(odd.url.pathname).toBe("/repos/odd/na%3Fme%23x/issues")
    expect(odd.url.searchParams.get("since")).toBe("2020-01-01T00:00:00Z")
    expect(await db.query(`SELECT repo FROM issues WHERE title = 'odd'`)).toEqual([{ repo: "odd/na?me#x" }])
  })

  it("a slice (--from) reads every parent row from the slice's start and moves no checkpoint", async () => {
    const before = await states()
    api.requests.length = 0
    const result = await run(config(), "--stream", "issues", "--from", "2021-01-01T00:00:00Z")
    expect(result.code, result.stderr).toBe(0)
    const since = new Set(issueRequests().map((r) => r.url.searchParams.get("since")))
    expect([...since]).toEqual(["2021-01-01T00:00:00Z"])
    expect(await states()).toEqual(before)
  })

  it("status says the child keeps a checkpoint per parent row; reset forgets them all", async () => {
    const dir = config()
    const status = await ferry(["status", "--json"], { cwd: dir, env: env() })
    expect(JSON.parse(status.stdout).streams.find((s: { stream: string }) => s.stream === "issues")).toMatchObject({
      checkpoint: null,
      parent_stream: "repos",
      status: "succeeded"
    })
    expect((await ferry(["status"], { cwd: dir, env: env() })).stdout).toMatch(/issues\s+per repos row\s+succeeded/)
    expect(Object.keys(await states()).length).toBeGreaterThan(2)
    const result = await ferry(["reset", "--stream", "issues"], { cwd: dir, env: env() })
    expect(result.code, result.stderr).toBe(0)
    expect(await states()).toEqual({})
  })
})

describe("parent → child rate limit", () => {
  it("a child without a rateLimit of its own takes turns in its parent's: no window holds more than the limit", async () => {
    const arrivals: Array<number> = []
    const server = await startServer((_req, res, url) => {
      arrivals.push(performance.now())
      if (url.pathname === "/things") return json(res, [{ id: 1 }, { id: 2 }, { id: 3 }])
      json(res, [{ id: 1 }])
    })
    try {
      const dir = configDir(`
database: { url: "\${DATABASE_URL}" }
streams:
  - name: things
    source: { url: ${server.url}/things, rateLimit: { requests: 2, per: 1 second } }
    target: { table: things, primaryKey: [id], columns: { id: bigint } }
  - name: parts
    parent: { stream: things }
    source: { url: "${server.url}/things/{parent.id}/parts" }
    target: { table: parts, primaryKey: [thing, id], columns: { thing: { type: bigint, from: "{parent.id}" }, id: bigint } }
`)
      const result = await ferry(["run"], { cwd: dir, env: { DATABASE_URL: db.url } })
      expect(result.code, result.stderr).toBe(0)
      expect(arrivals).toHaveLength(4)
      // 2 per second across both streams: the 3rd request starts a second after the 1st, the 4th after the 2nd
      expect(arrivals[2]! - arrivals[0]!).toBeGreaterThan(950)
      expect(arrivals[3]! - arrivals[1]!).toBeGreaterThan(950)
    } finally {
      await server.close()
    }
  })
})

describe("parent → child with the file checkpoint store", () => {
  it("keeps a checkpoint per parent row in the file, and resumes each from its own", async () => {
    const dir = configDir(readConfig(config()).replace("database: {", "checkpoint: { store: file, path: ./cp.json }\ndatabase: {")
      .replaceAll("table: issues", "table: issues_f").replaceAll("table: repos", "table: repos_f").replace("primaryKey: [repo, id]", "primaryKey: [repo, id]"))
    const first = await run(dir)
    expect(first.code, first.stderr).toBe(0)
    const file = JSON.parse(readFileSync(join(dir, "cp.json"), "utf8"))
    expect(Object.keys(file.streams.issues)).toEqual(expect.arrayContaining(["public.issues_f [\"1\"]", "public.issues_f [\"2\"]"]))
    expect(file.streams.issues["public.issues_f [\"1\"]"].cursor).toBe("2024-03-01T00:00:00Z")
    api.requests.length = 0
    const second = await run(dir, "--stream", "issues")
    expect(second.code, second.stderr).toBe(0)
    const alpha = issueRequests().find((r) => r.url.pathname === "/repos/octo/alpha/issues")!
    expect(alpha.url.searchParams.get("since")).toBe("2024-03-01T00:00:00Z")
  })
})

describe("parent → child config rules (78, naming the field)", () => {
  const cases: ReadonlyArray<readonly [string, string, string, RegExp]> = [
    ["an unknown parent", "", "", /streams\[0\]\.parent\.stream: no stream "nope"/],
    ["a column the parent has not", "", "params: { x: \"{parent.owner}\" }", /streams\[0\]\.source\.params\.x: \{parent\.owner\}: "owner" is not a column of repos's table \(id, full_name\)/],
    ["write: replace", "", "", /streams\[0\]\.target\.write: a child stream is read one parent row at a time/]
  ]
  it.each(cases)("refuses %s", async (what, extra, source, message) => {
    let dir = config(extra, source)
    if (what === "an unknown parent") dir = configDir(readConfig(dir).replace("parent: { stream: repos }", "parent: { stream: nope }"))
    if (what === "write: replace") {
      dir = configDir(readConfig(dir).replace("table: issues", "table: issues\n      write: replace").replace(/ {6}incremental: .*\n/, ""))
    }
    const result = await run(dir)
    expect(result.code).toBe(78)
    expect(errorLine(result)).toMatch(message)
  })

  it("refuses a placeholder in the host: the credentials would follow a parent value", async () => {
    const dir = configDir(readConfig(config()).replace(`${api.url}/repos/{parent.full_name}/issues`, "http://{parent.full_name}.example.com/issues"))
    const result = await run(dir)
    expect(result.code).toBe(78)
    expect(errorLine(result)).toMatch(/streams\[0\]\.source\.url: \{parent\.…\} may stand in the URL's path or query, not in its scheme, host or port/)
  })

  it("refuses {parent.…} in a stream without a parent", async () => {
    const dir = configDir(readConfig(config()).replace("parent: { stream: repos }", "").replace(`from: "{parent.full_name}"`, "from: name"))
    const result = await run(dir)
    expect(result.code).toBe(78)
    expect(errorLine(result)).toMatch(/streams\[0\]\.source\.url: \{parent\.…\} needs a parent: add parent: \{ stream: <name> \}/)
  })

  it("refuses a stream that is its own ancestor", async () => {
    const dir = configDir(readConfig(config()).replace(
      "  - name: repos\n",
      "  - name: repos\n    parent: { stream: issues }\n"
    ))
    const result = await run(dir)
    expect(result.code).toBe(78)
    expect(errorLine(result)).toMatch(/streams\[\d\]\.parent\.stream: "(issues|repos)" is its own ancestor through "(repos|issues)"/)
  })
})

describe("many parent rows", () => {
  const many = fileDatabase("ferry_parents_many")
  // server only: 1,200 reads on the embedded database take minutes, and the point is the connections
  it.skipIf(serverOnly)("reads 1,200 parent rows in chunks on a few connections, a checkpoint for each", async () => {
    const count = 1200
    const server = await startServer((_req, res, url) => {
      if (url.pathname === "/items") return json(res, Array.from({ length: count }, (_, i) => ({ id: i + 1 })))
      const id = Number(/^\/items\/(\d+)\/notes$/.exec(url.pathname)?.[1])
      json(res, [{ id: 1, at: `2024-01-01T00:00:${String(id % 60).padStart(2, "0")}Z` }])
    })
    try {
      const dir = configDir(`
database: { url: "\${DATABASE_URL}" }
streams:
  - name: items
    source: { url: ${server.url}/items }
    target: { table: items, primaryKey: [id], columns: { id: bigint } }
  - name: notes
    parent: { stream: items }
    source:
      url: ${server.url}/items/{parent.id}/notes
      incremental: { cursorField: at, param: since, initial: "2020-01-01T00:00:00Z" }
    target:
      table: notes
      primaryKey: [item, id]
      columns: { item: { type: bigint, from: "{parent.id}" }, id: bigint, at: timestamptz }
`)
      const sampler = new pg.Client({ connectionString: many.url })
      await sampler.connect()
      let most = 0
      let busy = false
      const sampling = setInterval(() => {
        if (busy) return
        busy = true
        void sampler.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
          .then(({ rows }) => (most = Math.max(most, rows[0].n)), () => undefined)
          .finally(() => (busy = false))
      }, 20)
      const result = await ferry(["run"], { cwd: dir, env: { DATABASE_URL: many.url } })
      clearInterval(sampling)
      await sampler.end()
      expect(result.code, result.stderr).toBe(0)
      expect(summaries(result)[1]).toMatchObject({ stream: "notes", parents: count, parents_skipped: 0, inserted: count })
      expect((await many.query(`SELECT count(DISTINCT item)::int AS n FROM notes`))[0].n).toBe(count)
      expect((await many.query(`SELECT count(*)::int AS n FROM ferry.state WHERE stream = 'notes'`))[0].n).toBe(count)
      // the pool's connections, whatever the number of parent rows (the sampler's own is not counted)
      expect(most).toBeGreaterThan(0)
      expect(most).toBeLessThanOrEqual(4)
    } finally {
      await server.close()
    }
  }, 120_000)
})

describe("parent keys no float can hold", () => {
  const exact = fileDatabase("ferry_parents_exact")
  // server only: 700 child reads on the embedded database take minutes; the point is the keyset's chunk boundary
  it.skipIf(serverOnly)("keys past 2^53 and a timestamptz key cross the chunk boundary exactly, in a database on another time zone", async () => {
    // 700 parents (chunks of 500) keyed (at, id): three instants, so the boundary falls among equal `at`s and the
    // tie is broken by ids a float would round (9007199254740993 = 2^53 + 1 is read as 9007199254740992)
    const instants = ["2024-03-10T01:59:59.123456Z", "2024-03-10T02:00:00Z", "2024-11-03T06:30:00.5Z"]
    const parents = Array.from({ length: 700 }, (_, i) => ({ id: (9007199254740993n + BigInt(i * 2)).toString(), at: instants[i % 3]! }))
    const seen: Array<{ id: string; at: string | null; since: string | null }> = []
    const server = await startServer((_req, res, url) => {
      if (url.pathname === "/items") {
        // the ids as JSON numbers, written by hand: JSON.stringify would have to go through a double
        res.writeHead(200, { "content-type": "application/json" })
        res.end(`[${parents.map((p) => `{"id":${p.id},"at":"${p.at}"}`).join(",")}]`)
        return
      }
      const id = /^\/items\/(\d+)\/notes$/.exec(url.pathname)?.[1]
      if (id === undefined) return json(res, { message: "Not Found" }, 404)
      seen.push({ id, at: url.searchParams.get("at"), since: url.searchParams.get("since") })
      res.writeHead(200, { "content-type": "application/json" })
      res.end(`[{"id":${id},"n":1,"seen_at":"2024-01-01T00:00:00Z"}]`)
    })
    try {
      await exact.query(`ALTER DATABASE "${exact.name}" SET timezone = 'Asia/Kathmandu'`)
      const dir = configDir(`
database: { url: "\${DATABASE_URL}" }
streams:
  - name: items
    source: { url: ${server.url}/items }
    target: { table: items, primaryKey: [at, id], columns: { id: bigint, at: timestamptz } }
  - name: notes
    parent: { stream: items }
    source:
      url: "${server.url}/items/{parent.id}/notes"
      params: { at: "{parent.at}" }
      incremental: { cursorField: seen_at, param: since, initial: "2020-01-01T00:00:00Z" }
    target:
      table: notes
      primaryKey: [item, id]
      columns: { item: { type: bigint, from: "{parent.id}" }, at: { type: timestamptz, from: "{parent.at}" }, id: bigint, n: integer, seen_at: timestamptz }
`)
      const result = await ferry(["run"], { cwd: dir, env: { DATABASE_URL: exact.url } })
      expect(result.code, result.stderr).toBe(0)
      expect(summaries(result)[1]).toMatchObject({ stream: "notes", parents: 700, parents_skipped: 0, inserted: 700 })
      // every parent read once, with its own id and instant (the instant as Postgres writes it, in UTC)
      const asked = seen.map((s) => `${s.id} ${new Date(s.at!).toISOString()}`).sort()
      const wanted = parents.map((p) => `${p.id} ${new Date(p.at).toISOString()}`).sort()
      expect(asked).toEqual(wanted)
      expect(new Set(seen.map((s) => s.at)).size).toBe(3)
      for (const s of seen) expect(s.at).toMatch(/\+00:00$/)
      // the child's columns and the parents' checkpoint keys hold the exact values
      const stored = await exact.query(`SELECT item::text AS item, id::text AS id, to_json(at) #>> '{}' AS at FROM notes`)
      expect(stored.map((r) => `${r.item} ${new Date(r.at).toISOString()}`).sort()).toEqual(wanted)
      for (const r of stored) expect(r.item).toBe(r.id)
      const keys = await exact.query(`SELECT parent FROM ferry.state WHERE stream = 'notes'`)
      expect(keys).toHaveLength(700)
      expect(keys.map((k) => JSON.parse(k.parent)[1]).sort()).toEqual(parents.map((p) => p.id).sort())

      // again: the same 700 parents, each read once more, nothing duplicated
      seen.length = 0
      const again = await ferry(["run", "--stream", "notes"], { cwd: dir, env: { DATABASE_URL: exact.url } })
      expect(again.code, again.stderr).toBe(0)
      expect(summaries(again)[0]).toMatchObject({ parents: 700, inserted: 0, unchanged: 700 })
      expect(seen.map((s) => s.id).sort()).toEqual(parents.map((p) => p.id).sort())
      // each resumed from its own checkpoint
      expect(new Set(seen.map((s) => s.since))).toEqual(new Set(["2024-01-01T00:00:00Z"]))
      expect((await exact.query(`SELECT count(*)::int AS n FROM notes`))[0].n).toBe(700)
    } finally {
      await server.close()
    }
  }, 180_000)
})
