/**
 * Issue 10, credentials (through the real bin, against a real database and real HTTP servers):
 * 1. a next page on another origin (scheme, host or port) never gets the auth or the fixed headers:
 *    refused (69, naming both origins) unless `source.allowOrigins` lists it, fetched without them if it
 *    does, with them only if `auth.origins` lists it too; https -> http is always refused.
 * 2. a secret placed anywhere (the URL's path, a parameter that is no auth) never shows in the logs,
 *    `ferry.runs`, `status` (table and JSON) or `check`.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Either, Exit, Option, Redacted, Stream } from "effect"
import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync } from "node:fs"
import * as https from "node:https"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Config from "../src/config/Config.js"
import * as HttpSource from "../src/source/http/HttpSource.js"
import { pagesOf } from "../src/Source.js"
import { carriesCredentials, nextPageRefusal, parseOrigin } from "../src/domain/Origin.js"
import { effectiveAuth } from "../src/source/http/Request.js"
import * as StreamSpec from "../src/domain/StreamSpec.js"
import { type CliResult, configDir, ferry } from "./support/cli.js"
import { json, type SeenRequest, startServer, type TestServer } from "./support/http.js"
import { createTestDatabase, type TestDatabase } from "./support/pg.js"
import { basicForm, expectNoSecrets, ferryTablesText, withPassword } from "./support/secrets.js"
import { Schema } from "effect"

const TOKEN = "tok-9Fq2xLw7Rk3vPz"
const TENANT = "tenant-Hb5Jm8Nc2Yd6"
const DB_PASSWORD = "pw-Zr4Kt7Wq1Ms9"

let db: TestDatabase
/** the source; serves page 1 at /items (Link to `nextUrl`) and page 2 at /more */
let source: TestServer
/** another origin: the same host, another port */
let other: TestServer
let nextUrl = ""

const page2 = (res: Parameters<typeof json>[0]) => json(res, { data: [{ id: "3", name: "c" }] })

beforeAll(async () => {
  db = await createTestDatabase()
  const handler = (_req: unknown, res: Parameters<typeof json>[0], url: URL) => {
    if (url.pathname === "/items") {
      return json(res, { data: [{ id: "1", name: "a" }, { id: "2", name: "b" }] }, 200, { link: `<${nextUrl}>; rel="next"` })
    }
    if (url.pathname === "/more") return page2(res)
    json(res, { error: "no such page" }, 404)
  }
  source = await startServer(handler)
  other = await startServer(handler)
})

afterAll(async () => {
  await source?.close()
  await other?.close()
  await db?.drop()
})

interface AuthCase {
  readonly type: string
  readonly yaml: (origins: string) => string
  /** the credential as the server receives it: [where, value] */
  readonly sent: (req: SeenRequest) => string | undefined
  readonly expected: string
}

const auths: ReadonlyArray<AuthCase> = [
  {
    type: "bearer",
    yaml: (o) => `{ type: bearer, token: "\${TOKEN}"${o} }`,
    sent: (req) => req.headers.authorization,
    expected: `Bearer ${TOKEN}`
  },
  {
    type: "basic",
    yaml: (o) => `{ type: basic, username: ferry, password: "\${TOKEN}"${o} }`,
    sent: (req) => req.headers.authorization,
    expected: `Basic ${basicForm("ferry", TOKEN)}`
  },
  {
    type: "header",
    yaml: (o) => `{ type: header, name: X-Api-Key, value: "\${TOKEN}"${o} }`,
    sent: (req) => req.headers["x-api-key"] as string | undefined,
    expected: TOKEN
  },
  {
    type: "query",
    yaml: (o) => `{ type: query, name: api_key, value: "\${TOKEN}"${o} }`,
    sent: (req) => req.url.searchParams.get("api_key") ?? undefined,
    expected: TOKEN
  }
]

const env = () => ({ DATABASE_URL: withPassword(db.url, DB_PASSWORD), TOKEN, TENANT })
const secrets = [TOKEN, TENANT, DB_PASSWORD, basicForm("ferry", TOKEN)]

/** A one-stream config on the source: link pagination, the auth, a fixed header, and `extra` source lines. */
const config = (name: string, auth: string, extra = "", url = `${source.url}/items`) =>
  configDir(`
database: { url: "\${DATABASE_URL}" }
streams:
  - name: ${name}
    source:
      url: ${url}
      auth: ${auth}
      headers: { X-Tenant: "\${TENANT}" }
      records: data
      pagination: { type: link }
      retry: { attempts: 1 }
${extra}
    target:
      table: ${name}
      primaryKey: [id]
      columns: { id: text, name: text }
`)

