/**
 * In JSON mode every stderr line is one JSON object, whoever writes it: Node's warnings (pg's
 * deprecation notices), `console.*` in a dependency, a raw write to stderr. A preloaded module plays the
 * noisy dependency (NODE_OPTIONS=--require), before the config is read and at exit, when the config's
 * secrets are known and must be redacted from the captured text too.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type Api, makeRecords, startApi } from "./support/api.js"
import { ferry, streamConfig, summaries } from "./support/cli.js"
import { createTestDatabase, type TestDatabase } from "./support/pg.js"

const TOKEN = "json-logs-secret-token-7"
let db: TestDatabase
let api: Api
let dir: string

beforeAll(async () => {
  db = await createTestDatabase()
  api = await startApi(makeRecords(10), { auth: { type: "bearer", token: TOKEN } })
  dir = mkdtempSync(join(tmpdir(), "ferry-noise-"))
  writeFileSync(join(dir, "noise.cjs"), `
    // as soon as Ferry's code has started (it replaces stderr's write in JSON mode); at exit if it never did
    const original = process.stderr.write
    let done = false
    const noise = () => {
      done = true
      console.warn("plain text from a dependency")
      console.log("a console.log that must not reach stdout")
      process.emitWarning("this API is deprecated", "DeprecationWarning", "DEP9999")
      process.stderr.write("SECURITY WARNING: written ")
      process.stderr.write("in two pieces\\n")
    }
    const timer = setInterval(() => {
      if (process.stderr.write !== original) {
        clearInterval(timer)
        noise()
      }
    }, 1)
    timer.unref()
    process.on("exit", () => {
      if (!done) noise()
      console.error("at exit: token ${TOKEN}")
    })
  `)
})
afterAll(async () => {
  await api?.close()
  await db?.drop()
  rmSync(dir, { recursive: true, force: true })
})

describe("JSON logs stay JSON", () => {
  it("warnings, console output and raw stderr writes become JSON lines; secrets are redacted in them", async () => {
    const config = streamConfig({ url: `${api.url}/link`, name: "noisy", auth: `{ type: bearer, token: "\${TOKEN}" }` })
    try {
      const result = await ferry(["run", "--config", join(config, "ferry.config.yaml")], {
        env: { DATABASE_URL: db.url, TOKEN, NODE_OPTIONS: `--require ${join(dir, "noise.cjs")}` }
      })
      expect(result.code, result.stderr).toBe(0)
      expect(summaries(result)[0]).toMatchObject({ fetched: 10, inserted: 10 })
      const lines = result.stderr.split("\n").filter((l) => l !== "")
      for (const line of lines) expect(() => JSON.parse(line), line).not.toThrow()
      const stray = result.logs.filter((l) => l.msg === "stderr").map((l) => l.text)
      expect(stray).toEqual(expect.arrayContaining([
        "plain text from a dependency",
        "a console.log that must not reach stdout",
        "SECURITY WARNING: written in two pieces",
        "at exit: token ***"
      ]))
      expect(result.logs.find((l) => l.msg === "node.warning")).toMatchObject({
        level: "warn",
        code: "DEP9999",
        name: "DeprecationWarning",
        text: "this API is deprecated"
      })
      for (const l of result.logs) expect(l.run_id).toBe(result.logs[0]!.run_id)
      expect(result.stdout).toBe("")
      expect(result.stderr).not.toContain(TOKEN)
    } finally {
      rmSync(config, { recursive: true, force: true })
    }
  })
})
