/**
 * Bad input through the real bin. (1) Broken configurations and command lines: exit 78 or 64 with
 * ONE stderr line naming the field, variable or flag, no stack trace, no secret, nothing done to the
 * database. (test/config.test.ts checks a larger corpus in-process; this one checks what cron sees.)
 * (2) Records that do not fit the stream: quarantined with a reason and recoverable from
 * ferry.quarantine.record, never a crash, never a silent drop; valid edge cases are inserted.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { createHash, randomBytes } from "node:crypto"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import YAML from "yaml"
import { type Api, makeRecords, startApi } from "./support/api.js"
import { type CliResult, configDir, ferry, summaries } from "./support/cli.js"
import { startServer, type TestServer } from "./support/http.js"
import { createTestDatabase, type TestDatabase } from "./support/pg.js"
import { expectNoSecrets, ferryTablesText, withPassword } from "./support/secrets.js"

const TOKEN = "badinput-bearer-Wm55qR"
const DB_PASSWORD = "badinput-pw-Jc81vD"

let db: TestDatabase
let api: Api
let dbUrl: string

beforeAll(async () => {
  db = await createTestDatabase()
  dbUrl = withPassword(db.url, DB_PASSWORD)
  api = await startApi(makeRecords(12), { auth: { type: "bearer", token: TOKEN } })
  // a table that a config's "identifier" tries to drop
  await db.query(`CREATE TABLE x (id int)`)
})
afterAll(async () => {
  await api?.close()
  await db?.drop()
})

const env = (): Record<string, string> => ({ DATABASE_URL: dbUrl, API_TOKEN: TOKEN })

/** `n` at a time: each case is a child process */
const mapLimit = async <A, B>(items: ReadonlyArray<A>, limit: number, f: (a: A) => Promise<B>): Promise<Array<B>> => {
  const out = new Array<B>(items.length)
  let next = 0
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) {
      const i = next++
      out[i] = await f(items[i]!)
    }
  }))
  return out
}

// --- broken configurations ------------------------------------------------------------------------

/** A valid config; each case breaks one thing in it. */
const valid = () => ({
  database: { url: "${DATABASE_URL}" },
  streams: [{
    name: "orders",
    source: {
      url: `${api.url}/link`,
      auth: { type: "bearer", token: "${API_TOKEN}" },
      records: "data",
      pagination: { type: "link" },
      incremental: { cursorField: "updated_at", param: "since", initial: "2000-01-01T00:00:00Z", order: "asc" },
      retry: { attempts: 2, base: "10 millis", max: "1 second" }
    },
    target: {
      table: "orders",
      primaryKey: ["id"],
      columns: { id: "text", name: "text", amount: "numeric", updated_at: "timestamptz" } as Record<string, unknown>
    }
  }] as Array<any>
})
type Valid = ReturnType<typeof valid>
const s0 = (c: Valid) => c.streams[0]

interface ConfigCase {
  readonly name: string
  /** the config text, or a change to the valid config */
  readonly config: string | ((c: Valid) => void)
  readonly file?: string
  /** variables removed from the environment */
  readonly unset?: ReadonlyArray<string>
  readonly args?: ReadonlyArray<string>
  /** what the one line must contain: the field path or the variable */
  readonly names: string
}

const yamlOf = (change: (c: Valid) => void) => {
  const c = valid()
  change(c)
  return YAML.stringify(c)
}

const jsonOf = (change: (c: Valid) => void) => {
  const c = valid()
  change(c)
  return JSON.stringify(c, null, 2)
}

/** an own key `__proto__` (an assignment would set the prototype instead) */
const withProto = (map: object, value: unknown) =>
  Object.defineProperty(map, "__proto__", { value, enumerable: true, writable: true, configurable: true })

