/**
 * A small JSON API for end-to-end tests, one route per pagination style, all serving the same
 * records filtered by `since` (>=) and sorted by (updated_at, id). Auth is checked when configured.
 * Tests change `records` between runs and can slow pages down (`delayMs`) or break them (`fail`).
 */
import type * as http from "node:http"
import { json, startServer, type TestServer } from "./http.js"

export interface ApiRecord {
  id: string
  name: string
  amount: number | string
  updated_at: string
  [key: string]: unknown
}

export type ApiAuth =
  | { type: "bearer"; token: string }
  | { type: "basic"; username: string; password: string }
  | { type: "header"; name: string; value: string }
  | { type: "query"; name: string; value: string }

export interface Api extends TestServer {
  records: Array<ApiRecord>
  auth: ApiAuth | undefined
  pageSize: number
  /** wait before answering each page */
  delayMs: number
  /** while set, every page waits for it before answering (a run held at a known point) */
  gate: Promise<unknown> | undefined
  /** answer a request with this status instead, when it returns one */
  fail: ((url: URL, n: number) => number | undefined) | undefined
  /** requests answered with data */
  pagesServed: number
}

const authorized = (req: http.IncomingMessage, url: URL, auth: ApiAuth | undefined): boolean => {
  if (!auth) return true
  switch (auth.type) {
    case "bearer":
      return req.headers.authorization === `Bearer ${auth.token}`
    case "basic":
      return req.headers.authorization === `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString("base64")}`
    case "header":
      return req.headers[auth.name.toLowerCase()] === auth.value
    case "query":
      return url.searchParams.get(auth.name) === auth.value
  }
}

export const makeRecords = (n: number, start = Date.UTC(2024, 0, 1)): Array<ApiRecord> =>
  Array.from({ length: n }, (_, i) => ({
    id: `r${String(i).padStart(5, "0")}`,
    name: `record ${i}`,
    amount: Math.round(i * 137.5) / 100,
    // every three records share an updated_at: ties on the cursor
    updated_at: new Date(start + Math.floor(i / 3) * 60_000).toISOString()
  }))

export const startApi = async (records: Array<ApiRecord>, options: { auth?: ApiAuth; pageSize?: number } = {}) => {
  let requestCount = 0
  const api: Partial<Api> = {
    records,
    auth: options.auth,
    pageSize: options.pageSize ?? 7,
    delayMs: 0,
    gate: undefined,
    fail: undefined,
    pagesServed: 0
  }
  const server = await startServer(async (req, res, url) => {
    const a = api as Api
    requestCount++
    if (!authorized(req, url, a.auth)) return json(res, { error: "unauthorized" }, 401)
    const status = a.fail?.(url, requestCount)
    if (status !== undefined) return json(res, { error: `injected ${status}` }, status, status === 429 ? { "retry-after": "0" } : {})
    if (a.delayMs > 0) await new Promise((r) => setTimeout(r, a.delayMs))
    if (a.gate !== undefined) await a.gate
    const since = url.searchParams.get("since")
    const all = a.records
      .filter((r) => since === null || Date.parse(r.updated_at) >= Date.parse(since))
      .sort((x, y) => Date.parse(x.updated_at) - Date.parse(y.updated_at) || x.id.localeCompare(y.id))
    const size = a.pageSize
    const slice = (offset: number) => all.slice(offset, offset + size)
    a.pagesServed++
    switch (url.pathname) {
      case "/none":
        return json(res, all)
      case "/link": {
        const offset = Number(url.searchParams.get("at") ?? 0)
        const next = offset + size < all.length ? new URL(url) : undefined
        next?.searchParams.set("at", String(offset + size))
        return json(res, { data: slice(offset) }, 200, next ? { link: `<${next.pathname}${next.search}>; rel="next"` } : {})
      }
      case "/token": {
        const offset = Number(url.searchParams.get("cursor") ?? 0)
        const next = offset + size < all.length ? String(offset + size) : null
        return json(res, { items: slice(offset), meta: { next } })
      }
      case "/after": {
        const after = url.searchParams.get("starting_after")
        const offset = after === null ? 0 : all.findIndex((r) => r.id === after) + 1
        return json(res, { data: slice(offset), has_more: offset + size < all.length })
      }
      case "/offset": {
        const offset = Number(url.searchParams.get("offset") ?? 0)
        const limit = Number(url.searchParams.get("limit") ?? size)
        return json(res, all.slice(offset, offset + limit))
      }
      case "/page": {
        const page = Number(url.searchParams.get("page") ?? 1)
        const perPage = Number(url.searchParams.get("per_page") ?? size)
        return json(res, { results: all.slice((page - 1) * perPage, page * perPage) })
      }
      default:
        return json(res, { error: "not found" }, 404)
    }
  })
  return Object.assign(api, server) as Api
}
