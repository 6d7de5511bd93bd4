/**
 * The embedded database: PGlite on a real data directory, reached through pglite-socket by `pg`
 * and by @effect/sql-pg; data survives a restart; the data directory lock holds within a process
 * and across processes, and a dead holder's lock is taken over.
 */
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Redacted, Scope } from "effect"
import pg from "pg"
import * as DataDirLock from "../src/embedded/DataDirLock.js"
import * as EmbeddedPostgres from "../src/embedded/EmbeddedPostgres.js"

const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), "ferry-embedded-"))
afterAll(() => Fs.rmSync(root, { recursive: true, force: true }))

// One data directory for the file: the first open runs initdb (seconds), later opens are quick.
const dataDir = Path.join(root, "pgdata")

const withPg = <A>(url: Redacted.Redacted<string>, f: (c: pg.Client) => Promise<A>) =>
  Effect.promise(async () => {
    const client = new pg.Client({ connectionString: Redacted.value(url), connectionTimeoutMillis: 5000 })
    await client.connect()
    try {
      return await f(client)
    } finally {
      await client.end()
    }
  })

const canConnect = (url: Redacted.Redacted<string>) =>
  Effect.promise(async () => {
    const client = new pg.Client({ connectionString: Redacted.value(url), connectionTimeoutMillis: 2000 })
    client.on("error", () => {})
    try {
      await client.connect()
      await client.end()
      return true
    } catch {
      return false
    }
  })

const writeLock = (file: string, info: Record<string, unknown> | string) =>
  Fs.writeFileSync(file, typeof info === "string" ? info : JSON.stringify(info))

