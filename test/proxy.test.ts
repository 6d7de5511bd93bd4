/**
 * HTTPS_PROXY, HTTP_PROXY and NO_PROXY through the bin, against a real proxy (test/support/proxy.ts)
 * and sources on 127.0.0.1 under a name only the proxy resolves (`api.ferry.test`): a stream that
 * syncs through it proves the proxy resolved the host, not Ferry.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as http from "node:http"
import * as https from "node:https"
import * as ProxyAgent from "../src/source/http/ProxyAgent.js"
import { configDir, ferry, streamConfig } from "./support/cli.js"
import { fileDatabase } from "./support/pg.js"
import { listening, makeCertificate, startProxy, type TestProxy } from "./support/proxy.js"
import { basicForm, expectNoSecrets, ferryTablesText } from "./support/secrets.js"

const HOST = "api.ferry.test"
const PASSWORD = "pr0xy-pa55word-xyz"
const TOKEN = "t0ken-issued-by-the-api"
const db = fileDatabase("ferry_proxy")
const certificate = makeCertificate([HOST])

interface Source {
  readonly port: number
  /** method and path of every request that reached the source */
  readonly seen: Array<string>
  readonly close: () => Promise<void>
}

/** Two pages of `{ data }` with a Link header on the Host it was asked for; `/token` issues a bearer token. */
const handler = (seen: Array<string>, scheme: string) => (req: http.IncomingMessage, res: http.ServerResponse) => {
  seen.push(`${req.method} ${req.url}`)
  const url = new URL(req.url ?? "/", `${scheme}://${req.headers.host}`)
  if (url.pathname === "/token") {
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ access_token: TOKEN, expires_in: 600 }))
    return
  }
  if (url.pathname === "/oauth-items" && req.headers.authorization !== `Bearer ${TOKEN}`) {
    res.writeHead(401).end()
    return
  }
  const page = Number(url.searchParams.get("page") ?? "1")
  const next = page < 2 ? { link: `<${url.origin}${url.pathname}?page=${page + 1}>; rel="next"` } : {}
  const data = [1, 2].map((i) => ({ id: `${page}-${i}`, name: `p${page}`, amount: i, updated_at: "2024-01-01T00:00:00Z" }))
  res.writeHead(200, { "content-type": "application/json", ...next }).end(JSON.stringify({ data }))
}

const listen = (server: http.Server, seen: Array<string>): Promise<Source> => listening(server, seen)

let secure: Source
let plain: Source
let proxy: TestProxy
let guarded: TestProxy
const opened: Array<{ close: () => Promise<void> }> = []

beforeAll(async () => {
  const seenSecure: Array<string> = []
  secure = await listen(https.createServer({ key: certificate.key, cert: certificate.cert }, handler(seenSecure, "https")), seenSecure)
  const seenPlain: Array<string> = []
  plain = await listen(http.createServer(handler(seenPlain, "http")), seenPlain)
  proxy = await startProxy({ hosts: { [HOST]: "127.0.0.1" } })
  guarded = await startProxy({ hosts: { [HOST]: "127.0.0.1" }, credentials: `ferry:${PASSWORD}` })
  opened.push(secure, plain, proxy, guarded)
})
afterAll(async () => {
  await Promise.all(opened.map((s) => s.close()))
})

const reset = () => {
  for (const list of [secure.seen, plain.seen, proxy.seen, guarded.seen]) list.length = 0
}

const run = (name: string, url: string, env: Record<string, string>, auth?: string) =>
  ferry(["run"], {
    cwd: streamConfig({ name, url, incremental: null, ...(auth === undefined ? {} : { auth }) }),
    env: { DATABASE_URL: db.url, NODE_EXTRA_CA_CERTS: certificate.caFile, ...env }
  })

const count = async (table: string) => (await db.query(`SELECT count(*)::int AS n FROM "${table}"`))[0].n