const configCases: ReadonlyArray<ConfigCase> = [
  { name: "YAML: bad indentation", config: "streams:\n  - name: a\n   source: 1\n", names: "line 3" },
  { name: "YAML: a tab for indentation", config: "streams:\n\t- name: a\n", names: "invalid YAML" },
  { name: "YAML: unclosed flow mapping", config: "database: { url: x\nstreams: []\n", names: "invalid YAML" },
  { name: "YAML: duplicate key", config: () => {}, names: "Map keys must be unique", file: "dup" },
  { name: "JSON: trailing comma", config: "{\n  \"streams\": [],\n}", file: "ferry.config.json", names: "line 3" },
  { name: "an empty file", config: "", names: "streams" },
  { name: "unknown top-level key (typo)", config: (c) => ((c as any).databse = { url: "x" }), names: "databse" },
  { name: "unknown key in source", config: (c) => (s0(c).source.pagnation = { type: "link" }), names: "streams[0].source.pagnation" },
  { name: "unknown key in target", config: (c) => (s0(c).target.primarykey = ["id"]), names: "streams[0].target.primarykey" },
  { name: "url of the wrong type", config: (c) => (s0(c).source.url = 42), names: "streams[0].source.url" },
  { name: "streams is a mapping", config: (c) => ((c as any).streams = { orders: {} }), names: "streams" },
  { name: "primaryKey is not a list", config: (c) => (s0(c).target.primaryKey = 7), names: "streams[0].target.primaryKey" },
  { name: "maxInvalid is a word", config: (c) => (s0(c).maxInvalid = "many"), names: "streams[0].maxInvalid" },
  { name: "retry.attempts is a word", config: (c) => (s0(c).source.retry.attempts = "three"), names: "streams[0].source.retry.attempts" },
  { name: "bad duration: 30 secs", config: (c) => (s0(c).source.timeout = "30 secs"), names: "streams[0].source.timeout" },
  { name: "bad duration: negative lookback", config: (c) => (s0(c).source.incremental.lookback = "-5 minutes"), names: "streams[0].source.incremental.lookback" },
  { name: "bad duration: a boolean", config: (c) => (s0(c).source.retry.base = true), names: "streams[0].source.retry.base" },
  { name: "missing variable: the token", config: () => {}, unset: ["API_TOKEN"], names: "API_TOKEN" },
  { name: "missing variable: the database URL", config: () => {}, unset: ["DATABASE_URL"], names: "DATABASE_URL" },
  { name: "missing variable inside the source URL", config: (c) => (s0(c).source.url = "${API_BASE}/items"), names: "API_BASE" },
  { name: "unterminated ${", config: (c) => (s0(c).source.params = { q: "${API_TOKEN" }), names: "streams[0].source.params.q" },
  { name: "duplicate stream names", config: (c) => c.streams.push(structuredClone(s0(c))), names: "streams[1].name" },
  { name: "table name with SQL in it", config: (c) => (s0(c).target.table = "orders; drop table x"), names: "streams[0].target.table" },
  { name: "stream name with a quote", config: (c) => (s0(c).name = "or\"ders"), names: "streams[0].name" },
  { name: "schema with SQL in it", config: (c) => ((c.database as any).schema = "public; drop table x"), names: "database.schema" },
  { name: "column name with a space", config: (c) => (s0(c).target.columns["bad name"] = "text"), names: "bad name" },
  { name: "unsupported column type money", config: (c) => (s0(c).target.columns.amount = "money"), names: "streams[0].target.columns.amount" },
  { name: "unsupported column type text[]", config: (c) => (s0(c).target.columns.name = "text[]"), names: "streams[0].target.columns.name" },
  { name: "unknown pagination type", config: (c) => (s0(c).source.pagination = { type: "sideways" }), names: "streams[0].source.pagination.type" },
  { name: "unknown auth type", config: (c) => (s0(c).source.auth = { type: "oauth", token: "${API_TOKEN}" }), names: "streams[0].source.auth.type" },
  { name: "unknown checkpoint store", config: (c) => ((c as any).checkpoint = { store: "redis" }), names: "checkpoint.store" },
  { name: "unknown order", config: (c) => (s0(c).source.incremental.order = "desc"), names: "streams[0].source.incremental.order" },
  { name: "primary key not a column", config: (c) => (s0(c).target.primaryKey = ["uuid"]), names: "streams[0].target.primaryKey[0]" },
  { name: "no column for the cursor field", config: (c) => delete s0(c).target.columns.updated_at, names: "streams[0].target.columns" },
  { name: "database URL of another scheme", config: (c) => (c.database.url = `mysql://u:${DB_PASSWORD}@h/db`), names: "database.url" },
  { name: "header name with a space", config: (c) => (s0(c).source.headers = { "X Key": "v" }), names: "streams[0].source.headers" },
  { name: "offset pagination with limit 0", config: (c) => (s0(c).source.pagination = { type: "offset", limit: 0 }), names: "streams[0].source.pagination.limit" },
  // a map with a `__proto__` key lost it silently (a column gone, exit 0): now 78 naming it, in YAML and JSON
  { name: "a column named __proto__ (YAML)", config: (c) => withProto(s0(c).target.columns, "text"), names: "streams[0].target.columns.__proto__" },
  { name: "a column named __proto__ (JSON)", config: (c) => withProto(s0(c).target.columns, "text"), file: "ferry.config.json", names: "streams[0].target.columns.__proto__" },
  { name: "a header named __proto__", config: (c) => (s0(c).source.headers = withProto({}, "v")), names: "streams[0].source.headers.__proto__" },
  { name: "a parameter named __proto__ (JSON)", config: (c) => (s0(c).source.params = withProto({}, "v")), file: "ferry.config.json", names: "streams[0].source.params.__proto__" },
  { name: "an incremental parameter named __proto__", config: (c) => (s0(c).source.incremental = { ...s0(c).source.incremental, param: undefined, params: withProto({}, "gte.{cursor}") }), names: "streams[0].source.incremental.params.__proto__" },
  { name: "__proto__ in database", config: (c) => withProto(c.database, { x: 1 }), names: "database.__proto__" },
  { name: "--config names a file that does not exist", config: () => {}, args: ["run", "--config", "nope.yaml"], names: "nope.yaml" },
  { name: "FERRY_CONFIG names a file that does not exist", config: () => {}, args: ["check"], names: "FERRY_CONFIG" }
]

