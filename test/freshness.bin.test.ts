/**
 * `ferry check --fresh` / `--max-age`, the dead man's switch, through the bin: fresh, stale and never
 * run streams, the flag over `maxAge:`, the JSON verdicts, bad ages (64 / 78), runs of a second config's
 * stream of the same name on the same database not counting, and that the sources are not asked.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type Api, makeRecords, startApi } from "./support/api.js"
import { configDir, ferry, streamConfig } from "./support/cli.js"
import { embeddedDataDir, fileDatabase, usingServer } from "./support/pg.js"

const db = fileDatabase("ferry_fresh")
let api: Api
const dirs: Array<string> = []

beforeAll(async () => {
  api = await startApi(makeRecords(5))
})
afterAll(async () => {
  await api?.close()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

const config = (o: { table?: string; maxAge?: string; url?: string } = {}) => {
  const dir = streamConfig({
    url: o.url ?? `${api.url}/link`,
    name: "items",
    ...(o.table === undefined ? {} : { table: o.table }),
    ...(o.maxAge === undefined ? {} : { extra: `    maxAge: ${o.maxAge}` })
  })
  dirs.push(dir)
  return join(dir, "ferry.config.yaml")
}

const run = (file: string, ...args: Array<string>) =>
  ferry([...args, "--config", file], { env: { DATABASE_URL: db.url } })

describe("ferry check --fresh", () => {
  let file: string
  beforeAll(async () => {
    file = config({ maxAge: "2h" })
    const synced = await run(file, "run")
    expect(synced.code, synced.stderr).toBe(0)
  })

  it("0 for a stream whose last success is within its maxAge, without asking the source", async () => {
    const served = api.pagesServed
    const result = await run(file, "check", "--fresh")
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toMatch(/^ok {4}items: last success \d{4}-\d\d-\d\dT[\d:.]+Z, \d+s ago \(max age 2h\)$/m)
    expect(api.pagesServed).toBe(served)
  })

  it("2 and STALE once the last success is older; --max-age overrides maxAge:", async () => {
    await db.query(`UPDATE ferry.runs SET finished_at = finished_at - interval '3 hours 5 minutes' WHERE status = 'succeeded'`)
    const stale = await run(file, "check", "--fresh")
    expect(stale.code, stale.stderr).toBe(2)
    expect(stale.stdout).toMatch(/^STALE items: last success .*, 3h 5m ago \(max age 2h\)$/m)
    const wider = await run(file, "check", "--max-age", "4h")
    expect(wider.code, wider.stdout).toBe(0)
    const narrower = await run(file, "check", "--max-age", "90 minutes", "--stream", "items")
    expect(narrower.code).toBe(2)
    expect(narrower.stdout).toContain("(max age 90 minutes)")
  })

  it("a slice (--from/--to) that succeeds does not make a stale stream fresh", async () => {
    const stale = await run(file, "check", "--fresh")
    expect(stale.code, stale.stdout).toBe(2)
    const slice = await run(file, "run", "--from", "2024-01-01T00:00:00Z", "--to", "2024-01-02T00:00:00Z")
    expect(slice.code, slice.stderr).toBe(0)
    expect(await db.query(`SELECT count(*)::int AS n FROM ferry.runs WHERE slice AND status = 'succeeded'`)).toEqual([{ n: 1 }])
    const still = await run(file, "check", "--fresh")
    expect(still.code, still.stdout).toBe(2)
    expect(still.stdout).toMatch(/^STALE items: last success .*, 3h 5m ago \(max age 2h\)$/m)
  })

  it("a failed run is not a success; --json gives the verdict per stream", async () => {
    const failing = config({ url: `${api.url}/no-such-route`, table: "items_failing" })
    expect((await run(failing, "run")).code).toBe(69)
    const result = await run(failing, "check", "--max-age", "1d", "--json")
    expect(result.code).toBe(2)
    expect(JSON.parse(result.stdout)).toEqual({
      database: expect.any(String),
      ok: false,
      streams: [{ stream: "items", last_success: null, age_seconds: null, max_age: "1d", max_age_seconds: 86400, ok: false }]
    })
  })

  it("a second config's stream of the same name on the same database: its own runs only", async () => {
    // `items` into another table: the first config's successes do not make it fresh
    const other = config({ table: "items_other", maxAge: "2h" })
    const before = await run(other, "check", "--fresh")
    expect(before.code).toBe(2)
    expect(before.stdout).toContain("STALE items: never succeeded (max age 2h)")
    expect((await run(other, "run")).code).toBe(0)
    const after = await run(other, "check", "--fresh", "--json")
    expect(after.code, after.stdout).toBe(0)
    const [verdict] = JSON.parse(after.stdout).streams
    expect(verdict).toMatchObject({ stream: "items", ok: true, max_age: "2h", max_age_seconds: 7200 })
    expect(verdict.age_seconds).toBeLessThan(60)
    expect(Date.parse(verdict.last_success)).toBeGreaterThan(Date.now() - 60_000)
  })
})

describe("ferry check --fresh: a child stream", () => {
  it("is judged by its own runs, not its parent's", async () => {
    const dir = configDir(`
database: { url: "\${DATABASE_URL}" }
streams:
  - name: family
    source: { url: "${api.url}/link", records: data, pagination: { type: link } }
    target: { table: family, primaryKey: [id], columns: { id: text, name: text } }
    maxAge: 1h
  - name: members
    parent: { stream: family }
    source: { url: "${api.url}/link?of={parent.id}", records: data, pagination: { type: link } }
    target: { table: members, primaryKey: [item, id], columns: { item: { type: text, from: "{parent.id}" }, id: text } }
    maxAge: 1h
`)
    dirs.push(dir)
    const file = join(dir, "ferry.config.yaml")
    expect((await run(file, "run", "--stream", "family")).code).toBe(0)
    const parentOnly = await run(file, "check", "--fresh")
    expect(parentOnly.code).toBe(2)
    expect(parentOnly.stdout).toMatch(/^ok {4}family: last success /m)
    expect(parentOnly.stdout).toContain("STALE members: never succeeded (max age 1h)")
    expect((await run(file, "run")).code).toBe(0)
    const both = await run(file, "check", "--fresh")
    expect(both.code, both.stdout).toBe(0)
    expect(both.stdout).toMatch(/^ok {4}members: last success /m)
  })
})

describe("ferry check --fresh: bad input", () => {
  it("64 naming the value for a bad --max-age; 64 for --json without a freshness flag", async () => {
    const file = config()
    for (const bad of ["0", "2x", "-1h", "soon"]) {
      const result = await run(file, "check", `--max-age=${bad}`)
      expect(result.code).toBe(64)
      expect(result.stderr).toContain(`--max-age \\"${bad}\\": expected an age like`)
    }
    expect((await run(file, "check", "--json")).code).toBe(64)
    // a value that starts with a dash, not glued with `=`: node's parser refuses it; one short line says how
    const dashed = await run(file, "check", "--max-age", "-1h")
    expect(dashed.code).toBe(64)
    expect(dashed.logs[0]?.msg).toMatch(/^option --max-age needs a value \(one starting with "-" is written --max-age=VALUE\)/)
  })

  it("78 naming the field for a bad maxAge:, and 64 for --fresh when no stream has one", async () => {
    const bad = await run(config({ maxAge: "soon" }), "check", "--fresh")
    expect(bad.code).toBe(78)
    expect(bad.logs[0]?.msg).toMatch(/^streams\[0\]\.maxAge: expected an age like "2h"/)
    const none = await run(config(), "check", "--fresh")
    expect(none.code).toBe(64)
    expect(none.logs[0]?.msg).toContain("no selected stream has maxAge")
  })

  it.skipIf(usingServer)("Ferry's own embedded database: fresh after a run, read without a server", async () => {
    const embedded = embeddedDataDir("ferry-fresh-embedded-")
    dirs.push(embedded.env.FERRY_DATA_DIR)
    const file = config({ maxAge: "1h" })
    expect((await ferry(["run", "--config", file], { env: embedded.env })).code).toBe(0)
    const result = await ferry(["check", "--fresh", "--json", "--config", file], { env: embedded.env })
    expect(result.code, result.stderr).toBe(0)
    expect(JSON.parse(result.stdout).streams[0]).toMatchObject({ stream: "items", ok: true, max_age: "1h" })
    expect(JSON.parse(result.stdout).database).toContain("embedded Postgres in")
  })

  it("an embedded database no run has created: never succeeded, and still not created", async () => {
    const dataDir = join(mkdtempSync(join(tmpdir(), "ferry-fresh-")), "pgdata")
    dirs.push(dataDir)
    const file = config()
    const result = await ferry(["check", "--max-age", "1h", "--config", file], { env: { DATABASE_URL: "", FERRY_DATA_DIR: dataDir } })
    expect(result.code, result.stderr).toBe(2)
    expect(result.stdout).toContain("STALE items: never succeeded (max age 1h)")
    expect(existsSync(dataDir)).toBe(false)
  })
})