describe("through a proxy", () => {
  it("https: a CONNECT tunnel to the host and port, the name resolved by the proxy, TLS end to end", async () => {
    reset()
    const result = await run("proxy_https", `https://${HOST}:${secure.port}/items`, { HTTPS_PROXY: `http://127.0.0.1:${proxy.port}` })
    expect(result.code, result.stderr).toBe(0)
    expect(await count("proxy_https")).toBe(4)
    // the proxy saw the tunnel only (the paths are inside TLS); the source saw both pages
    expect(proxy.seen.map((s) => `${s.method} ${s.target}`)).toEqual([`CONNECT ${HOST}:${secure.port}`])
    expect(secure.seen).toEqual(["GET /items", "GET /items?page=2"])
  })

  it("http: absolute-form requests to the proxy (http_proxy, lower case, wins over HTTP_PROXY)", async () => {
    reset()
    const result = await run("proxy_http", `http://${HOST}:${plain.port}/items`, {
      http_proxy: `127.0.0.1:${proxy.port}`, // no scheme: http, as for curl
      HTTP_PROXY: "http://127.0.0.1:9" // would fail: the lower-case spelling is the one used
    })
    expect(result.code, result.stderr).toBe(0)
    expect(await count("proxy_http")).toBe(4)
    expect(proxy.seen.map((s) => `${s.method} ${s.target}`)).toEqual([
      `GET http://${HOST}:${plain.port}/items`,
      `GET http://${HOST}:${plain.port}/items?page=2`
    ])
  })

  it("http: a request on a kept-alive connection to the proxy is absolute-form too, even ended before it had a socket", async () => {
    proxy.seen.length = 0
    const server = { url: new URL(`http://127.0.0.1:${proxy.port}`), authorization: undefined, variable: "HTTP_PROXY", secrets: [] }
    const agents = ProxyAgent.make({ http: server, https: undefined, noProxy: [] }, () => server)
    // ended at once, as Ferry's page requests are (NodeAgent.ts): the header is written before the agent
    // hands out a socket
    const get = (path: string) =>
      new Promise<number>((resolve, reject) => {
        const request = http.request(new URL(`http://${HOST}:${plain.port}${path}`), { agent: agents.http })
        request.on("error", reject)
        request.on("response", (response) => response.resume().on("end", () => resolve(response.statusCode ?? 0)))
        request.end()
      })
    try {
      expect([await get("/items"), await get("/items?page=2"), await get("/items?page=3")]).toEqual([200, 200, 200])
    } finally {
      agents.http.destroy()
    }
    expect(proxy.seen.map((s) => s.target)).toEqual(["/items", "/items?page=2", "/items?page=3"].map((p) => `http://${HOST}:${plain.port}${p}`))
  })

  it("NO_PROXY: a listed host goes direct while another stream of the same run goes through the proxy", async () => {
    reset()
    const cwd = configDir(`
database: { url: "\${DATABASE_URL}" }
streams:
${
      [["proxy_direct", `http://127.0.0.1:${plain.port}/items`], ["proxy_proxied", `http://${HOST}:${plain.port}/items`]].map(([name, url]) => `
  - name: ${name}
    source: { url: "${url}", records: data, pagination: { type: link }, retry: { attempts: 1 } }
    target: { table: ${name}, primaryKey: [id], columns: { id: text, name: text } }`).join("")
    }
`)
    const result = await ferry(["run"], {
      cwd,
      env: { DATABASE_URL: db.url, HTTP_PROXY: `http://127.0.0.1:${proxy.port}`, NO_PROXY: `example.com, 127.0.0.0/8` }
    })
    expect(result.code, result.stderr).toBe(0)
    expect(await count("proxy_direct")).toBe(4)
    expect(await count("proxy_proxied")).toBe(4)
    expect(proxy.seen.every((s) => s.target.startsWith(`http://${HOST}:`))).toBe(true)
    expect(proxy.seen).toHaveLength(2)
    expect(plain.seen).toHaveLength(4)
  })

  it("the OAuth2 token request goes through the proxy too", async () => {
    reset()
    const base = `https://${HOST}:${secure.port}`
    const result = await run("proxy_oauth", `${base}/oauth-items`, { HTTPS_PROXY: `http://127.0.0.1:${proxy.port}` },
      `{ type: oauth2, tokenUrl: "${base}/token", clientId: ferry, clientSecret: "client-s3cret-value" }`)
    expect(result.code, result.stderr).toBe(0)
    expect(secure.seen).toEqual(["POST /token", "GET /oauth-items", "GET /oauth-items?page=2"])
    expect(proxy.seen.length).toBeGreaterThan(0)
    expect(proxy.seen.every((s) => s.target === `${HOST}:${secure.port}`)).toBe(true)
  })
})

