/**
 * A fresh PostgreSQL database per test file, dropped afterwards (`createTestDatabase`, or `TestDb.layer`
 * for a `layer(...)` block).
 *
 * - With FERRY_TEST_DATABASE_URL (or DATABASE_URL): a new database on that server.
 * - Without: the embedded Postgres (PGlite over pglite-socket, as `ferry` uses it), a fresh copy of a
 *   template data directory made once by the global setup. So `npm test` needs no server.
 *   PGlite has ONE session shared by every connection, so the few tests that need several real sessions
 *   (advisory locks between connections, terminating a backend, statement timeouts) run only against a
 *   server: they use `serverOnly`, which vitest reports as skipped on the embedded pass, and CI runs
 *   the suite against the local server as well (.ci/run).
 */
import { Context, Effect, Layer, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import { cpSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import pg from "pg"
import { afterAll, beforeAll, inject } from "vitest"
import * as Database from "../../src/postgres/Database.js"

export const serverUrl = (): string | undefined => process.env.FERRY_TEST_DATABASE_URL || process.env.DATABASE_URL || undefined

/** true: tests run against a real server; false: against the embedded Postgres */
export const usingServer = serverUrl() !== undefined

/** For `it.skipIf(serverOnly)`: the test needs several real database sessions. */
export const serverOnly = !usingServer

const withDatabase = (url: string, database: string): string => {
  const u = new URL(url)
  u.pathname = `/${database}`
  return u.toString()
}

const admin = async <A>(url: string, f: (client: pg.Client) => Promise<A>): Promise<A> => {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 })
  await client.connect()
  try {
    return await f(client)
  } finally {
    await client.end()
  }
}

export interface TestDatabase {
  readonly name: string
  readonly url: string
  readonly embedded: boolean
  /** run SQL against the test database */
  readonly query: <R extends pg.QueryResultRow = any>(text: string, params?: ReadonlyArray<unknown>) => Promise<Array<R>>
  readonly drop: () => Promise<void>
}

const queryOn = (url: string) => async (text: string, params?: ReadonlyArray<unknown>) => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query(text, params as Array<unknown>)).rows
  } finally {
    await client.end()
  }
}

const createEmbedded = async (): Promise<TestDatabase> => {
  const template = inject("pgTemplate")
  if (!template) throw new Error("no embedded template: the global setup did not run")
  const dir = mkdtempSync(join(tmpdir(), "ferry-testdb-"))
  cpSync(template, dir, { recursive: true })
  const [{ PGlite }, { PGLiteSocketServer }] = await Promise.all([
    import("@electric-sql/pglite"),
    import("@electric-sql/pglite-socket")
  ])
  const db = await PGlite.create(dir)
  const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections: 32 })
  await server.start()
  const url = `postgres://postgres@${server.getServerConn()}/postgres`
  return {
    name: "postgres",
    url,
    embedded: true,
    query: queryOn(url),
    drop: async () => {
      await server.stop()
      await db.close()
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

export const createTestDatabase = async (prefix = "ferry_test"): Promise<TestDatabase> => {
  const server = serverUrl()
  if (server === undefined) return createEmbedded()
  const name = `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`
  await admin(server, (c) => c.query(`CREATE DATABASE "${name}"`))
  const url = withDatabase(server, name)
  const drop = () => admin(server, (c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).then(() => undefined)
  return { name, url, embedded: false, query: queryOn(url), drop }
}

/**
 * A fresh database for the calling test file (or describe): created before its first test, dropped
 * after its last. The object is filled in by then: read it in tests and hooks, not at load time.
 */
export const fileDatabase = (prefix?: string): TestDatabase => {
  const db = {} as TestDatabase
  beforeAll(async () => {
    Object.assign(db, await createTestDatabase(prefix))
  })
  afterAll(async () => {
    await db.drop?.()
  })
  return db
}

declare module "vitest" {
  export interface ProvidedContext {
    /** the embedded template data directory (no server configured) */
    pgTemplate: string | undefined
  }
}

/**
 * Ferry's own embedded database for a bin test: a copy of the suite's initialised template (an initdb
 * takes seconds) in a new directory, the env that points `ferry` at it, and a query that opens the
 * directory with PGlite only between runs (a data directory is one process's at a time).
 * `configure` may edit postgresql.conf first (a time zone, …).
 */
export const embeddedDataDir = (prefix: string, configure?: (dataDir: string) => void) => {
  const dataDir = mkdtempSync(join(tmpdir(), prefix))
  cpSync(inject("pgTemplate")!, dataDir, { recursive: true })
  configure?.(dataDir)
  const query = async (text: string, params?: ReadonlyArray<unknown>): Promise<Array<any>> => {
    const { PGlite } = await import("@electric-sql/pglite")
    const pglite = await PGlite.create(dataDir)
    try {
      return (await pglite.query<any>(text, params as Array<unknown>)).rows
    } finally {
      await pglite.close()
    }
  }
  return { env: { DATABASE_URL: "", FERRY_DATA_DIR: dataDir }, query }
}

/**
 * The test database as a scoped layer, for `layer(...)` from @effect/vitest: created when the block's
 * first test starts, dropped when the block ends. Tests reach it with `yield* TestDb` or `TestDb.query`.
 */
export class TestDb extends Context.Tag("test/TestDb")<TestDb, TestDatabase>() {
  static readonly layer = (prefix?: string): Layer.Layer<TestDb> =>
    Layer.scoped(
      TestDb,
      Effect.acquireRelease(Effect.promise(() => createTestDatabase(prefix)), (db) => Effect.promise(() => db.drop()))
    )

  /** SQL on the test database (its own connection), for a test's assertions */
  static readonly query = <R extends pg.QueryResultRow = any>(text: string, params?: ReadonlyArray<unknown>) =>
    Effect.flatMap(TestDb, (db) => Effect.promise(() => db.query<R>(text, params)))

  /** Ferry's `Database` layer (a pool) on the test database */
  static readonly sqlClient = (options: Omit<Database.DatabaseOptions, "url"> = {}) =>
    Layer.unwrapEffect(Effect.map(TestDb, (db) => Database.layer({ ...options, url: Redacted.make(db.url) })))
}