const configText = (c: ConfigCase): string => {
  if (typeof c.config === "string") return c.config
  if (c.file === "ferry.config.json") return jsonOf(c.config)
  const text = yamlOf(c.config)
  return c.file === "dup" ? text + "database: { url: x }\n" : text
}

/** One non-empty stderr line, JSON, at level error, naming the problem; no stack; no secret. */
const expectOneLine = (result: CliResult, code: number, names: string) => {
  expect(result.code).toBe(code)
  const lines = result.stderr.split("\n").filter((l) => l !== "")
  expect(lines).toHaveLength(1)
  const line = JSON.parse(lines[0]!)
  expect(line).toMatchObject({ level: "error", exit_code: code })
  expect(line.msg).toContain(names)
  expect(result.stderr).not.toMatch(/\n\s+at |Error:/)
  expect(result.stdout).toBe("")
  expectNoSecrets([result.stdout, result.stderr], [TOKEN, DB_PASSWORD])
}

describe("broken configurations through the bin", () => {
  it("the corpus has at least 30 broken configurations, and the unbroken config syncs", async () => {
    expect(configCases.length).toBeGreaterThanOrEqual(30)
    const ok = await ferry(["run"], { cwd: configDir(YAML.stringify(valid())), env: env() })
    expect(ok.code).toBe(0)
    expect(summaries(ok)[0]).toMatchObject({ fetched: 12, inserted: 12 })
    await db.query(`DROP TABLE orders; DROP SCHEMA ferry CASCADE`)
  })

  it(`each exits 78 with one line naming the field or variable (${configCases.length} cases, 4 at a time)`, async () => {
    const results = await mapLimit(configCases, 4, async (c) => {
      const dir = configDir(configText(c))
      const json = c.file === "ferry.config.json"
      const file = join(dir, json ? "ferry.config.json" : "ferry.config.yaml")
      if (json) writeFileSync(file, configText(c))
      const vars: Record<string, string | undefined> = env()
      for (const name of c.unset ?? []) delete vars[name]
      if (c.name.startsWith("FERRY_CONFIG")) vars.FERRY_CONFIG = join(dir, "missing.yaml")
      const args = c.args ?? (file.endsWith(".json") ? ["run", "--config", file] : ["run"])
      return { c, result: await ferry(args, { cwd: dir, env: vars }) }
    })
    for (const { c, result } of results) {
      try {
        expectOneLine(result, 78, c.names)
      } catch (e) {
        throw new Error(`case "${c.name}": ${(e as Error).message}\nstderr: ${result.stderr}`)
      }
    }
    // no broken config reached the database: no Ferry tables, and `x` is still there
    const tables = await db.query(
      `SELECT table_schema || '.' || table_name AS t FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`
    )
    expect(tables.map((r) => r.t)).toEqual(["public.x"])
  })
})

