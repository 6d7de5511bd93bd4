/**
 * Ferry as an application gets it: `npm pack` of this checkout (with its `prepare` build, as a git-URL
 * install does it), the tarball installed into a scratch application with the README's command, then
 * the installed bin (`npx ferry`) and a TypeScript file that imports Ferry's public API, type-checked
 * with tsc and run, against a local API and the test database.
 *
 * The install reads the npm cache first (`--prefer-offline`); what is not cached comes from the
 * registry. Every child process has a time limit, so a registry that cannot be reached fails the
 * test with npm's message instead of hanging it.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type Api, makeRecords, startApi } from "./support/api.js"
import { parseLogs, streamConfig, summaries } from "./support/cli.js"
import { createTestDatabase, type TestDatabase, usingServer } from "./support/pg.js"

const root = join(import.meta.dirname, "..")
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"))
const tsc = join(root, "node_modules", "typescript", "bin", "tsc")

// npm's variables from an enclosing `npm test` describe this checkout, not the scratch application
const baseEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !/^(npm_package_|npm_lifecycle_|INIT_CWD$)/.test(k))
)

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  readonly ms: number
}

/** Runs a command to its end (or kills it after `timeoutMs`); never rejects. */
const run = (file: string, args: ReadonlyArray<string>, options: { cwd: string; env?: Record<string, string>; timeoutMs: number }) =>
  new Promise<Run>((resolve) => {
    const started = Date.now()
    execFile(file, args, {
      cwd: options.cwd,
      env: { ...baseEnv, ...options.env },
      timeout: options.timeoutMs,
      killSignal: "SIGKILL",
      maxBuffer: 64 * 1024 * 1024
    }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : null
      const killed = error?.killed ? `\n(killed after ${options.timeoutMs} ms)` : ""
      resolve({ code, stdout, stderr: stderr + killed, ms: Date.now() - started })
    })
  })

/** Like `run`, but a failure throws with the command and the end of its output. */
const mustRun = async (file: string, args: ReadonlyArray<string>, options: Parameters<typeof run>[2]) => {
  const result = await run(file, args, options)
  if (result.code !== 0) {
    throw new Error(`${[file, ...args].join(" ")} exited ${result.code}:\n${(result.stdout + result.stderr).slice(-3000)}`)
  }
  return result
}

const npmFlags = ["--prefer-offline", "--no-audit", "--no-fund", "--fetch-timeout=60000", "--fetch-retries=1"]

/** The README's "Install in your application" command, with the tarball's path. */
const installArgs = (file: string) => [
  "install",
  file,
  "effect@^3.22.4",
  "@effect/platform@^0.97.2",
  "@effect/sql-pg@^0.53.0",
  "@types/node@^20", // for the test's TypeScript file (console, process)
  ...npmFlags
]

let scratch = ""
let app = ""
let tarball = ""
let tarballFiles: Array<string> = []
let db: TestDatabase
let api: Api

/** Every `effect` package under node_modules: one, or the application has two runtimes. */
const effectCopies = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    if (!e.isDirectory()) return []
    const path = join(dir, e.name)
    if (e.name === "effect" && existsSync(join(path, "package.json"))) return [path, ...effectCopies(path)]
    return effectCopies(path)
  })

