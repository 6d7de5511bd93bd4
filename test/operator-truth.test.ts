/**
 * Issue 11, what the operator is told, through the `ferry` bin: a failed run's summary carries the
 * stored checkpoint; `pagination: none` on a source that says it has more pages warns (the run and
 * `check`); a secret read from a file (`${file:…}`) appears nowhere.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { writeFileSync } from "node:fs"
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