describe("broken command lines through the bin", () => {
  const invocations: ReadonlyArray<{ readonly args: ReadonlyArray<string>; readonly names: string }> = [
    { args: ["frobnicate"], names: "unknown command \"frobnicate\"" },
    { args: ["run", "--bogus"], names: "--bogus" },
    { args: ["run", "--config"], names: "--config" },
    { args: ["run", "--stream"], names: "--stream" },
    { args: ["run", "extra"], names: "unexpected argument \"extra\"" },
    { args: ["status", "--dry-run"], names: "status does not take --dry-run" },
    { args: ["check", "--full-refresh"], names: "check does not take --full-refresh" },
    { args: ["reset"], names: "reset needs exactly one --stream" },
    { args: ["reset", "--stream", "a", "--stream", "b"], names: "reset needs exactly one --stream" },
    { args: ["sql"], names: "sql needs one statement" },
    { args: ["run", "--stream", "nope"], names: "unknown stream \"nope\"" },
    { args: ["reset", "--stream", "nope"], names: "unknown stream \"nope\"" }
  ]

  it(`each exits 64 with one line naming the problem (${invocations.length} cases, 4 at a time)`, async () => {
    const dir = configDir(YAML.stringify(valid()))
    const results = await mapLimit(invocations, 4, async (c) => ({ c, result: await ferry(c.args, { cwd: dir, env: env() }) }))
    for (const { c, result } of results) {
      try {
        expectOneLine(result, 64, c.names)
      } catch (e) {
        throw new Error(`ferry ${c.args.join(" ")}: ${(e as Error).message}\nstderr: ${result.stderr}`)
      }
    }
  })
})

// --- records that do not fit ------------------------------------------------------------------------

/**
 * Each record as the JSON text the server sends (so `1e400`, `\ud800` and `\u0000` reach Ferry's parser
 * as written), and whether it must be inserted.
 */
const deep = (levels: number) => "{\"a\":".repeat(levels) + "1" + "}".repeat(levels)
const BIG_3MB = "é".repeat(1_500_000) // 3 MB of UTF-8
const BIG_5MB = "z".repeat(5 * 1024 * 1024)
// random, so TOAST cannot compress it under the btree limit of a primary key
const HUGE_KEY = randomBytes(8192).toString("hex")
const ts = (i: number) => `"2024-02-01T00:00:${String(i).padStart(2, "0")}Z"`
const rec = (id: string, i: number, fields = "") =>
  `{"id":"${id}","name":"n ${id}","amount":1.5,"qty":1,"updated_at":${ts(i)},"doc":{"k":"v"}${fields}}`