describe("proxy credentials and failures", () => {
  it("credentials in the proxy URL go as Proxy-Authorization, and no output holds the password", async () => {
    reset()
    const result = await run("proxy_auth", `https://${HOST}:${secure.port}/items`, {
      HTTPS_PROXY: `http://ferry:${PASSWORD}@127.0.0.1:${guarded.port}`
    })
    expect(result.code, result.stderr).toBe(0)
    expect(guarded.seen[0]!.authorization).toBe(`Basic ${basicForm("ferry", PASSWORD)}`)
    expectNoSecrets([result.stdout, result.stderr, ...(await ferryTablesText(db))], [PASSWORD, basicForm("ferry", PASSWORD)])
  })

  it("wrong credentials: the proxy's 407 fails the stream (69) at once, saying so, without the password", async () => {
    reset()
    const wrong = "wr0ng-pa55word-abc"
    const result = await run("proxy_407", `http://${HOST}:${plain.port}/items`, {
      HTTP_PROXY: `http://ferry:${wrong}@127.0.0.1:${guarded.port}`
    })
    expect(result.code).toBe(69)
    expect(result.stderr).toContain("the proxy refused the credentials (HTTP 407")
    expect(guarded.seen).toHaveLength(1) // not retried: the same credentials would be refused again
    expectNoSecrets([result.stdout, result.stderr, ...(await ferryTablesText(db))], [wrong, basicForm("ferry", wrong)])
  })

  it("a proxy that is down: 69 after the retries, naming the proxy's host and variable, not its credentials", async () => {
    const down = await startProxy()
    await down.close() // a port where nothing listens now
    const result = await run("proxy_down", `https://${HOST}:${secure.port}/items`, {
      HTTPS_PROXY: `http://ferry:${PASSWORD}@127.0.0.1:${down.port}`
    })
    expect(result.code).toBe(69)
    expect(result.stderr).toMatch(new RegExp(`through the proxy 127\\.0\\.0\\.1:${down.port} \\(HTTPS_PROXY\\).*ECONNREFUSED`))
    expect(result.stderr).toContain("gave up after 2 attempt(s)")
    expectNoSecrets([result.stdout, result.stderr, ...(await ferryTablesText(db))], [PASSWORD])
  })

  it("a proxy that cannot reach the host answers CONNECT with an error: 69, naming the proxy", async () => {
    const result = await run("proxy_502", `https://unknown.ferry.test:${secure.port}/items`, {
      HTTPS_PROXY: `http://127.0.0.1:${proxy.port}`
    })
    expect(result.code).toBe(69)
    expect(result.stderr).toMatch(/through the proxy 127\.0\.0\.1:\d+ \(HTTPS_PROXY\): the proxy answered CONNECT unknown\.ferry\.test:\d+ with HTTP \d{3}/)
  })

  it.each([
    ["HTTPS_PROXY", "socks5://ferry:s0cks-secret@127.0.0.1:1080", "is a socks5:// proxy"],
    ["http_proxy", "http://[not-a-host", "is not a proxy URL"],
    ["HTTP_PROXY", "http://ferry:%E0%A4%A@127.0.0.1:3128", "has credentials that are not URL-encoded text"]
  ])("a malformed %s is a config error (78) naming the variable, not its value", async (variable, value, why) => {
    const result = await run("proxy_bad", `https://${HOST}:${secure.port}/items`, { [variable]: value })
    expect(result.code).toBe(78)
    expect(result.stderr).toContain(`the environment variable ${variable} ${why}`)
    expect(result.stderr).not.toContain(value)
    expect(result.stderr).not.toContain("s0cks-secret")
  })

  it("a malformed proxy variable is 78 before the database is opened, and no business of status or reset", async () => {
    const cwd = streamConfig({ name: "proxy_order", url: `https://${HOST}:${secure.port}/items`, incremental: null })
    const bad = { HTTPS_PROXY: "socks5://127.0.0.1:1080" }
    // the database is down too (nothing listens on port 1): the config error is what the user must fix first
    const down = await ferry(["run"], { cwd, env: { DATABASE_URL: "postgres://ferry@127.0.0.1:1/ferry", ...bad } })
    expect(down.code, down.stderr).toBe(78)
    expect(down.stderr).toContain("the environment variable HTTPS_PROXY is a socks5:// proxy")
    for (const args of [["status"], ["reset", "--stream", "proxy_order"]]) {
      const result = await ferry(args, { cwd, env: { DATABASE_URL: db.url, ...bad } })
      expect(result.code, `${args.join(" ")}: ${result.stderr}`).toBe(0)
    }
  })
})
