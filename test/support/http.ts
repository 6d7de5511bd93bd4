/**
 * A real HTTP server on 127.0.0.1 (a free port), for tests. The handler sees every request;
 * `requests` keeps them for assertions.
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { afterAll } from "vitest"

export interface SeenRequest {
  readonly method: string
  readonly url: URL
  readonly headers: http.IncomingHttpHeaders
}

export interface TestServer {
  readonly url: string
  readonly requests: Array<SeenRequest>
  readonly close: () => Promise<void>
}

export const startServer = async (
  handler: (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => void | Promise<void>
): Promise<TestServer> => {
  const requests: Array<SeenRequest> = []
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1")
    requests.push({ method: req.method ?? "GET", url, headers: req.headers })
    Promise.resolve(handler(req, res, url)).catch((e) => {
      res.statusCode = 500
      res.end(String(e))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}

/** A list for the servers a test file starts: each is closed after the file's last test. */
export const closedAfterAll = <S extends { readonly close: () => Promise<void> }>(): Array<S> => {
  const servers: Array<S> = []
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()))
  })
  return servers
}

export const json = (res: http.ServerResponse, body: unknown, status = 200, headers: Record<string, string> = {}) => {
  res.writeHead(status, { "content-type": "application/json", ...headers })
  res.end(JSON.stringify(body))
}