const served: ReadonlyArray<{ readonly tag: string; readonly text: string; readonly insert: boolean }> = [
  { tag: "plain", text: rec("v_plain", 1), insert: true },
  { tag: "emoji", text: rec("v_emoji", 2).replace("\"n v_emoji\"", "\"👩‍👩‍👧‍👦 🚀 \\ud83d\\ude00\"").replace("{\"k\":\"v\"}", "{\"e\":\"🦀\"}"), insert: true },
  { tag: "rtl", text: rec("v_rtl", 3).replace("\"n v_rtl\"", "\"مرحبا بالعالم \u202e עברית \u200f\""), insert: true },
  { tag: "big text", text: rec("v_big3", 4).replace("\"n v_big3\"", JSON.stringify(BIG_3MB)), insert: true },
  { tag: "big jsonb", text: rec("v_big5", 5).replace("{\"k\":\"v\"}", JSON.stringify({ blob: BIG_5MB })), insert: true },
  { tag: "null optional", text: rec("v_null", 6).replace("\"n v_null\"", "null"), insert: true },
  { tag: "nesting 100", text: rec("v_deep100", 7).replace("{\"k\":\"v\"}", deep(100)), insert: true },
  { tag: "numeric as text", text: rec("v_numtext", 8).replace("1.5", "\"12.50\""), insert: true },
  { tag: "wrong type", text: rec("q_type", 10).replace("1.5", "\"lots\""), insert: false },
  { tag: "object for number", text: rec("q_obj", 11).replace("1.5", "{\"a\":1}"), insert: false },
  { tag: "boolean for number", text: rec("q_bool", 12).replace("1.5", "true"), insert: false },
  { tag: "integer out of range", text: rec("q_int", 13).replace("\"qty\":1", "\"qty\":3000000000"), insert: false },
  { tag: "fraction for integer", text: rec("q_frac", 14).replace("\"qty\":1", "\"qty\":1.5"), insert: false },
  { tag: "missing primary key", text: rec("q_nopk", 15).replace("\"id\":\"q_nopk\",", ""), insert: false },
  { tag: "null primary key", text: rec("q_nullpk", 16).replace("\"q_nullpk\"", "null"), insert: false },
  { tag: "missing cursor", text: rec("q_nocursor", 17).replace(`"updated_at":${ts(17)},`, ""), insert: false },
  { tag: "unparsable cursor", text: rec("q_badcursor", 18).replace(ts(18), "\"yesterday\""), insert: false },
  { tag: "NaN string", text: rec("q_nan", 19).replace("1.5", "\"NaN\""), insert: false },
  // numeric and jsonb hold 1e400 exactly (it is no longer parsed to Infinity)
  { tag: "1e400 in numeric", text: rec("v_inf", 20).replace("1.5", "1e400"), insert: true },
  { tag: "1e400 in jsonb", text: rec("v_infjson", 21).replace("{\"k\":\"v\"}", "{\"x\":-1e400}"), insert: true },
  { tag: "nesting 1000", text: rec("q_deep", 22).replace("{\"k\":\"v\"}", deep(1000)), insert: false },
  { tag: "lone surrogate in text", text: rec("q_surr", 23).replace("\"n q_surr\"", "\"a\\ud800b\""), insert: false },
  { tag: "lone surrogate in jsonb", text: rec("q_surrjson", 24).replace("{\"k\":\"v\"}", "{\"s\":\"\\udc00\"}"), insert: false },
  { tag: "NUL in text", text: rec("q_nul", 25).replace("\"n q_nul\"", "\"a\\u0000b\""), insert: false },
  { tag: "NUL in jsonb", text: rec("q_nuljson", 26).replace("{\"k\":\"v\"}", "{\"k\":\"a\\u0000b\"}"), insert: false },
  { tag: "NUL in a jsonb key", text: rec("q_nulkey", 27).replace("{\"k\":\"v\"}", "{\"k\\u0000\":1}"), insert: false },
  { tag: "primary key too large for its index", text: rec("q_hugekey", 28).replace("\"q_hugekey\"", `"${HUGE_KEY}"`), insert: false },
  { tag: "nesting 3000", text: rec("q_deep3000", 29).replace("{\"k\":\"v\"}", deep(3000)), insert: false },
  {
    tag: "long numbers in a quarantined record",
    text: rec("q_long", 30).replace("\"qty\":1", "\"qty\":12345678901234567890")
      .replace("{\"k\":\"v\"}", "{\"n\":-1.23456789012345678901e-5,\"inf\":1e400,\"tiny\":1e-400}"),
    insert: false
  },
  { tag: "1e400 for an integer", text: rec("q_intinf", 31).replace("\"qty\":1", "\"qty\":1e400"), insert: false },
  { tag: "a number, not an object", text: "42", insert: false },
  { tag: "an array, not an object", text: "[1,2]", insert: false },
  { tag: "null record", text: "null", insert: false }
]