/** every text of the request: where a credential or a fixed header would be */
const requestText = (req: SeenRequest) => `${req.url.toString()} ${JSON.stringify(req.headers)}`

const noSecretsIn = async (...results: ReadonlyArray<CliResult>) =>
  expectNoSecrets([...results.flatMap((r) => [r.stdout, r.stderr]), ...(await ferryTablesText(db))], secrets)

const errorLines = (result: CliResult) => result.logs.filter((l) => l.level === "error").map((l) => `${l.msg} ${l.error ?? ""}`)

const rowsOf = async (table: string) => (await db.query<{ id: string }>(`SELECT id FROM ${table} ORDER BY id`)).map((r) => r.id)

describe.each(auths)("a next page on another origin, $type auth", (auth) => {
  it("is refused with exit 69 naming both origins, and the other origin gets no request", async () => {
    nextUrl = `${other.url}/more?page=2`
    const before = other.requests.length
    const sourceBefore = source.requests.length
    const result = await ferry(["run"], { cwd: config(`refused_${auth.type}`, auth.yaml("")), env: env() })
    expect(result.code).toBe(69)
    expect(other.requests.length).toBe(before)
    // the source itself got the credentials and the fixed header
    const first = source.requests[sourceBefore]!
    expect(auth.sent(first)).toBe(auth.expected)
    expect(first.headers["x-tenant"]).toBe(TENANT)
    const errors = errorLines(result).join("\n")
    expect(errors).toContain(source.url)
    expect(errors).toContain(other.url)
    expect(errors).toContain("source.allowOrigins")
    await noSecretsIn(result)
  })

  it("with source.allowOrigins listing it, is fetched without the credentials or the fixed headers", async () => {
    nextUrl = `${other.url}/more?page=2`
    const before = other.requests.length
    const name = `allowed_${auth.type}`
    const result = await ferry(["run"], {
      cwd: config(name, auth.yaml(""), `      allowOrigins: [${other.url}]`),
      env: env()
    })
    expect(result.code).toBe(0)
    const seen = other.requests.slice(before)
    expect(seen.length).toBe(1)
    expect(auth.sent(seen[0]!)).toBeUndefined()
    expect(seen[0]!.headers["x-tenant"]).toBeUndefined()
    expectNoSecrets([requestText(seen[0]!)], [TOKEN, TENANT, basicForm("ferry", TOKEN)])
    expect(await rowsOf(name)).toEqual(["1", "2", "3"])
    await noSecretsIn(result)
  })

  it("with auth.origins listing it too, is fetched with the credentials and the fixed headers", async () => {
    nextUrl = `${other.url}/more?page=2`
    const before = other.requests.length
    const name = `authorized_${auth.type}`
    const result = await ferry(["run"], {
      cwd: config(name, auth.yaml(`, origins: [${other.url}]`), `      allowOrigins: [${other.url}]`),
      env: env()
    })
    expect(result.code).toBe(0)
    const seen = other.requests.slice(before)
    expect(seen.length).toBe(1)
    expect(auth.sent(seen[0]!)).toBe(auth.expected)
    expect(seen[0]!.headers["x-tenant"]).toBe(TENANT)
    expect(await rowsOf(name)).toEqual(["1", "2", "3"])
    await noSecretsIn(result)
  })
})

