/**
 * `auth: { type: oauth2 }` through the bin, against a real OAuth2 server (oauth2-mock-server) and an
 * API on 127.0.0.1 that accepts only the JWTs that server issued (payload `iss`, and not expired).
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { OAuth2Server } from "oauth2-mock-server"
import { configDir, ferry, streamConfig } from "./support/cli.js"
import { fileDatabase } from "./support/pg.js"
import { expectNoSecrets, ferryTablesText } from "./support/secrets.js"

const SECRET = "s3cr3t-client-secret-xyz"
const db = fileDatabase("ferry_oauth2")
const oauth = new OAuth2Server()
let api: http.Server
let apiUrl = ""
/** tokens the API saw, and the 401s it gave */
let seen: Array<string> = []
let refuseNext = 0
let tokenRequests = 0
let lastGrant: Record<string, string> = {}

const claims = (token: string): { iss?: string; exp?: number } => {
  try {
    return JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString())
  } catch {
    return {}
  }
}

beforeAll(async () => {
  await oauth.issuer.keys.generate("RS256")
  await oauth.start(0, "127.0.0.1")
  oauth.service.on("beforeResponse", (response, req) => {
    tokenRequests++
    lastGrant = { ...(req.body as Record<string, string>) }
    if ((req.body as Record<string, string>).client_secret !== SECRET) {
      response.statusCode = 401
      response.body = { error: "invalid_client", error_description: `bad secret ${(req.body as any).client_secret}` }
    }
  })
  api = http.createServer((req, res) => {
    const token = (req.headers.authorization ?? "").replace(/^Bearer /, "")
    const { iss, exp } = claims(token)
    const valid = iss === oauth.issuer.url && exp !== undefined && exp * 1000 > Date.now()
    if (!valid || refuseNext > 0) {
      if (valid) refuseNext--
      res.writeHead(401, { "content-type": "application/json" }).end(`{"error":"unauthorized"}`)
      return
    }
    seen.push(token)
    const url = new URL(req.url!, apiUrl)
    const page = Number(url.searchParams.get("page") ?? "1")
    const next = page < 3 ? { link: `<${apiUrl}/items?page=${page + 1}>; rel="next"` } : {}
    setTimeout(() => {
      res.writeHead(200, { "content-type": "application/json", ...next })
        .end(JSON.stringify({ data: [{ id: String(page), name: `p${page}` }] }))
    }, 700)
  })
  await new Promise<void>((resolve) => api.listen(0, "127.0.0.1", resolve))
  apiUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}`
})

afterAll(async () => {
  await oauth.stop()
  await new Promise((resolve) => api.close(resolve))
})

const run = (name: string, secret = SECRET, extra = "") =>
  ferry(["run"], {
    cwd: streamConfig({
      name,
      url: `${apiUrl}/items`,
      incremental: null,
      auth: `{ type: oauth2, tokenUrl: "${oauth.issuer.url}/token", clientId: ferry, clientSecret: "\${SECRET}", scopes: [read]${extra} }`
    }),
    env: { DATABASE_URL: db.url, SECRET: secret }
  })

const ids = async (table: string) => (await db.query(`SELECT id FROM ${table} ORDER BY id`)).map((r) => r.id)

describe("oauth2 client credentials", () => {
  it("fetches one token per run and sends it as Bearer", async () => {
    seen = []
    tokenRequests = 0
    const result = await run("oauth_ok")
    expect(result.code, result.stderr).toBe(0)
    expect(await ids("oauth_ok")).toEqual(["1", "2", "3"])
    expect(tokenRequests).toBe(1)
    expect(new Set(seen).size).toBe(1)
  })

  it("renews a token that expires mid-run", async () => {
    seen = []
    tokenRequests = 0
    const short = (token: { payload: Record<string, unknown> }) => {
      token.payload.exp = Math.floor(Date.now() / 1000) + 2
    }
    const shortResponse = (response: { body: any }) => {
      if (typeof response.body === "object" && response.body.access_token) response.body.expires_in = 1
    }
    oauth.service.on("beforeTokenSigning", short)
    oauth.service.on("beforeResponse", shortResponse)
    try {
      const result = await run("oauth_expiry")
      expect(result.code, result.stderr).toBe(0)
    } finally {
      oauth.service.off("beforeTokenSigning", short)
      oauth.service.off("beforeResponse", shortResponse)
    }
    expect(await ids("oauth_expiry")).toEqual(["1", "2", "3"])
    expect(tokenRequests).toBeGreaterThan(1)
    expect(new Set(seen).size).toBeGreaterThan(1)
  })

  it("renews the token once on a 401 and retries the request", async () => {
    seen = []
    tokenRequests = 0
    refuseNext = 1
    const result = await run("oauth_401")
    expect(result.code, result.stderr).toBe(0)
    expect(refuseNext).toBe(0)
    expect(tokenRequests).toBe(2)
    expect(await ids("oauth_401")).toEqual(["1", "2", "3"])
  })

  it("a refused grant fails the stream with 69 naming invalid_client, never the secret", async () => {
    const wrong = "wr0ng-secret-value-123"
    const result = await run("oauth_refused", wrong)
    expect(result.code).toBe(69)
    expect(result.stderr).toContain("invalid_client")
    expectNoSecrets([result.stderr, result.stdout, ...(await ferryTablesText(db))], [wrong, SECRET])
  })
})

describe("oauth2 refresh_token and config", () => {
  it("the refresh_token grant sends the refresh token, and the run redacts it", async () => {
    const refresh = "r3fresh-token-value-456"
    const result = await run("oauth_refresh", SECRET, `, grant: refresh_token, refreshToken: "${refresh}"`)
    expect(result.code, result.stderr).toBe(0)
    expect(lastGrant.grant_type).toBe("refresh_token")
    expect(lastGrant.refresh_token).toBe(refresh)
    expect(await ids("oauth_refresh")).toEqual(["1", "2", "3"])
    expectNoSecrets([result.stderr, ...(await ferryTablesText(db))], [refresh, SECRET])
  })

  it("a tokenUrl over plain http to another host is a config error (78) naming the field", async () => {
    const cwd = configDir(`
database: { url: "postgres://x@127.0.0.1/x" }
streams:
  - name: s
    source:
      url: https://api.example.com/items
      auth: { type: oauth2, tokenUrl: "http://auth.example.com/token", clientId: c, clientSecret: "abcdsecret" }
    target: { table: s, primaryKey: [id], columns: { id: text } }
`)
    const result = await ferry(["check"], { cwd })
    expect(result.code).toBe(78)
    expect(result.stderr).toContain("auth.tokenUrl: expected an https URL")
    expect(result.stderr).not.toContain("abcdsecret")
  })

  it("grant: refresh_token without a refreshToken is a config error (78) naming the field", async () => {
    const cwd = configDir(`
database: { url: "postgres://x@127.0.0.1/x" }
streams:
  - name: s
    source:
      url: https://api.example.com/items
      auth: { type: oauth2, tokenUrl: "https://auth.example.com/token", clientId: c, clientSecret: "abcdsecret", grant: refresh_token }
    target: { table: s, primaryKey: [id], columns: { id: text } }
`)
    const result = await ferry(["check"], { cwd })
    expect(result.code).toBe(78)
    expect(result.stderr).toContain("auth.refreshToken: expected a refreshToken")
  })
})