describe("EmbeddedPostgres", () => {
  it.scopedLive("serves pg and @effect/sql-pg; rows survive a restart; closing frees port and lock", () =>
    Effect.gen(function*() {
      const first = yield* Scope.make()
      const db = yield* EmbeddedPostgres.start({ dataDir }).pipe(Scope.extend(first))
      expect(Redacted.value(db.url)).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres\?sslmode=disable$/)
      expect(db.dataDir).toBe(dataDir)
      expect(Fs.existsSync(DataDirLock.lockPath(dataDir))).toBe(true)

      yield* withPg(db.url, async (c) => {
        await c.query("CREATE TABLE orders (id text PRIMARY KEY, amount numeric NOT NULL)")
        await c.query("INSERT INTO orders VALUES ($1, $2)", ["ord_1", "12.50"])
      })

      // The client Ferry uses: a one-connection pool, with a transaction.
      const viaSqlPg = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql.withTransaction(sql`INSERT INTO orders ${sql.insert({ id: "ord_2", amount: "7.25" })}`)
        const failed = yield* sql
          .withTransaction(
            Effect.zipRight(
              sql`INSERT INTO orders ${sql.insert({ id: "ord_3", amount: "1" })}`,
              sql`INSERT INTO orders ${sql.insert({ id: "ord_1", amount: "1" })}` // duplicate key: rolls back ord_3
            )
          )
          .pipe(Effect.exit)
        expect(Exit.isFailure(failed)).toBe(true)
        return yield* sql<{ id: string; amount: string }>`SELECT id, amount FROM orders ORDER BY id`
      }).pipe(
        Effect.provide(PgClient.layer({ url: db.url, ...EmbeddedPostgres.clientOptions, connectTimeout: Duration.seconds(5) }))
      )
      expect(viaSqlPg).toEqual([
        { id: "ord_1", amount: "12.50" },
        { id: "ord_2", amount: "7.25" }
      ])

      yield* Scope.close(first, Exit.void)
      expect(Fs.existsSync(DataDirLock.lockPath(dataDir))).toBe(false)
      expect(yield* canConnect(db.url)).toBe(false)

      // Same directory again: the rows are still there.
      const again = yield* EmbeddedPostgres.start({ dataDir })
      const rows = yield* withPg(again.url, (c) => c.query("SELECT id, amount FROM orders ORDER BY id").then((r) => r.rows))
      expect(rows).toEqual([
        { id: "ord_1", amount: "12.50" },
        { id: "ord_2", amount: "7.25" }
      ])
    }))

  it.scopedLive("a second start on a held directory in the same process fails with LockHeld", () =>
    Effect.gen(function*() {
      const db = yield* EmbeddedPostgres.start({ dataDir })
      const second = yield* Effect.scoped(EmbeddedPostgres.start({ dataDir })).pipe(Effect.flip)
      expect(second._tag).toBe("LockHeld")
      expect(second.message).toContain(`data directory ${dataDir} is in use by pid ${process.pid}`)
      // The failed attempt left the holder alone: its lock file and its server are intact.
      expect(DataDirLock.holder(dataDir)?.pid).toBe(process.pid)
      const one = yield* withPg(db.url, (c) => c.query("SELECT 1 AS one").then((r) => r.rows[0].one))
      expect(one).toBe(1)
    }))

  it.scopedLive("another live process holding the lock → LockHeld naming it; once it dies the stale lock is taken over", () =>
    Effect.gen(function*() {
      const file = DataDirLock.lockPath(dataDir)
      const child = spawn(
        process.execPath,
        [
          "-e",
          `const fs = require("node:fs"), os = require("node:os");
           fs.writeFileSync(process.env.LOCK_FILE, JSON.stringify({ pid: process.pid, host: os.hostname(), startedAt: new Date().toISOString() }), { flag: "wx" });
           process.stdout.write("ready\\n");
           setInterval(() => {}, 1000);`
        ],
        { env: { ...process.env, LOCK_FILE: file }, stdio: ["ignore", "pipe", "inherit"] }
      )
      yield* Effect.addFinalizer(() => Effect.sync(() => child.kill("SIGKILL")))
      yield* Effect.promise(
        () => new Promise<void>((resolve, reject) => {
          child.stdout.on("data", (d: Buffer) => d.toString().includes("ready") && resolve())
          child.on("exit", (code) => reject(new Error(`lock child exited with ${code}`)))
        })
      )
      const pid = child.pid!

      const held = yield* Effect.scoped(EmbeddedPostgres.start({ dataDir })).pipe(Effect.flip)
      expect(held._tag).toBe("LockHeld")
      expect(held.message).toContain(`is in use by pid ${pid}`)
      expect(DataDirLock.holder(dataDir)?.pid).toBe(pid)

      yield* Effect.promise(() => new Promise<void>((resolve) => {
        child.removeAllListeners("exit")
        child.on("exit", () => resolve())
        child.kill("SIGKILL")
      }))

      const db = yield* EmbeddedPostgres.start({ dataDir })
      expect(DataDirLock.holder(dataDir)?.pid).toBe(process.pid)
      const count = yield* withPg(db.url, (c) => c.query("SELECT count(*)::int AS n FROM orders").then((r) => r.rows[0].n))
      expect(count).toBe(2)
    }))

  it("defaultDataDir: FERRY_DATA_DIR relative to the base (the config file's directory), else <base>/.ferry/pgdata", () => {
    expect(EmbeddedPostgres.defaultDataDir({}, "/srv/app")).toBe("/srv/app/.ferry/pgdata")
    expect(EmbeddedPostgres.defaultDataDir({ FERRY_DATA_DIR: "" }, "/srv/app")).toBe("/srv/app/.ferry/pgdata")
    expect(EmbeddedPostgres.defaultDataDir({ FERRY_DATA_DIR: "data/pg" }, "/srv/app")).toBe("/srv/app/data/pg")
    expect(EmbeddedPostgres.defaultDataDir({ FERRY_DATA_DIR: "/var/lib/ferry" }, "/srv/app")).toBe("/var/lib/ferry")
  })
})