describe("origins", () => {
  it("a query key or a fixed param the source copied into its link to an allowed origin is taken out before the request", async () => {
    nextUrl = `${other.url}/more?page=2&api_key=${TOKEN}&chat=${TENANT}`
    const before = other.requests.length
    const name = "echoed_key"
    const result = await ferry(["run"], {
      cwd: config(name, auths[3]!.yaml(""), `      params: { chat: "\${TENANT}" }\n      allowOrigins: [${other.url}]`),
      env: env()
    })
    expect(result.code).toBe(0)
    const seen = other.requests.slice(before)
    expect(seen.map((r) => r.url.search)).toEqual(["?page=2"])
    expect(await rowsOf(name)).toEqual(["1", "2", "3"])
    await noSecretsIn(result)
  })

  it("another host name of the same server (localhost for 127.0.0.1) is another origin: refused, no request", async () => {
    const port = new URL(source.url).port
    nextUrl = `http://localhost:${port}/more?page=2`
    const before = source.requests.filter((r) => r.url.pathname === "/more").length
    const result = await ferry(["run"], { cwd: config("other_host", auths[0]!.yaml("")), env: env() })
    expect(result.code).toBe(69)
    expect(source.requests.filter((r) => r.url.pathname === "/more").length).toBe(before)
    expect(errorLines(result).join("\n")).toContain(`http://localhost:${port}`)
  })

  it("the same origin written differently (upper-case host, explicit path) is the same origin: followed with credentials", async () => {
    const port = new URL(source.url).port
    nextUrl = `HTTP://127.0.0.1:${port}/more?page=2`
    const before = source.requests.length
    const name = "same_origin"
    const result = await ferry(["run"], { cwd: config(name, auths[0]!.yaml("")), env: env() })
    expect(result.code).toBe(0)
    const more = source.requests.slice(before).find((r) => r.url.pathname === "/more")!
    expect(more.headers.authorization).toBe(`Bearer ${TOKEN}`)
    expect(await rowsOf(name)).toEqual(["1", "2", "3"])
  })

  it("an https source whose next page is http on the same host is refused even when both lists name it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ferry-tls-"))
    const key = join(dir, "key.pem")
    const cert = join(dir, "cert.pem")
    try {
      execFileSync("openssl", [
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"
      ], { stdio: "ignore" })
    } catch {
      // no openssl: the rule is still checked at the unit level below
      return
    }
    const tls = https.createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
      const url = new URL(req.url ?? "/", "https://127.0.0.1")
      if (url.pathname === "/items") {
        json(res, { data: [{ id: "1", name: "a" }] }, 200, { link: `<${other.url}/more?page=2>; rel="next"` })
      } else json(res, {}, 404)
    })
    await new Promise<void>((resolve) => tls.listen(0, "127.0.0.1", resolve))
    const httpsUrl = `https://127.0.0.1:${(tls.address() as AddressInfo).port}`
    try {
      const before = other.requests.length
      const result = await ferry(["run"], {
        cwd: config(
          "downgrade",
          auths[0]!.yaml(`, origins: [${other.url}]`),
          `      allowOrigins: [${other.url}]`,
          `${httpsUrl}/items`
        ),
        env: { ...env(), NODE_EXTRA_CA_CERTS: cert }
      })
      expect(result.code).toBe(69)
      expect(other.requests.length).toBe(before)
      const errors = errorLines(result).join("\n")
      expect(errors).toContain(httpsUrl)
      expect(errors).toContain(other.url)
      expect(errors).toContain("https down to http")
      // the first page was fetched over TLS: the refusal is the downgrade's, not a TLS failure
      expect(await rowsOf("downgrade")).toEqual(["1"])
      await noSecretsIn(result)
    } finally {
      tls.closeAllConnections()
      await new Promise<void>((resolve) => tls.close(() => resolve()))
    }
  })

  it("the https -> http rule at the unit level: same host and listed, refused; the other way round, allowed", () => {
    const spec = StreamSpec.make({
      name: "s",
      schema: Schema.Struct({ id: Schema.String }),
      source: {
        url: "https://api.example.com/items",
        allowOrigins: ["http://api.example.com", "https://cdn.example.com"],
        auth: { type: "bearer", token: Redacted.make("x"), origins: ["http://api.example.com"] }
      },
      target: { table: "s", primaryKey: ["id"] }
    }).source
    const at = (s: string) => new URL(s)
    expect(nextPageRefusal(spec, at("https://api.example.com/items"), at("http://api.example.com/items?page=2")))
      .toContain("https down to http")
    // from an allowed https origin down to http: refused too
    expect(nextPageRefusal(spec, at("https://cdn.example.com/p"), at("http://api.example.com/p")))
      .toContain("https down to http")
    expect(nextPageRefusal(spec, at("https://api.example.com/items"), at("https://cdn.example.com/p"))).toBeUndefined()
    expect(nextPageRefusal(spec, at("https://api.example.com/items"), at("https://api.example.com:8443/p")))
      .toContain("another origin")
  })

  it("origins and URL credentials are cached per spec, but a spec whose URL changes in place is read again", () => {
    // an application may build a spec and change it in place (its fields are readonly only to TypeScript)
    const spec = { ...StreamSpec.make({
      name: "s",
      schema: Schema.Struct({ id: Schema.String }),
      source: { url: "https://user:pw@api.example.com/items" },
      target: { table: "s", primaryKey: ["id"] }
    }).source }
    const at = (s: string) => new URL(s)
    expect(carriesCredentials(spec, at("https://api.example.com/p"))).toBe(true)
    expect(effectiveAuth(spec)).toMatchObject({ type: "basic", username: "user" })
    ;(spec as { url: string }).url = "https://other.example.com/items"
    expect(carriesCredentials(spec, at("https://api.example.com/p"))).toBe(false)
    expect(carriesCredentials(spec, at("https://other.example.com/p"))).toBe(true)
    expect(effectiveAuth(spec)).toBeUndefined()
  })

  it("an auth.origins array edited in place is read again: a removed origin no longer gets the credentials", () => {
    const spec = StreamSpec.make({
      name: "s",
      schema: Schema.Struct({ id: Schema.String }),
      source: {
        url: "https://api.example.com/items",
        auth: { type: "bearer", token: Redacted.make("t"), origins: ["https://cdn.example.com"] }
      },
      target: { table: "s", primaryKey: ["id"] }
    }).source
    const cdn = new URL("https://cdn.example.com/p")
    expect(carriesCredentials(spec, cdn)).toBe(true)
    const origins = spec.auth!.origins as Array<string>
    origins.splice(0, 1, "https://files.example.com")
    expect(carriesCredentials(spec, cdn)).toBe(false)
    expect(carriesCredentials(spec, new URL("https://files.example.com/p"))).toBe(true)
    origins.length = 0
    expect(carriesCredentials(spec, new URL("https://files.example.com/p"))).toBe(false)
    expect(carriesCredentials(spec, new URL("https://api.example.com/p"))).toBe(true)
  })

  it("StreamSpec.make takes allowOrigins and auth.origins, normalised; a malformed one throws naming the field", () => {
    const make = (allowOrigins: ReadonlyArray<string>) =>
      StreamSpec.make({
        name: "s",
        schema: Schema.Struct({ id: Schema.String }),
        source: {
          url: "https://api.example.com/items",
          allowOrigins,
          auth: { type: "bearer", token: Redacted.make("x"), origins: ["HTTPS://CDN.Example.com:443/"] }
        },
        target: { table: "s", primaryKey: ["id"] }
      }).source
    const spec = make(["HTTPS://CDN.Example.com:443"])
    expect(spec.allowOrigins).toEqual(["https://cdn.example.com"])
    expect(spec.auth?.origins).toEqual(["https://cdn.example.com"])
    expect(() => make(["https://cdn.example.com/path"])).toThrow("source.allowOrigins[0]")
    expect(Either.isLeft(parseOrigin("https://cdn.example.com?x=1"))).toBe(true)
    expect(Either.isLeft(parseOrigin("https://user@cdn.example.com"))).toBe(true)
    expect(Either.isLeft(parseOrigin("ftp://cdn.example.com"))).toBe(true)
    expect(parseOrigin("http://127.0.0.1:8080/")).toEqual(Either.right("http://127.0.0.1:8080"))
  })
})