// Server pass only: nothing in it depends on the test database's kind (its `ferry run` also uses an
// embedded database of its own), and packing, installing and tsc cost 1.5–3 minutes of CPU, which the
// embedded pass's timing-sensitive tests (the demo's two runs) should not share.
describe.skipIf(!usingServer)("the packed package, installed in an application", () => {
  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), "ferry-package-"))
    app = join(scratch, "app")
    ;[db, api] = await Promise.all([createTestDatabase(), startApi(makeRecords(30))])

    // a copy of the checkout without its build or dependencies' files, so that packing (which runs
    // `prepare`, the full build) does not rewrite the dist/ the other tests run
    const staging = join(scratch, "src")
    cpSync(root, staging, {
      recursive: true,
      filter: (path) => !/[\\/](node_modules|dist|\.git|\.ferry|coverage)$/.test(path)
    })
    symlinkSync(join(root, "node_modules"), join(staging, "node_modules"), "dir")
    const packStarted = Date.now()
    const packed = await mustRun("npm", ["pack", "--json", "--pack-destination", scratch], { cwd: staging, timeoutMs: 240_000 })
    const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf("[")))
    console.log(`npm pack (with the build): ${Date.now() - packStarted} ms`)
    tarballFiles = info.files.map((f: { path: string }) => f.path).sort()

    mkdirSync(app)
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "scratch-app", private: true, type: "module" }))
    tarball = join(scratch, info.filename)
    const installed = await mustRun("npm", installArgs(tarball), { cwd: app, timeoutMs: 300_000 })
    console.log(`npm install of the tarball and its peers: ${installed.ms} ms`)
  }, 600_000)

  afterAll(async () => {
    await api?.close()
    await db?.drop()
    if (scratch) rmSync(scratch, { recursive: true, force: true })
  })

  it("holds the bin, the library with its types, the config schema, README and LICENSE, and no tests or scripts", () => {
    expect(tarballFiles).toEqual(expect.arrayContaining([
      "LICENSE",
      "README.md",
      "package.json",
      "ferry.schema.json",
      "bin/ferry.mjs",
      "dist/ferry-cli.js",
      "dist/index.js",
      "dist/index.d.ts",
      "dist/domain/StreamSpec.d.ts",
      "dist/testing/index.js",
      "dist/testing/index.d.ts"
    ]))
    const unexpected = tarballFiles.filter((f) =>
      !["LICENSE", "README.md", "package.json", "ferry.schema.json", "bin/ferry.mjs"].includes(f) &&
      !/^dist\/[\w/-]+\.(js|d\.ts)$/.test(f)
    )
    expect(unexpected).toEqual([])
  })

  it("installs one copy of Effect 3 (the peers), none inside Ferry", () => {
    const copies = effectCopies(join(app, "node_modules"))
    expect(copies).toEqual([join(app, "node_modules", "effect")])
    expect(JSON.parse(readFileSync(join(copies[0]!, "package.json"), "utf8")).version).toMatch(/^3\./)
    expect(existsSync(join(app, "node_modules", "ferry", "node_modules"))).toBe(false)
  })

  it("an application on Effect 4 is refused by npm (ERESOLVE), not given a second Effect inside Ferry", async () => {
    const other = join(scratch, "effect4-app")
    mkdirSync(other)
    writeFileSync(join(other, "package.json"), JSON.stringify({ name: "effect4-app", private: true, type: "module" }))
    const result = await run("npm", ["install", "--dry-run", tarball, "effect@^4", ...npmFlags], { cwd: other, timeoutMs: 120_000 })
    expect(result.code, result.stdout + result.stderr).not.toBe(0)
    expect(result.stderr).toMatch(/ERESOLVE[\s\S]*peer effect@"\^3/)
  })

  it("npx ferry --version prints the package's version", async () => {
    // --no: never fetch a package named `ferry` from the registry instead of the installed one
    const result = await run("npx", ["--no", "--", "ferry", "--version"], { cwd: app, timeoutMs: 60_000 })
    expect(result).toMatchObject({ code: 0, stdout: `ferry ${pkg.version}\n` })
  })

  it("ferry run syncs a local API into PostgreSQL, then into the embedded database", async () => {
    const cfg = (database?: string) =>
      join(streamConfig({ url: `${api.url}/link`, name: "package_items", ...(database === undefined ? {} : { database }) }), "ferry.config.yaml")
    const env = { FERRY_LOG_FORMAT: "json", DATABASE_URL: db.url, FERRY_DATA_DIR: join(scratch, "pgdata") }

    const server = await run("npx", ["--no", "--", "ferry", "run", "--config", cfg()], { cwd: app, env, timeoutMs: 120_000 })
    expect(server.stderr).not.toMatch(/\n\s+at /)
    expect(server.code).toBe(0)
    const [summary] = summaries({ ...server, signal: null, logs: parseLogs(server.stderr) })
    expect(summary).toMatchObject({ status: "succeeded", fetched: 30, inserted: 30 })
    const [{ n }] = await db.query(`SELECT count(*)::int AS n FROM package_items`)
    expect(n).toBe(30)

    // the embedded database: PGlite and its WASM files load from the installed dependencies
    const embedded = await run("npx", ["--no", "--", "ferry", "run", "--config", cfg("")], { cwd: app, env, timeoutMs: 120_000 })
    expect(embedded.stderr).not.toMatch(/\n\s+at /)
    expect(embedded.code).toBe(0)
    expect(summaries({ ...embedded, signal: null, logs: parseLogs(embedded.stderr) })).toMatchObject([
      { status: "succeeded", fetched: 30, inserted: 30 }
    ])
  })

  it("a TypeScript file importing Ferry's public API and ferry/testing type-checks with tsc and runs a stream", async () => {
    writeFileSync(join(app, "tsconfig.json"), JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        strict: true,
        skipLibCheck: true,
        types: ["node"],
        outDir: "out"
      },
      include: ["app.ts"]
    }))
    writeFileSync(join(app, "app.ts"), APP)
    const compiled = await mustRun(process.execPath, [tsc, "-p", "tsconfig.json"], { cwd: app, timeoutMs: 180_000 })
    console.log(`tsc: ${compiled.ms} ms`)

    const result = await run(process.execPath, ["out/app.js"], {
      cwd: app,
      env: { API_URL: api.url, DATABASE_URL: db.url },
      timeoutMs: 60_000
    })
    expect(result.stderr).toBe("")
    // the last line; before it, Ferry's log lines through Effect's default logger
    const summary = JSON.parse(result.stdout.trim().split("\n").at(-1)!)
    expect(summary).toMatchObject({ version: pkg.version, status: "succeeded", fetched: 30, inserted: 30, inMemory: 2 })
    const [{ n }] = await db.query(`SELECT count(*)::int AS n FROM app_items`)
    expect(n).toBe(30)
  })
})

