/**
 * A JSON API on 127.0.0.1 that misbehaves on request. One route, `/items`, pages `records` with a
 * Link header (`?at=N`, `since` filtered with >=, sorted by updated_at then id). A test sets `fault`
 * to answer chosen requests badly: an error status with headers, a connection reset mid-body, a
 * stall mid-body, a truncated JSON body, HTML, a page that points to itself, empty pages that point
 * onwards. The server counts requests per URL and remembers which pages it delivered in full, so a
 * test can compare the target table and the checkpoint with what was really served.
 */
import type * as http from "node:http"
import { type ApiRecord, makeRecords } from "./api.js"
import { startServer, type TestServer } from "./http.js"

export type Fault =
  /** this status, headers and body instead of the page */
  | { readonly kind: "status"; readonly status: number; readonly headers?: Record<string, string>; readonly body?: string }
  /** status 200 and the first half of the page, then the socket is destroyed (a reset) */
  | { readonly kind: "reset" }
  /** status 200 and the first half of the page, then nothing until the client gives up */
  | { readonly kind: "stall" }
  /** status 200, the first half of the JSON with a Content-Length that matches it */
  | { readonly kind: "truncated" }
  /** status 200, an HTML error page with content-type text/html */
  | { readonly kind: "html" }
  /** the right page, with a Link to the very same URL */
  | { readonly kind: "self-link" }
  /** the first page's records whatever `at` says, with a Link to a new URL each time */
  | { readonly kind: "same-page" }
  /** no records, and a Link to the same page under a new URL (`&empty=n`) */
  | { readonly kind: "empty-next" }

export interface Delivered {
  /** pathname + search of the request */
  readonly key: string
  readonly ids: ReadonlyArray<string>
}

export interface FaultServer extends TestServer {
  records: Array<ApiRecord>
  pageSize: number
  /** decides per request: `key` is pathname + search, `n` counts requests for that key (1-based), `at` the page offset */
  fault: ((key: string, n: number, at: number) => Fault | undefined) | undefined
  /** requests per key (pathname + search) */
  readonly counts: Map<string, number>
  /** pages answered in full with records (status 200, whole body) */
  readonly delivered: Array<Delivered>
  /** the key of the page at offset `at` for a run that starts with `since` */
  readonly keyOf: (at: number, since?: string) => string
  /** reset counts and delivered pages between cases */
  readonly clear: () => void
}

const send = (res: http.ServerResponse, status: number, body: string, headers: Record<string, string>) => {
  res.writeHead(status, { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)), ...headers })
  res.end(body)
}

export const startFaultServer = async (records: Array<ApiRecord> = makeRecords(30), pageSize = 7): Promise<FaultServer> => {
  const counts = new Map<string, number>()
  const delivered: Array<Delivered> = []
  const state = { records, pageSize, fault: undefined as FaultServer["fault"] }

  const server = await startServer((_req, res, url) => {
    const key = url.pathname + url.search
    const n = (counts.get(key) ?? 0) + 1
    counts.set(key, n)
    if (url.pathname !== "/items") return send(res, 404, JSON.stringify({ error: "not found" }), {})
    const since = url.searchParams.get("since")
    const all = state.records
      .filter((r) => since === null || Date.parse(r.updated_at) >= Date.parse(since))
      .sort((x, y) => Date.parse(x.updated_at) - Date.parse(y.updated_at) || x.id.localeCompare(y.id))
    const at = Number(url.searchParams.get("at") ?? 0)
    const linkTo = (target: URL) => ({ link: `<${target.pathname}${target.search}>; rel="next"` })
    const nextOf = (offset: number) => {
      if (offset + state.pageSize >= all.length) return undefined
      const next = new URL(url)
      next.searchParams.delete("empty")
      next.searchParams.delete("p")
      next.searchParams.set("at", String(offset + state.pageSize))
      return next
    }
    const page = all.slice(at, at + state.pageSize)
    const body = JSON.stringify({ data: page })
    const next = nextOf(at)
    const fault = state.fault?.(key, n, at)
    switch (fault?.kind) {
      case undefined: {
        send(res, 200, body, next ? linkTo(next) : {})
        delivered.push({ key, ids: page.map((r) => r.id) })
        return
      }
      case "status":
        return send(res, fault.status, fault.body ?? JSON.stringify({ error: `injected ${fault.status}` }), fault.headers ?? {})
      case "reset":
      case "stall": {
        res.writeHead(200, { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) })
        res.write(body.slice(0, Math.floor(body.length / 2)))
        // flush the half body before the reset, so the client is mid-body when it happens
        if (fault.kind === "reset") setTimeout(() => res.socket?.destroy(), 20)
        return
      }
      case "truncated":
        return send(res, 200, body.slice(0, Math.floor(body.length / 2)), next ? linkTo(next) : {})
      case "html":
        res.writeHead(200, { "content-type": "text/html; charset=utf-8" })
        res.end("<!doctype html><html><body><h1>502 Bad Gateway</h1></body></html>")
        return
      case "self-link": {
        send(res, 200, body, linkTo(url))
        delivered.push({ key, ids: page.map((r) => r.id) })
        return
      }
      case "same-page": {
        const first = all.slice(0, state.pageSize)
        const again = new URL(url)
        again.searchParams.set("p", String(Number(url.searchParams.get("p") ?? 0) + 1))
        send(res, 200, JSON.stringify({ data: first }), linkTo(again))
        delivered.push({ key, ids: first.map((r) => r.id) })
        return
      }
      case "empty-next": {
        const again = new URL(url)
        again.searchParams.set("empty", String(Number(url.searchParams.get("empty") ?? 0) + 1))
        send(res, 200, JSON.stringify({ data: [] }), linkTo(again))
        return
      }
    }
  })

  const keyOf = (at: number, since = "2000-01-01T00:00:00Z") => {
    const u = new URL("http://x/items")
    u.searchParams.set("since", since)
    if (at > 0) u.searchParams.set("at", String(at))
    return u.pathname + u.search
  }

  return Object.assign(state, server, {
    counts,
    delivered,
    keyOf,
    clear: () => {
      counts.clear()
      delivered.length = 0
      state.fault = undefined
    }
  }) as FaultServer
}