describe.each([
  ["node:http", () => HttpSource.layerNode],
  ["fetch", () => HttpSource.layerFetch]
] as const)("a redirect to another origin, over %s", (_name, layer) => {
  it("is not followed: no request reaches the other origin, and the stream fails with 69", async () => {
    const redirecting = await startServer((_req, res) => {
      res.writeHead(302, { location: `${other.url}/more?page=2` })
      res.end()
    })
    try {
      const before = other.requests.length
      const spec = StreamSpec.make({
        name: "redirected",
        schema: Schema.Struct({ id: Schema.String }),
        source: {
          url: `${redirecting.url}/items`,
          records: "data",
          headers: { "X-Tenant": TENANT },
          auth: { type: "header", name: "X-Api-Key", value: Redacted.make(TOKEN) },
          retry: { attempts: 1 }
        },
        target: { table: "redirected", primaryKey: ["id"] }
      })
      const exit = await Effect.runPromiseExit(
        Stream.runDrain(pagesOf(spec, Option.none())).pipe(Effect.provide(layer()))
      )
      expect(Exit.isFailure(exit)).toBe(true)
      const error = Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined
      expect(error?.exitCode).toBe(69)
      expect(other.requests.length).toBe(before)
    } finally {
      await redirecting.close()
    }
  })
})

describe("origins in the config", () => {
  const bad = async (auth: string, extra: string) => {
    const result = await ferry(["run"], { cwd: config("bad_origins", auth, extra), env: env() })
    expect(result.code).toBe(78)
    expect(result.stdout).toBe("")
    return errorLines(result).join("\n")
  }

  it("an allowOrigins entry with a path is a 78 naming the field", async () => {
    expect(await bad(auths[0]!.yaml(""), "      allowOrigins: [https://cdn.example.com/files]"))
      .toContain("streams[0].source.allowOrigins[0]: expected an origin")
  })

  it("an auth.origins entry with a query is a 78 naming the field", async () => {
    expect(await bad(auths[0]!.yaml(", origins: [\"https://cdn.example.com?x=1\"]"), ""))
      .toContain("streams[0].source.auth.origins[0]: expected an origin")
  })

  it("an auth.origins entry that allowOrigins does not list is a 78: no request would go there", async () => {
    expect(await bad(auths[0]!.yaml(", origins: [https://cdn.example.com]"), ""))
      .toContain("streams[0].source.auth.origins[0]: https://cdn.example.com is neither")
  })

  it("the JSON Schema has both keys", () => {
    const schema = JSON.stringify(Config.jsonSchema())
    expect(schema).toContain("allowOrigins")
    expect(schema).toContain("\"origins\"")
  })
})

