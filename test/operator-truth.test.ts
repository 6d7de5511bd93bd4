/**
 * Issue 11, what the operator is told, through the `ferry` bin: a failed run's summary carries the
 * stored checkpoint; `pagination: none` on a source that says it has more pages warns (the run and
 * `check`); a secret read from a file (`${file:…}`) appears nowhere.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { type Api, makeRecords, startApi } from "./support/api.js"
import { configDir, ferry, start, streamConfig, summaries } from "./support/cli.js"
import { json, startServer, type TestServer } from "./support/http.js"
import { createTestDatabase, serverOnly, type TestDatabase } from "./support/pg.js"
import { expectNoSecrets, ferryTablesText } from "./support/secrets.js"

let db: TestDatabase
let api: Api

beforeAll(async () => {
  db = await createTestDatabase()
  api = await startApi(makeRecords(20))
})
afterAll(async () => {
  await api?.close()
  await db?.drop()
})

const lastRun = async (stream: string) =>
  (await db.query<{ status: string; checkpoint: string | null }>(
    `SELECT status, checkpoint FROM ferry.runs WHERE stream = $1 ORDER BY started_at DESC LIMIT 1`,
    [stream]
  ))[0]

describe("a failed run's summary shows the stored checkpoint", () => {
  it("the source answers 500 on the first page of the second run: summary and ferry.runs carry the first run's checkpoint", async () => {
    const dir = streamConfig({ url: `${api.url}/link`, name: "cp_source_fails" })
    const env = { DATABASE_URL: db.url }
    const first = await ferry(["run"], { cwd: dir, env })
    expect(first.code).toBe(0)
    const stored = summaries(first)[0]!.checkpoint
    expect(stored).toEqual(expect.any(String))
    api.fail = () => 500
    try {
      const second = await ferry(["run"], { cwd: dir, env })
      expect(second.code).toBe(69)
      expect(summaries(second)[0]).toMatchObject({ status: "failed", checkpoint: stored })
      expect(await lastRun("cp_source_fails")).toMatchObject({ status: "failed", checkpoint: stored })
    } finally {
      api.fail = undefined
    }
  })

  it("the target table no longer fits (78 before the checkpoint is loaded): the summary carries the first run's checkpoint", async () => {
    const dir = streamConfig({ url: `${api.url}/link`, name: "cp_target_unfit" })
    const env = { DATABASE_URL: db.url }
    const first = await ferry(["run"], { cwd: dir, env })
    expect(first.code).toBe(0)
    const stored = summaries(first)[0]!.checkpoint
    expect(stored).toEqual(expect.any(String))
    await db.query(`ALTER TABLE cp_target_unfit ALTER COLUMN amount TYPE text`)
    const second = await ferry(["run"], { cwd: dir, env })
    expect(second.code).toBe(78)
    expect(summaries(second)[0]).toMatchObject({ status: "failed", exit_code: 78, checkpoint: stored })
  })

  it.skipIf(serverOnly)("another run holds the stream's lock (75 before the checkpoint is loaded): the summary carries the stored checkpoint", async () => {
    const dir = streamConfig({ url: `${api.url}/link`, name: "cp_lock_held" })
    const env = { DATABASE_URL: db.url }
    const first = await ferry(["run"], { cwd: dir, env })
    expect(first.code).toBe(0)
    const stored = summaries(first)[0]!.checkpoint
    expect(stored).toEqual(expect.any(String))
    api.delayMs = 3000
    try {
      const served = api.requests.length
      const holder = start(["run"], { cwd: dir, env })
      // the holder has the lock once its first request arrives
      while (api.requests.length === served) await new Promise((r) => setTimeout(r, 20))
      const second = await ferry(["run"], { cwd: dir, env })
      expect(second.code).toBe(75)
      expect(summaries(second)[0]).toMatchObject({ status: "failed", exit_code: 75, checkpoint: stored })
      expect((await holder.done).code).toBe(0)
    } finally {
      api.delayMs = 0
    }
  })
})

describe("${file:…}: a secret from a file, through the bin", () => {
  it("the token file's value authenticates and appears nowhere: stdout, stderr (debug), ferry.runs, status, check", async () => {
    const token = "file-secret-TOKEN-4711"
    const dir = configDir(`
database: { url: "\${DATABASE_URL}" }
streams:
  - name: file_secret
    source:
      url: ${api.url}/link
      auth: { type: bearer, token: "\${file:secrets/orders_token}" }
      params: { k: "\${file:\${CREDS}/orders_token}" }
      records: data
      pagination: { type: link }
      incremental: { cursorField: updated_at, param: since, initial: "2000-01-01T00:00:00Z", order: asc }
      retry: { attempts: 1, base: 10 millis, max: 1 second }
    target:
      table: file_secret
      primaryKey: [id]
      columns: { id: text, name: text, amount: numeric, updated_at: timestamptz }
`)
    mkdirSync(join(dir, "secrets"))
    writeFileSync(join(dir, "secrets", "orders_token"), `${token}\n`)
    // the working directory is not the config's: the relative path follows the config file
    const env = { DATABASE_URL: db.url, FERRY_LOG_LEVEL: "debug", CREDS: join(dir, "secrets") }
    const options = { cwd: join(dir, "secrets"), env }
    const config = join(dir, "ferry.config.yaml")
    api.auth = { type: "bearer", token }
    try {
      const first = await ferry(["run", "--config", config], options)
      expect(first.code).toBe(0)
      expect(summaries(first)[0]).toMatchObject({ fetched: 20, inserted: 20 })
      expect(api.requests.at(-1)!.url.searchParams.get("k")).toBe(token)
      // a failing page: its URL (with the token in `k`) goes into the error, the summary and ferry.runs
      api.fail = (url) => (url.searchParams.has("at") ? 500 : undefined)
      const failed = await ferry(["run", "--config", config, "--full-refresh"], options)
      expect(failed.code).toBe(69)
      expect(summaries(failed)[0]!.error).toContain("k=***")
      const status = await ferry(["status", "--config", config], options)
      const statusJson = await ferry(["status", "--config", config, "--json"], options)
      api.fail = () => 500
      const check = await ferry(["check", "--config", config], options)
      expect(check.code).toBe(69)
      const runs = [first, failed, status, statusJson, check]
      expectNoSecrets(runs.flatMap((r) => [r.stdout, r.stderr]).concat(await ferryTablesText(db)), [token])
    } finally {
      api.fail = undefined
      api.auth = undefined
    }
  })

  it("a missing secret file is a 78 naming the field and the file", async () => {
    const dir = streamConfig({ url: `${api.url}/link`, name: "file_missing", auth: `{ type: bearer, token: "\${file:/nonexistent/ferry_token}" }` })
    const result = await ferry(["run"], { cwd: dir, env: { DATABASE_URL: db.url } })
    expect(result.code).toBe(78)
    expect(result.logs.find((l) => l.level === "error")?.msg).toBe(
      "streams[0].source.auth.token: secret file /nonexistent/ferry_token does not exist"
    )
  })
})

describe("pagination that stops while the source says there is more: a warning in the run and in check", () => {
  const records = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `r${i}`, name: `record ${i}` }))
  let server: TestServer
  let run: Awaited<ReturnType<typeof ferry>>
  let check: Awaited<ReturnType<typeof ferry>>

  /** stream name -> [path, pagination and params, the signal its warning names (undefined: no warning)] */
  const cases: Record<string, readonly [string, string, string | undefined]> = {
    link_header: ["/link-header", "pagination: { type: none }", "a Link header with rel=\"next\""],
    body_next: ["/body-next", "pagination: { type: none }", "\"next\" in the body"],
    links_next: ["/links-next", "pagination: { type: none }", "\"links.next\" in the body"],
    meta_next_cursor: ["/meta-next-cursor", "pagination: { type: none }", "\"meta.next_cursor\" in the body"],
    has_more: ["/has-more", "pagination: { type: none }", "\"has_more\": true in the body"],
    nested_envelope: ["/nested", "pagination: { type: none }", "\"result.next\" in the body"],
    per_page_full: ["/plain", "pagination: { type: none }\n      params: { per_page: 3 }", "a page of exactly 3 records, the per_page=3 asked for"],
    top_in_url: ["/plain?$top=3", "pagination: { type: none }", "a page of exactly 3 records, the $top=3 asked for"],
    offset_capped: ["/capped", "pagination: { type: offset, offsetParam: offset, limitParam: limit, limit: 10 }", "\"has_more\": true in the body"],
    complete_page: ["/complete", "pagination: { type: none }\n      params: { limit: 10 }", undefined],
    complete_offset: ["/complete-offset", "pagination: { type: offset, offsetParam: offset, limitParam: limit, limit: 10 }", undefined]
  }

  beforeAll(async () => {
    server = await startServer((_req, res, url) => {
      const next = `${server.url}${url.pathname}?cursor=2`
      switch (url.pathname) {
        case "/link-header":
          return json(res, { data: records(3) }, 200, { link: `<${next}>; rel="next"` })
        case "/body-next":
          return json(res, { data: records(3), next })
        case "/links-next":
          return json(res, { data: records(3), links: { self: `${server.url}/links-next`, next: { href: next } } })
        case "/meta-next-cursor":
          return json(res, { data: records(3), meta: { next_cursor: "c2" } })
        case "/has-more":
          return json(res, { data: records(3), has_more: true })
        case "/nested":
          return json(res, { result: { items: records(3), next } })
        case "/plain":
          return json(res, records(3))
        case "/capped": // the API serves at most 5 whatever the limit, and says there is more
          return json(res, { data: url.searchParams.get("offset") === "0" ? records(5) : [], has_more: true })
        case "/complete": // a complete answer: shorter than the limit, the usual end markers present and empty
          return json(res, { data: records(3), next: null, links: { next: null }, meta: { next_cursor: "" }, has_more: false })
        case "/complete-offset":
          return json(res, { data: url.searchParams.get("offset") === "0" ? records(3) : [], has_more: false })
        default:
          return json(res, { error: "not found" }, 404)
      }
    })
    const streams = Object.entries(cases).map(([name, [path, pagination]]) => `
  - name: ${name}
    source:
      url: ${server.url}${path}
      ${path.startsWith("/plain") ? "" : `records: ${path === "/nested" ? "result.items" : "data"}`}
      ${pagination}
    target: { table: more_${name}, primaryKey: [id] }`).join("")
    const dir = configDir(`database: { url: "\${DATABASE_URL}" }\nstreams:${streams}\n`)
    const env = { DATABASE_URL: db.url }
    run = await ferry(["run"], { cwd: dir, env })
    check = await ferry(["check"], { cwd: dir, env })
  })
  afterAll(async () => {
    await server?.close()
  })

  it("the run and check still succeed (exit 0): every record there is was synced", () => {
    expect(run.code).toBe(0)
    expect(check.code).toBe(0)
    for (const summary of summaries(run)) expect(summary.status).toBe("succeeded")
  })

  it.each(Object.entries(cases))("%s: the run warns once (source.more_pages) naming the signal, check shows a warn line", (name, [, , signal]) => {
    const warnings = run.logs.filter((l) => l.msg === "source.more_pages" && l.stream === name)
    const checkLine = check.stdout.split("\n").find((l) => l.startsWith(`warn  ${name}:`))
    if (signal === undefined) {
      expect(warnings).toEqual([])
      expect(checkLine).toBeUndefined()
      expect(check.stdout).toContain(`ok    ${name}:`)
      return
    }
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatchObject({ level: "warn", signal })
    expect(checkLine).toBe(`warn  ${name}: the source may have more pages than it reads: ${signal}`)
  })
})
