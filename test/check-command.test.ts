/**
 * `ferry check` as the first thing a new user runs: a first page where no record would be written (a
 * column type or key that does not fit the data) is a failure (65) with the reasons, not an "ok".
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { rmSync } from "node:fs"
import { join } from "node:path"
import { type Api, makeRecords, startApi } from "./support/api.js"
import { ferry, streamConfig } from "./support/cli.js"
import { createTestDatabase, type TestDatabase } from "./support/pg.js"

let db: TestDatabase
let api: Api
const dirs: Array<string> = []

beforeAll(async () => {
  db = await createTestDatabase()
  const records = makeRecords(10)
  records[3]!.amount = "lots"
  api = await startApi(records)
})
afterAll(async () => {
  await api?.close()
  await db?.drop()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

const check = async (columns: string) => {
  const dir = streamConfig({ url: `${api.url}/link`, name: "items", columns })
  dirs.push(dir)
  return ferry(["check", "--config", join(dir, "ferry.config.yaml")], { env: { DATABASE_URL: db.url } })
}

describe("ferry check", () => {
  it("65 when no record of the first page is valid, with the first reasons", async () => {
    const result = await check("{ id: integer, name: text, updated_at: timestamptz }")
    expect(result.code).toBe(65)
    expect(result.stdout).toContain("FAIL  items: none of the 7 record(s) on the first page is valid:")
    expect(result.stdout).toContain("id: expected an integer, got a string")
  })

  it("0 when some records are valid; the invalid ones are counted with their reason", async () => {
    const result = await check("{ id: text, name: text, amount: numeric, updated_at: timestamptz }")
    expect(result.code, result.stdout + result.stderr).toBe(0)
    expect(result.stdout).toContain("ok    items: 7 record(s) on the first page, 1 invalid:\n      amount: expected a number, got a string")
  })
})