describe("a secret anywhere in the config", () => {
  /** in the URL's path (a Telegram-style bot token) and in a parameter that is not the auth */
  const PATH_TOKEN = "bot-7Hc4Qm9Xp2Lw5Ns"
  /** characters the URL encodings write differently (`!` and `~`: encodeURIComponent keeps them) */
  const PARAM_SECRET = "chat:S3c!r~et/Qv8"

  const secretConfig = (name: string, path: string, retry: string) =>
    configDir(`
database: { url: "\${DATABASE_URL}" }
streams:
  - name: ${name}
    source:
      url: ${source.url}/${path}/\${PATH_TOKEN}/items
      params: { chat: "\${PARAM_SECRET}", limit: 50 }
      records: data
      retry: ${retry}
    target:
      table: ${name}
      primaryKey: [id]
      columns: { id: text, name: text }
`)

  const everywhere = async (name: string, cwd: string) => {
    const e = { ...env(), PATH_TOKEN, PARAM_SECRET, FERRY_LOG_LEVEL: "debug" }
    const run = await ferry(["run"], { cwd, env: e })
    expect(run.code).toBe(69)
    const statusJson = await ferry(["status", "--json"], { cwd, env: e })
    const status = await ferry(["status"], { cwd, env: e })
    const check = await ferry(["check"], { cwd, env: e })
    expect(statusJson.code).toBe(0)
    expect(status.code).toBe(0)
    expect(check.code).toBe(69)
    // the error is there, only without the secrets
    const recorded = JSON.parse(statusJson.stdout).streams[0].error as string
    expect(recorded).toContain(`${source.url}/bot/***/items`)
    expect(status.stdout).toContain(`${name}: last error:`)
    expect(check.stdout).toContain(`FAIL  ${name}`)
    expectNoSecrets(
      [...[run, statusJson, status, check].flatMap((r) => [r.stdout, r.stderr]), ...(await ferryTablesText(db))],
      [PATH_TOKEN, PARAM_SECRET, DB_PASSWORD]
    )
  }

  it("a token in the URL's path and in a plain parameter shows nowhere when the source answers 404", async () => {
    await everywhere("secret_404", secretConfig("secret_404", "bot", "{ attempts: 1 }"))
  })

  it("a token in the URL's path and in a plain parameter shows nowhere when the source keeps failing (500 after retries)", async () => {
    const failing = await startServer((_req, res) => json(res, { error: "boom" }, 500))
    const saved = source
    try {
      source = failing
      await everywhere("secret_500", secretConfig("secret_500", "bot", "{ attempts: 2, base: 10 millis, max: 50 millis }"))
    } finally {
      source = saved
      await failing.close()
    }
    expect(failing.requests.length).toBeGreaterThanOrEqual(2)
  })

  it("a default written in the file (${VAR:-text}) is no secret, nor a name or a short number; the environment's other values are", async () => {
    const file = join(configDir(""), "ferry.config.yaml")
    const text = `
streams:
  - name: s
    source:
      url: "https://api.example.com/\${SEGMENT:-plain-default}/\${KEY}"
      params: { limit: "\${PAGE_SIZE}", account: "\${ACCOUNT}" }
      incremental: { cursorField: updated_at, param: since, initial: "\${SINCE}" }
    target: { table: "\${TABLE}", primaryKey: [id] }
`
    const config = await Effect.runPromise(
      Config.parse(text, file, {
        KEY: "from-env-Kq7Lp2",
        TABLE: "orders_table",
        PAGE_SIZE: "1000",
        ACCOUNT: "73310552",
        SINCE: "2024-01-01T00:00:00Z"
      })
    )
    expect(config.secrets).toContain("from-env-Kq7Lp2")
    expect(config.secrets).not.toContain("plain-default")
    // names go into Ferry's own tables as they are: a table name is no secret
    expect(config.secrets).not.toContain("orders_table")
    // nor the initial cursor: it becomes the checkpoint, which status shows
    expect(config.secrets).not.toContain("2024-01-01T00:00:00Z")
    // a short number is a setting: redacting "1000" would break `"fetched":10000` in a JSON log line
    expect(config.secrets).not.toContain("1000")
    expect(config.secrets).toContain("73310552")
  })
})