/** An application's file: Ferry's API with the application's own Effect, SqlClient and HttpClient. */
const APP = `
import { FetchHttpClient } from "@effect/platform"
import { PgClient } from "@effect/sql-pg"
import { Config, Duration, Effect, Layer, Schema, Stream } from "effect"
import { PostgresCheckpoints, HttpSource, PgSink, type StreamSummary, StreamSpec, syncStream, version } from "ferry"
import * as Testing from "ferry/testing"

const Item = Schema.Struct({ id: Schema.String, name: Schema.String, amount: Schema.Number, updated_at: Schema.Date })

const items = (apiUrl: string) =>
  StreamSpec.make({
    name: "app_items",
    schema: Item,
    source: { url: apiUrl + "/link", records: "data", pagination: { type: "link" } },
    incremental: { cursorField: "updated_at", param: "since", order: "asc" },
    target: { table: "app_items", primaryKey: ["id"] }
  })

// Ferry's types, not \`any\`: a stream without a name does not compile
// @ts-expect-error
export const unnamed = () => StreamSpec.make({ schema: Item, target: { table: "t", primaryKey: ["id"] } })

const main = Effect.gen(function*() {
  const apiUrl = yield* Config.string("API_URL")
  const databaseUrl = yield* Config.redacted("DATABASE_URL")
  const services = Layer.mergeAll(PgSink.layer(), PostgresCheckpoints.layer, HttpSource.layer).pipe(
    Layer.provideMerge(PgClient.layer({ url: databaseUrl, connectTimeout: Duration.seconds(5) })),
    Layer.provide(FetchHttpClient.layer)
  )
  const summary: StreamSummary = yield* syncStream(items(apiUrl), { runId: "package-test" }).pipe(Effect.provide(services))
  // the same stream over ferry/testing's in-memory layers: the subpath resolves, with its types
  const record = (id: string) => ({ id, name: id, amount: 1, updated_at: "2026-01-01T00:00:00Z" })
  const page = { records: [record("a"), record("b")], url: "memory", retries: 0, bytes: 0 }
  const inMemory = yield* syncStream(items(apiUrl), { runId: "package-test-memory" }).pipe(
    Effect.provide(Layer.merge(Testing.layer(), Testing.MemorySource.layer(() => Stream.make(page))))
  )
  console.log(JSON.stringify({ version, ...summary, inMemory: inMemory.inserted }))
})

Effect.runPromise(main).catch((e) => {
  console.error(e)
  process.exitCode = 1
})
`

describe("a copy of Ferry without its build", () => {
  it("the bin says in one line that dist/ is missing (exit 70), in JSON or on a terminal, with no stack", async () => {
    const copy = mkdtempSync(join(tmpdir(), "ferry-unbuilt-"))
    try {
      mkdirSync(join(copy, "bin"))
      cpSync(join(root, "bin", "ferry.mjs"), join(copy, "bin", "ferry.mjs"))
      const bin = join(copy, "bin", "ferry.mjs")
      const json = await run(process.execPath, [bin, "run"], { cwd: copy, env: { FERRY_LOG_FORMAT: "json" }, timeoutMs: 30_000 })
      expect(json).toMatchObject({ code: 70, stdout: "" })
      const lines = json.stderr.trimEnd().split("\n")
      expect(lines).toHaveLength(1)
      expect(JSON.parse(lines[0]!)).toMatchObject({ level: "error", error: "NotBuilt", exit_code: 70 })
      expect(JSON.parse(lines[0]!).msg).toContain(join(copy, "dist", "ferry-cli.js"))

      const pretty = await run(process.execPath, [bin, "--version"], { cwd: copy, env: { FERRY_LOG_FORMAT: "pretty" }, timeoutMs: 30_000 })
      expect(pretty.code).toBe(70)
      expect(pretty.stderr).toMatch(/^ferry: \S+ferry-cli\.js is missing: this copy of Ferry is not built [^\n]*\n$/)
    } finally {
      rmSync(copy, { recursive: true, force: true })
    }
  })
})