describe("DataDirLock", () => {
  const dir = () => Fs.mkdtempSync(Path.join(root, "lock-"))

  it.scopedLive("writes {pid, host, startedAt} next to the directory and removes it on scope close", () =>
    Effect.gen(function*() {
      const d = dir()
      yield* Effect.scoped(
        Effect.gen(function*() {
          yield* DataDirLock.acquire(d)
          const info = JSON.parse(Fs.readFileSync(`${d}.lock`, "utf8"))
          expect(info.pid).toBe(process.pid)
          expect(info.host).toBe(Os.hostname())
          expect(Number.isNaN(Date.parse(info.startedAt))).toBe(false)
          expect(Fs.readdirSync(d)).toEqual([]) // nothing inside the data directory
        })
      )
      expect(Fs.existsSync(`${d}.lock`)).toBe(false)
      // and it can be taken again
      yield* DataDirLock.acquire(d)
      expect(DataDirLock.holder(d)?.pid).toBe(process.pid)
    }))

  it.scopedLive("a lock left by a dead pid is taken over", () =>
    Effect.gen(function*() {
      const d = dir()
      const dead = spawn(process.execPath, ["-e", ""])
      const deadPid = yield* Effect.promise(() => new Promise<number>((resolve) => dead.on("exit", () => resolve(dead.pid!))))
      writeLock(`${d}.lock`, { pid: deadPid, host: Os.hostname(), startedAt: "2020-01-01T00:00:00.000Z" })
      yield* DataDirLock.acquire(d)
      expect(DataDirLock.holder(d)?.pid).toBe(process.pid)
      expect(Fs.readdirSync(Path.dirname(d)).filter((f) => f.includes(".stale."))).toEqual([])
    }))

  it.scopedLive("our own pid in a lock we did not take (a restarted container) is stale", () =>
    Effect.gen(function*() {
      const d = dir()
      writeLock(`${d}.lock`, { pid: process.pid, host: Os.hostname(), startedAt: "2020-01-01T00:00:00.000Z" })
      yield* DataDirLock.acquire(d)
      expect(DataDirLock.holder(d)?.startedAt).not.toBe("2020-01-01T00:00:00.000Z")
    }))

  it.scopedLive("a lock from another host, or an unreadable one, is held and never removed", () =>
    Effect.gen(function*() {
      const d = dir()
      writeLock(`${d}.lock`, { pid: 1, host: "elsewhere.example", startedAt: "2020-01-01T00:00:00.000Z" })
      const other = yield* DataDirLock.acquire(d).pipe(Effect.flip)
      expect(other._tag).toBe("LockHeld")
      expect(other.message).toContain("in use by pid 1 on host elsewhere.example")
      expect(other.message).toContain(`remove ${d}.lock`)
      expect(DataDirLock.holder(d)?.host).toBe("elsewhere.example")

      writeLock(`${d}.lock`, "")
      const empty = yield* DataDirLock.acquire(d).pipe(Effect.flip)
      expect(empty._tag).toBe("LockHeld")
      expect(Fs.readFileSync(`${d}.lock`, "utf8")).toBe("")
    }))

  it.scopedLive("releasing does not remove a lock file that is no longer ours", () =>
    Effect.gen(function*() {
      const d = dir()
      yield* Effect.scoped(
        Effect.gen(function*() {
          yield* DataDirLock.acquire(d)
          writeLock(`${d}.lock`, { pid: 1, host: "elsewhere.example", startedAt: "x" })
        })
      )
      expect(DataDirLock.holder(d)?.host).toBe("elsewhere.example")
    }))

  it.scopedLive("an unwritable location is a DatabaseError", () =>
    Effect.gen(function*() {
      const error = yield* DataDirLock.acquire(Path.join(root, "missing", "nested", "pgdata")).pipe(Effect.flip)
      expect(error._tag).toBe("DatabaseError")
      expect(error.message).toContain("cannot take the lock")
    }))
})
