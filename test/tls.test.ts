/**
 * sslmode as libpq documents it (src/postgres/Tls.ts), against a cluster the test starts with TLS on and a
 * CA of its own (test/support/tls-cluster.ts), and against the local server, which has no TLS.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Either, Exit, Redacted } from "effect"
import { SqlClient } from "@effect/sql/SqlClient"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Database from "../src/postgres/Database.js"
import * as PgTls from "../src/postgres/Tls.js"
import { makeRecords, startApi, type Api } from "./support/api.js"
import { ferry, streamConfig, summaries } from "./support/cli.js"
import { serverUrl } from "./support/pg.js"
import { pgBin, startTlsCluster, type TlsCluster } from "./support/tls-cluster.js"

const haveBinaries = pgBin() !== undefined
let cluster: TlsCluster
let home: string

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), "ferry-tls-home-"))
  if (haveBinaries) cluster = await startTlsCluster()
}, 120_000)
afterAll(() => {
  cluster?.stop()
  rmSync(home, { recursive: true, force: true })
})

const url = (host: string, query: string) => `postgres://postgres@${host}:${cluster.port}/postgres${query}`

/** connects as Ferry does; Right(whether the session is encrypted) or Left(the error's message) */
const connect = (target: string, env: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const [row] = yield* sql<{ ssl: boolean }>`SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`
    return row!.ssl
  }).pipe(
    Effect.provide(Database.layer({ url: Redacted.make(target), env: { HOME: home, ...env } })),
    Effect.scoped,
    Effect.exit,
    Effect.map((exit) =>
      Exit.isSuccess(exit)
        ? Either.right(exit.value)
        : Either.left(Exit.causeOption(exit).pipe((c) => (c._tag === "Some" ? String(c.value) : "")))
    )
  )

// homedir() follows $HOME: the tests' own ~/.postgresql is empty
const withHome = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const saved = process.env.HOME
      process.env.HOME = home
      return saved
    }),
    () => effect,
    (saved) => Effect.sync(() => (process.env.HOME = saved))
  )

