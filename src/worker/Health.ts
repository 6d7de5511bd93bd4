/**
 * `ferry worker --listen HOST:PORT`: `GET /healthz` (200 `ok` while pg-boss runs and the database
 * answers it within 2 s, else 503 with the reason) and `GET /metrics` (Prometheus text, Metrics.ts).
 * node:http, no framework; closed with the worker's scope.
 */
import { createServer, type Server } from "node:http"
import { Effect, Runtime, type Scope } from "effect"
import { UsageError } from "../domain/Errors.js"
import * as Prometheus from "../metrics/Prometheus.js"

export interface Address {
  readonly host: string
  readonly port: number
}

/** `HOST:PORT` (`[::1]:9090` for IPv6); undefined when it is not one */
export const parseAddress = (text: string): Address | undefined => {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim())
  const port = Number(match?.[3])
  const host = match?.[1] ?? match?.[2]
  return host === undefined || !(port >= 1 && port <= 65535) ? undefined : { host, port }
}

export interface Handlers<R> {
  /** why the worker is not healthy, or undefined */
  readonly unhealthy: Effect.Effect<string | undefined, never, R>
  readonly metrics: Effect.Effect<ReadonlyArray<Prometheus.Family>, unknown, R>
}

const reply = (res: import("node:http").ServerResponse, status: number, type: string, body: string) => {
  res.writeHead(status, { "content-type": type, "cache-control": "no-store" })
  res.end(body)
}

/** Serves until the scope closes; a port in use (or another listen error) fails it with 64. */
export const serve = <R>(address: Address, handlers: Handlers<R>): Effect.Effect<Server, UsageError, R | Scope.Scope> =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<R>()
    const run = Runtime.runPromise(runtime)
    const server = createServer((req, res) => {
      const path = (req.url ?? "/").split("?")[0]
      if (req.method !== "GET" && req.method !== "HEAD") return reply(res, 405, "text/plain", "method not allowed\n")
      if (path === "/healthz") {
        run(handlers.unhealthy).then(
          (why) => (why === undefined ? reply(res, 200, "text/plain", "ok\n") : reply(res, 503, "text/plain", `unhealthy: ${why}\n`)),
          () => reply(res, 503, "text/plain", "unhealthy\n")
        )
        return
      }
      if (path === "/metrics") {
        run(handlers.metrics).then(
          (families) => reply(res, 200, Prometheus.contentType, Prometheus.format(families)),
          (error) => reply(res, 500, "text/plain", `metrics unavailable: ${error instanceof Error ? error.message : String(error)}\n`)
        )
        return
      }
      reply(res, 404, "text/plain", "not found: try /healthz or /metrics\n")
    })
    yield* Effect.acquireRelease(
      Effect.async<void, UsageError>((resume) => {
        server.once("error", (error) => resume(Effect.fail(new UsageError({ message: `--listen ${address.host}:${address.port}: ${error.message}` }))))
        server.listen(address.port, address.host, () => resume(Effect.void))
      }),
      () => Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
    )
    return server
  })
