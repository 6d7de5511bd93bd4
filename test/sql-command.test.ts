/**
 * `ferry sql`: the target tables' schema first on the search path, one statement at a time (a list is
 * refused before any of it runs), a statement's own failure is a usage error (64) with Postgres's words.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { rmSync } from "node:fs"
import { join } from "node:path"
import { type Api, makeRecords, startApi } from "./support/api.js"
import { ferry, streamConfig } from "./support/cli.js"
import { createTestDatabase, type TestDatabase } from "./support/pg.js"

let db: TestDatabase
let api: Api
let dir: string
const env = () => ({ DATABASE_URL: db.url })
const sql = (...args: Array<string>) => ferry(["sql", "--config", join(dir, "ferry.config.yaml"), ...args], { env: env() })

beforeAll(async () => {
  db = await createTestDatabase()
  api = await startApi(makeRecords(12))
  dir = streamConfig({
    url: `${api.url}/link`,
    name: "items",
    database: `database: { url: "\${DATABASE_URL}", schema: sales }`
  })
  const run = await ferry(["run", "--config", join(dir, "ferry.config.yaml")], { env: env() })
  expect(run.code, run.stderr).toBe(0)
})
afterAll(async () => {
  await api?.close()
  await db?.drop()
  rmSync(dir, { recursive: true, force: true })
})

describe("ferry sql", () => {
  it("finds the target tables by name: database.schema comes first on the search path", async () => {
    const result = await sql("--json", "select count(*)::int as n from items")
    expect(result.code, result.stderr).toBe(0)
    expect(JSON.parse(result.stdout)).toEqual([{ n: 12 }])
    const table = await sql("select id from items order by id limit 2")
    expect(table.code, table.stderr).toBe(0)
    expect(table.stdout).toBe("ID\nr00000\nr00001\n(2 rows)\n")
  })

  it("refuses several statements before running any of them (64)", async () => {
    const result = await sql("create table sales.made_by_sql (x int); select 1")
    expect(result.code).toBe(64)
    expect(result.logs.at(-1)).toMatchObject({ level: "error", exit_code: 64 })
    expect(result.logs.at(-1)!.msg).toContain("one statement at a time")
    const [row] = await db.query("select to_regclass('sales.made_by_sql') as t")
    expect(row.t).toBeNull()
  })

  it("a statement Postgres refuses is a usage error (64) with its message, not a database failure (74)", async () => {
    const typo = await sql("selec 1")
    expect(typo.code).toBe(64)
    expect(typo.logs.at(-1)!.msg).toMatch(/syntax error at or near "selec".*SQLSTATE 42601/)
    const unknown = await sql("select * from no_such_table")
    expect(unknown.code).toBe(64)
    expect(unknown.logs.at(-1)!.msg).toContain(`relation "no_such_table" does not exist`)
    expect(unknown.stderr).not.toMatch(/\n\s+at /)
  })

  it("a statement that writes still works, one at a time", async () => {
    const result = await sql("update items set name = 'renamed' where id = 'r00000'")
    expect(result.code, result.stderr).toBe(0)
    const [row] = await db.query("select name from sales.items where id = 'r00000'")
    expect(row.name).toBe("renamed")
  })
})
