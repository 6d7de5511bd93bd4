/**
 * Cron's working directory is $HOME, not the config's: the embedded database must follow the config
 * file, and the commands that only look (`status`, `check`, `sql`, `reset`) must not create one.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type Api, makeRecords, startApi } from "./support/api.js"
import { ferry, streamConfig, summaries } from "./support/cli.js"

let api: Api
const dirs: Array<string> = []
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "ferry-cwd-"))
  dirs.push(dir)
  return dir
}

beforeAll(async () => {
  api = await startApi(makeRecords(40))
})
afterAll(async () => {
  await api?.close()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

const config = (extra?: { checkpoint?: string }) => {
  const dir = streamConfig({ url: `${api.url}/link`, name: "items", database: "database: { url: \"\" }", ...extra })
  dirs.push(dir)
  return dir
}

describe("the embedded database follows the config file, not the working directory", () => {
  it("a run from another directory (cron's $HOME) finds the same database: the second run is incremental", async () => {
    const dir = config()
    const home = tempDir()
    // what an earlier release left in the directory cron ran from (only its marker file matters here)
    mkdirSync(join(home, ".ferry", "pgdata"), { recursive: true })
    writeFileSync(join(home, ".ferry", "pgdata", "PG_VERSION"), "17\n")
    const file = join(dir, "ferry.config.yaml")
    const first = await ferry(["run", "--config", file], { cwd: home })
    expect(first.code, first.stderr).toBe(0)
    expect(summaries(first)[0]).toMatchObject({ fetched: 40, inserted: 40 })
    expect(existsSync(join(dir, ".ferry", "pgdata", "PG_VERSION"))).toBe(true)
    // the stray database is named, not used
    expect(first.logs.find((l) => l.msg === "embedded.elsewhere")).toMatchObject({
      level: "warn",
      found: join(home, ".ferry", "pgdata"),
      using: join(dir, ".ferry", "pgdata")
    })

    const elsewhere = tempDir()
    const second = await ferry(["run", "--config", file], { cwd: elsewhere })
    expect(second.code, second.stderr).toBe(0)
    // only the records that share the checkpoint's cursor are read again, nothing is new
    expect(summaries(second)[0]).toMatchObject({ inserted: 0, updated: 0 })
    expect(summaries(second)[0]!.fetched).toBeLessThan(40)
    expect(second.logs.find((l) => l.msg === "embedded.elsewhere")).toBeUndefined()
  })

  it("a relative FERRY_DATA_DIR is relative to the config file's directory", async () => {
    const dir = config()
    const home = tempDir()
    const result = await ferry(["run", "--config", join(dir, "ferry.config.yaml")], {
      cwd: home,
      env: { FERRY_DATA_DIR: "state/pg" }
    })
    expect(result.code, result.stderr).toBe(0)
    expect(existsSync(join(dir, "state", "pg", "PG_VERSION"))).toBe(true)
    expect(existsSync(join(home, "state"))).toBe(false)
  })
})

describe("status, check, sql and reset never create the embedded database", () => {
  it("they say there is none yet, and where it would be", async () => {
    const dir = config()
    const file = join(dir, "ferry.config.yaml")
    const where = join(dir, ".ferry", "pgdata")

    const status = await ferry(["status", "--json", "--config", file])
    expect(status.code, status.stderr).toBe(0)
    expect(JSON.parse(status.stdout)).toMatchObject({
      database: `embedded Postgres in ${where}`,
      created: false,
      streams: [{ stream: "items", checkpoint: null, status: null }]
    })
    const pretty = await ferry(["status", "--config", file])
    expect(pretty.code, pretty.stderr).toBe(0)
    expect(pretty.stdout).toContain(`embedded Postgres in ${where}: not created yet`)

    const check = await ferry(["check", "--config", file])
    expect(check.code, check.stderr).toBe(0)
    expect(check.stdout).toContain(`database embedded Postgres in ${where}: not created yet`)
    expect(check.stdout).toMatch(/ok {4}items: 7 record\(s\) on the first page/)

    const sql = await ferry(["sql", "--config", file, "select 1"])
    expect(sql.code).toBe(74)
    expect(sql.logs.at(-1)?.msg).toContain(`${where} is not created yet`)

    const reset = await ferry(["reset", "--config", file, "--stream", "items"])
    expect(reset.code, reset.stderr).toBe(0)
    expect(reset.stdout).toContain("nothing to reset")

    expect(existsSync(where)).toBe(false)
    expect(existsSync(join(dir, ".ferry"))).toBe(false)
  })

  it("with a file checkpoint store, status reads the checkpoint and reset clears it without a database", async () => {
    const dir = config({ checkpoint: "{ store: file, path: ./checkpoints.json }" })
    const file = join(dir, "ferry.config.yaml")
    const run = await ferry(["run", "--config", file], { env: { FERRY_DATA_DIR: join(tempDir(), "pg") } })
    expect(run.code, run.stderr).toBe(0)
    const checkpoint = summaries(run)[0]!.checkpoint
    expect(checkpoint).toBeTruthy()

    const status = await ferry(["status", "--json", "--config", file])
    expect(status.code, status.stderr).toBe(0)
    expect(JSON.parse(status.stdout).streams[0]).toMatchObject({ stream: "items", checkpoint })

    const reset = await ferry(["reset", "--config", file, "--stream", "items"])
    expect(reset.code, reset.stderr).toBe(0)
    const after = await ferry(["status", "--json", "--config", file])
    expect(JSON.parse(after.stdout).streams[0]).toMatchObject({ checkpoint: null })
    expect(existsSync(join(dir, ".ferry"))).toBe(false)
  })
})
