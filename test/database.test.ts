/**
 * Database.layer's start (a real PostgreSQL server: the sessions are counted in pg_stat_activity):
 * `connections` are open when the layer is built, and a start that fails half-way leaves none open.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import * as Database from "../src/postgres/Database.js"
import { DatabaseError } from "../src/domain/Errors.js"
import { fileDatabase, serverOnly } from "./support/pg.js"

const db = fileDatabase("ferry_database")

const sessions = async (where: string, value: string): Promise<number> => {
  const [row] = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE ${where} = $1 AND datname = current_database()`,
    [value]
  )
  return row!.n
}

/** pg_stat_activity lags a closed socket by a moment */
const eventually = async (check: () => Promise<boolean>) => {
  for (let i = 0; i < 50 && !(await check()); i++) await new Promise((r) => setTimeout(r, 20))
  return check()
}

describe("Database.layer", () => {
  it.live.skipIf(serverOnly)("opens `connections` sessions while it is built, before any query", () =>
    Effect.gen(function*() {
      const applicationName = `ferry-test connections ${randomBytes(3).toString("hex")}`
      yield* Layer.build(Database.layer({ url: Redacted.make(db.url), applicationName, connections: 2 }))
      expect(yield* Effect.promise(() => sessions("application_name", applicationName))).toBe(2)
    }).pipe(Effect.scoped))

  it.live.skipIf(serverOnly)("a start that opens one connection of two fails, and closes the one it opened", () =>
    Effect.gen(function*() {
      const role = `ferry_one_${randomBytes(3).toString("hex")}`
      yield* Effect.acquireRelease(
        Effect.promise(() => db.query(`CREATE ROLE ${role} LOGIN CONNECTION LIMIT 1`)),
        () => Effect.promise(() => db.query(`DROP ROLE IF EXISTS ${role}`))
      )
      const url = new URL(db.url)
      url.username = role
      url.password = ""
      const error = yield* Effect.flip(
        Layer.build(Database.layer({ url: Redacted.make(url.toString()), connections: 2 })).pipe(Effect.scoped)
      )
      expect(error).toBeInstanceOf(DatabaseError)
      expect(error.message).toContain("too many connections")
      expect(yield* Effect.promise(() => eventually(async () => (await sessions("usename", role)) === 0))).toBe(true)
    }).pipe(Effect.scoped))
})
