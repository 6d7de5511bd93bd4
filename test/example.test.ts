/**
 * The embedding example (examples/embed.ts) runs as an application would run it: a stream defined in
 * code with an Effect Schema, the application's own PgClient and HttpClient, against the demo API and
 * a real PostgreSQL database.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { execFile } from "node:child_process"
import { join } from "node:path"
import { promisify } from "node:util"
import { layer, program } from "../examples/embed.js"
import { type DemoServer, startDemoServer } from "../scripts/demo-server.mjs"
import { createTestDatabase, type TestDatabase } from "./support/pg.js"

let db: TestDatabase
let api: DemoServer

beforeAll(async () => {
  db = await createTestDatabase()
  api = await startDemoServer({ orders: 600, customers: 50, flaky: 0, mutatePerRun: 0, addPerRun: 0 })
})
afterAll(async () => {
  await api?.close()
  await db?.drop()
})

describe("examples/embed.ts", () => {
  it.live("syncs the demo orders with the application's own layers; a rerun writes nothing", () =>
    Effect.gen(function*() {
      const services = layer(Redacted.make(db.url))
      const first = yield* program(api.url).pipe(Effect.provide(services))
      expect(first).toMatchObject({ status: "succeeded", fetched: 600, inserted: 600, quarantined: 0 })
      const rows = yield* Effect.promise(() =>
        db.query(`SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'embedded_orders' ORDER BY ordinal_position`)
      )
      // columns inferred from the schema: strings text, numbers double precision, Dates timestamptz
      expect(rows).toEqual([
        { column_name: "id", data_type: "text" },
        { column_name: "status", data_type: "text" },
        { column_name: "amount", data_type: "double precision" },
        { column_name: "updated_at", data_type: "timestamp with time zone" }
      ])
      const [{ n }] = yield* Effect.promise(() => db.query(`SELECT count(*)::int AS n FROM embedded_orders`))
      expect(n).toBe(600)

      const second = yield* program(api.url).pipe(Effect.provide(services))
      expect(second).toMatchObject({ inserted: 0, updated: 0 })
    }))

  // the command in embed.ts's header: tsc, then plain node (no type stripping, which Node 20 lacks);
  // CI runs this file on Node 20 and Node 22
  it("compiles with the project's tsc against the built package and runs on this Node", async () => {
    const root = join(import.meta.dirname, "..")
    const tsc = join(root, "node_modules", "typescript", "bin", "tsc")
    const run = promisify(execFile)
    // the library's dist/ as `npm run build` leaves it (the global setup builds only the CLI bundle)
    await run(process.execPath, [tsc, "-p", "tsconfig.build.json"], { cwd: root, timeout: 180_000 })
    await run(process.execPath, [tsc, "-p", "examples"], { cwd: root, timeout: 180_000 })
    const { stdout } = await run(process.execPath, ["examples/dist/embed.js"], {
      cwd: root,
      env: { PATH: process.env.PATH, DATABASE_URL: db.url, API_URL: api.url },
      timeout: 60_000
    })
    expect(stdout).toMatch(/synced \d+ orders/)
  }, 300_000)
})
