/**
 * A fresh PostgreSQL database per test file, dropped afterwards. The server is
 * FERRY_TEST_DATABASE_URL, else DATABASE_URL, else the local one on 127.0.0.1:5432.
 */
import { randomBytes } from "node:crypto"
import pg from "pg"

export const serverUrl = (): string =>
  process.env.FERRY_TEST_DATABASE_URL ?? process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"

const withDatabase = (url: string, database: string): string => {
  const u = new URL(url)
  u.pathname = `/${database}`
  return u.toString()
}

const admin = async <A>(f: (client: pg.Client) => Promise<A>): Promise<A> => {
  const client = new pg.Client({ connectionString: serverUrl(), connectionTimeoutMillis: 5000 })
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
  /** run SQL against the test database */
  readonly query: <R extends pg.QueryResultRow = any>(text: string, params?: ReadonlyArray<unknown>) => Promise<Array<R>>
  readonly drop: () => Promise<void>
}

export const createTestDatabase = async (prefix = "ferry_test"): Promise<TestDatabase> => {
  const name = `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`
  await admin((c) => c.query(`CREATE DATABASE "${name}"`))
  const url = withDatabase(serverUrl(), name)
  const query = async (text: string, params?: ReadonlyArray<unknown>) => {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    try {
      return (await client.query(text, params as Array<unknown>)).rows
    } finally {
      await client.end()
    }
  }
  const drop = () => admin((c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).then(() => undefined)
  return { name, url, query, drop }
}