describe.skipIf(!haveBinaries)("sslmode against a server with TLS (its certificate is for localhost only)", () => {
  it.live("disable: a plain session", () =>
    withHome(connect(url("127.0.0.1", "?sslmode=disable"))).pipe(Effect.map((r) => expect(r).toEqual(Either.right(false)))))

  it.live("prefer, and no sslmode at all (libpq's default): TLS, the certificate not checked", () =>
    Effect.gen(function*() {
      expect(yield* withHome(connect(url("127.0.0.1", "?sslmode=prefer")))).toEqual(Either.right(true))
      expect(yield* withHome(connect(url("127.0.0.1", "")))).toEqual(Either.right(true))
      // PGSSLMODE applies when the URL says nothing
      expect(yield* withHome(connect(url("127.0.0.1", ""), { PGSSLMODE: "disable" }))).toEqual(Either.right(false))
    }))

  it.live("require: TLS without checking the certificate (node-postgres alone would verify it like verify-full)", () =>
    withHome(connect(url("127.0.0.1", "?sslmode=require"))).pipe(Effect.map((r) => expect(r).toEqual(Either.right(true)))))

  it.live("require with sslrootcert checks the chain, as verify-ca: another CA is refused", () =>
    Effect.gen(function*() {
      expect(yield* withHome(connect(url("127.0.0.1", `?sslmode=require&sslrootcert=${cluster.caFile}`)))).toEqual(Either.right(true))
      const refused = yield* withHome(connect(url("127.0.0.1", `?sslmode=require&sslrootcert=${cluster.otherCaFile}`)))
      expect(Either.isLeft(refused)).toBe(true)
    }))

  it.live("verify-ca: the chain is checked, the host is not", () =>
    Effect.gen(function*() {
      expect(yield* withHome(connect(url("127.0.0.1", `?sslmode=verify-ca&sslrootcert=${cluster.caFile}`)))).toEqual(Either.right(true))
      const refused = yield* withHome(connect(url("127.0.0.1", `?sslmode=verify-ca&sslrootcert=${cluster.otherCaFile}`)))
      expect(Either.getLeft(refused).pipe((m) => m._tag === "Some" ? m.value : "")).toMatch(/cannot connect to PostgreSQL.*certificate/i)
    }))

  it.live("verify-full: the wrong host is refused, the right one accepted", () =>
    Effect.gen(function*() {
      const wrongHost = yield* withHome(connect(url("127.0.0.1", `?sslmode=verify-full&sslrootcert=${cluster.caFile}`)))
      expect(Either.getLeft(wrongHost).pipe((m) => m._tag === "Some" ? m.value : "")).toMatch(/127\.0\.0\.1.*(altnames|does not match)/i)
      expect(yield* withHome(connect(url("localhost", `?sslmode=verify-full&sslrootcert=${cluster.caFile}`)))).toEqual(Either.right(true))
    }))

  it("verify-ca/verify-full without a root certificate: a configuration error that says where to put one", () => {
    const result = PgTls.fromUrl(url("localhost", "?sslmode=verify-full"), { env: {}, home })
    expect(Either.isLeft(result)).toBe(true)
    const error = Either.getLeft(result)
    expect(error._tag === "Some" && error.value.exitCode).toBe(78)
    expect(error._tag === "Some" && error.value.message).toContain(join(home, ".postgresql", "root.crt"))
    const bad = PgTls.fromUrl(url("localhost", "?sslmode=verify"), { env: {}, home })
    expect(Either.getLeft(bad).pipe((m) => m._tag === "Some" && m.value.message)).toBe(
      "database.url: sslmode=verify is not one of disable, allow, prefer, require, verify-ca, verify-full"
    )
  })

  describe("through the bin", () => {
    let api: Api
    beforeAll(async () => {
      api = await startApi(makeRecords(20))
    })
    afterAll(async () => {
      await api?.close()
    })

    it("verify-full at the right host syncs, and stderr stays JSON lines (no driver SECURITY WARNING)", async () => {
      const dir = streamConfig({ url: `${api.url}/link`, name: "tls_items" })
      try {
        const ok = await ferry(["run", "--config", join(dir, "ferry.config.yaml")], {
          env: { HOME: home, DATABASE_URL: url("localhost", `?sslmode=verify-full&sslrootcert=${cluster.caFile}`) }
        })
        expect(ok.code, ok.stderr).toBe(0)
        expect(summaries(ok)[0]).toMatchObject({ fetched: 20, inserted: 20 })
        // verify-ca without a CA: node-postgres prints a plain-text SECURITY WARNING; Ferry asks for the CA (78)
        const noCa = await ferry(["run", "--config", join(dir, "ferry.config.yaml")], {
          env: { HOME: home, DATABASE_URL: url("localhost", "?sslmode=verify-ca") }
        })
        expect(noCa.code).toBe(78)
        for (const line of [...ok.stderr.split("\n"), ...noCa.stderr.split("\n")].filter((l) => l !== "")) {
          expect(() => JSON.parse(line), line).not.toThrow()
        }
        const wrongHost = await ferry(["run", "--config", join(dir, "ferry.config.yaml")], {
          env: { HOME: home, DATABASE_URL: url("127.0.0.1", `?sslmode=verify-full&sslrootcert=${cluster.caFile}`) }
        })
        expect(wrongHost.code).toBe(74)
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    })
  })
})

describe.skipIf(serverUrl() === undefined)("sslmode against the local server, which has no TLS", () => {
  const local = (mode: string) => {
    const u = new URL(serverUrl()!)
    u.searchParams.set("sslmode", mode)
    return u.toString()
  }
  it.live("prefer falls back to a plain session (node-postgres alone fails)", () =>
    withHome(connect(local("prefer"))).pipe(Effect.map((r) => expect(r).toEqual(Either.right(false)))))

  it.live("require fails: the server does not offer TLS", () =>
    withHome(connect(local("require"))).pipe(
      Effect.map((r) => expect(Either.getLeft(r).pipe((m) => m._tag === "Some" ? m.value : "")).toMatch(/does not support SSL/))
    ))
})