describe("records that do not fit the stream", () => {
  let server: TestServer
  beforeAll(async () => {
    const body = `{"data":[${served.map((s) => s.text).join(",")}]}`
    server = await startServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" })
      res.end(body)
    })
  })
  afterAll(() => server?.close())

  it("are quarantined with a reason and recoverable; valid edge cases are inserted; the counts add up", async () => {
    const dir = configDir(`
database: { url: "\${DATABASE_URL}" }
streams:
  - name: weird
    source:
      url: ${server.url}/weird
      auth: { type: bearer, token: "\${API_TOKEN}" }
      records: data
      pagination: { type: none }
      incremental: { cursorField: updated_at, param: since, initial: "2000-01-01T00:00:00Z" }
    target:
      table: weird
      primaryKey: [id]
      columns: { id: text, name: text, amount: numeric, qty: integer, updated_at: timestamptz, doc: jsonb }
    maxInvalid: 1000
`)
    const result = await ferry(["run"], { cwd: dir, env: env() })
    expect(result.stderr).not.toMatch(/\n\s+at /)
    expect(result.code, result.stderr.slice(0, 2000)).toBe(0)
    const inserted = served.filter((s) => s.insert)
    const rejected = served.filter((s) => !s.insert)
    const [summary] = summaries(result)
    expect(summary).toMatchObject({
      status: "succeeded",
      fetched: served.length,
      inserted: inserted.length,
      updated: 0,
      unchanged: 0,
      quarantined: rejected.length
    })
    expect(summary!.fetched).toBe(summary!.inserted + summary!.updated + summary!.unchanged + summary!.quarantined)

    // inserted, value for value (the big ones compared by length and digest in SQL)
    const rows = await db.query(
      `SELECT id, CASE WHEN length(name) > 1000 THEN md5(name) ELSE name END AS name,
              CASE WHEN length(doc::text) > 1000 THEN md5(doc->>'blob') ELSE doc::text END AS doc, amount::text AS amount
       FROM weird ORDER BY id`
    )
    const raws = inserted.map((s) => JSON.parse(s.text) as Record<string, any>)
    const md5 = (t: string) => createHash("md5").update(t, "utf8").digest("hex")
    expect(rows.map((r) => r.id)).toEqual(raws.map((r) => r.id).sort())
    for (const raw of raws) {
      const row = rows.find((r) => r.id === raw.id)!
      expect(row.name).toBe(raw.name === null ? null : raw.name.length > 1000 ? md5(raw.name) : raw.name)
      if (raw.doc.blob !== undefined) expect(row.doc).toBe(md5(raw.doc.blob))
      else expect(JSON.parse(row.doc)).toEqual(raw.doc)
      expect(Number(row.amount)).toBe(Number(raw.amount))
    }

    // quarantined: one row each, with a reason, and the raw record as received in `record`: these
    // texts are compact JSON in the form Ferry writes, so byte for byte (3,000 levels, every digit, 1e400)
    const quarantined = await db.query<{ reason: string; record: string; run_id: string }>(
      `SELECT reason, record, run_id FROM ferry.quarantine WHERE stream = 'weird' ORDER BY id`
    )
    expect(quarantined).toHaveLength(rejected.length)
    const remaining = [...quarantined]
    for (const s of rejected) {
      const i = remaining.findIndex((q) => q.record === s.text)
      expect(i, `quarantine row for "${s.tag}"`).toBeGreaterThanOrEqual(0)
      const [q] = remaining.splice(i, 1)
      expect(q!.reason.length, `reason for "${s.tag}"`).toBeGreaterThan(5)
      expect(q!.run_id).toBe(summary!.run_id)
    }
    // the reasons say what is wrong
    const reasonOf = (id: string) => quarantined.find((q) => q.record.startsWith(`{"id":"${id}"`))?.reason
    expect(reasonOf("q_type")).toContain("amount")
    expect(reasonOf("q_nocursor")).toContain("cursor")
    expect(reasonOf("q_deep")).toContain("nested deeper")
    expect(reasonOf("q_deep3000")).toContain("nested deeper")
    expect(reasonOf("q_long")).toBe("qty: 12345678901234567890 is out of range for integer")
    expect(reasonOf("q_intinf")).toBe("qty: 1e400 is out of range for integer")
    expect(reasonOf("q_nul")).toContain("NUL")
    expect(reasonOf("q_surr")).toMatch(/surrogate|Unicode|invalid/i)
    expect(reasonOf(HUGE_KEY)).toMatch(/index row|exceeds/)
    // numeric and jsonb keep 1e400 with every digit
    const [inf] = await db.query(`SELECT amount::text AS amount, (SELECT doc::text FROM weird WHERE id = 'v_infjson') AS doc FROM weird WHERE id = 'v_inf'`)
    expect(inf).toEqual({ amount: `1${"0".repeat(400)}`, doc: `{"x": -1${"0".repeat(400)}}` })

    const [run] = await db.query(`SELECT status, fetched, inserted, quarantined FROM ferry.runs WHERE stream = 'weird'`)
    expect(run).toEqual({ status: "succeeded", fetched: String(served.length), inserted: String(inserted.length), quarantined: String(rejected.length) })
    expectNoSecrets([result.stdout, result.stderr, ...(await ferryTablesText(db))], [TOKEN, DB_PASSWORD])
  })
})
