/**
 * The per-record loops written out per target (src/domain/Specialized.ts) use `new Function`. An
 * application or an operator may run Node with `--disallow-code-generation-from-strings`: then the
 * generic loops do the work. Checked through the bin, on the COPY path (a first load) and the upsert
 * path (a rerun with changed records): the same rows, the same counts, as a run with code generation.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { type Api, makeRecords, startApi } from "./support/api.js"
import { ferry, streamConfig, summaries } from "./support/cli.js"
import { createTestDatabase, type TestDatabase } from "./support/pg.js"

let db: TestDatabase
let api: Api

beforeAll(async () => {
  db = await createTestDatabase()
  api = await startApi(makeRecords(250), { pageSize: 100 })
})
afterAll(async () => {
  await api?.close()
  await db?.drop()
})


const load = async (table: string, nodeOptions: string) => {
  const dir = streamConfig({ url: `${api.url}/link`, name: table })
  const run = (...args: Array<string>) => ferry(["run", ...args], { cwd: dir, env: { DATABASE_URL: db.url, NODE_OPTIONS: nodeOptions } })
  const first = await run()
  expect(first.code, first.stderr.slice(0, 2000)).toBe(0)
  return { dir, first: summaries(first)[0], run }
}

const rows = (table: string) => db.query(`SELECT id, name, amount::text, updated_at FROM ${table} ORDER BY id`)

describe("with code generation from strings disallowed", () => {
  it("a first load and an upsert write what they write with it", async () => {
    // the option reaches a child through NODE_OPTIONS: there, new Function throws (so the run used the loops)
    const probe = spawnSync(process.execPath, ["-e", "new Function('return 1')()"], {
      env: { PATH: process.env.PATH, NODE_OPTIONS: "--disallow-code-generation-from-strings" },
      encoding: "utf8"
    })
    expect(probe.status).not.toBe(0)
    expect(probe.stderr).toContain("Code generation from strings disallowed")
    const a = await load("generated", "")
    const b = await load("generic", "--disallow-code-generation-from-strings")
    expect(b.first).toMatchObject({ inserted: 250, updated: 0 })
    expect(b.first.inserted).toBe(a.first.inserted)
    expect(await rows("generic")).toEqual(await rows("generated"))

    // changed records, read again from the start into the filled tables: the upsert path
    for (const r of api.records.slice(0, 40)) r.name = `${r.name} \t changed \\ again`
    for (const result of [await a.run("--full-refresh"), await b.run("--full-refresh")]) {
      expect(result.code, result.stderr.slice(0, 2000)).toBe(0)
      expect(summaries(result)[0]).toMatchObject({ inserted: 0, updated: 40, unchanged: 210 })
    }
    const generic = await rows("generic")
    expect(generic).toEqual(await rows("generated"))
    expect(generic.filter((r) => String(r.name).includes("changed"))).toHaveLength(40)
  }, 120_000)
})
