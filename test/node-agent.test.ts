/**
 * source/http/NodeAgent.ts on its own, against a real server on 127.0.0.1: a page's request sent straight
 * to the client's Node agents reads the whole body, times out on a stall (headers or body), fails on a
 * connection cut mid-body, and takes a `timeout` longer than a Node timer holds as none (as Effect's
 * clock did before it: a 30-day timeout must not time every request out at once).
 */
import { HttpClientRequest } from "@effect/platform"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either } from "effect"
import * as http from "node:http"
import * as https from "node:https"
import type { AddressInfo } from "node:net"
import * as NodeAgent from "../src/source/http/NodeAgent.js"

const agent: NodeHttpClient.HttpAgent = {
  [NodeHttpClient.HttpAgentTypeId]: NodeHttpClient.HttpAgentTypeId,
  http: new http.Agent({ keepAlive: true }),
  https: new https.Agent({ keepAlive: true })
}

const server = http.createServer((req, res) => {
  if (req.url === "/slow") {
    // the answer comes after 300 ms
    setTimeout(() => res.writeHead(200, { "content-type": "application/json" }).end(`{"ok":true}`), 300)
  } else if (req.url === "/stall-body") {
    res.writeHead(200, { "content-type": "application/json", "content-length": "100" })
    res.write(`{"data": [`)
  } else if (req.url === "/cut") {
    res.writeHead(200, { "content-type": "application/json", "content-length": "100" })
    res.write(`{"data": [`, () => res.socket?.destroy())
  } else {
    res.writeHead(200, { "content-type": "application/json" }).end(`{"data":["é", 12345678901234567890]}`)
  }
})
const listening = new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)))

afterAll(() => {
  agent.http.destroy()
  server.closeAllConnections()
  server.close()
})

const get = async (path: string, timeout: Duration.Duration) => {
  const request = HttpClientRequest.get(`http://127.0.0.1:${await listening}${path}`)
  return Effect.runPromise(Effect.either(NodeAgent.send(agent, request, timeout)))
}

describe("NodeAgent.send", () => {
  it("reads the whole body as UTF-8 text, with its status, headers and byte count", async () => {
    const result = await get("/", Duration.seconds(5))
    expect(Either.isRight(result)).toBe(true)
    const received = Either.getOrThrow(result)
    expect(received.status).toBe(200)
    expect(received.headers["content-type"]).toBe("application/json")
    expect(received.text).toBe(`{"data":["é", 12345678901234567890]}`)
    expect(received.bytes).toBe(Buffer.byteLength(received.text))
  })

  it("a stall before the headers, and one mid-body, are timeouts", async () => {
    expect(await get("/slow", Duration.millis(100))).toEqual(Either.left({ _tag: "Timeout" }))
    expect(await get("/stall-body", Duration.millis(200))).toEqual(Either.left({ _tag: "Timeout" }))
  })

  it("a connection cut mid-body is a failure, never a short body taken whole", async () => {
    const result = await get("/cut", Duration.seconds(5))
    expect(Either.isLeft(result)).toBe(true)
    expect(["Body", "Connection"]).toContain(Either.isLeft(result) ? result.left._tag : undefined)
  })

  it("a timeout longer than a Node timer holds (30 days) is no timeout, and no warning", async () => {
    const warnings: Array<string> = []
    const onWarning = (warning: Error) => warnings.push(warning.name)
    process.on("warning", onWarning)
    try {
      const result = await get("/slow", Duration.days(30))
      expect(Either.isRight(result)).toBe(true)
      await new Promise((resolve) => setImmediate(resolve))
      expect(warnings).not.toContain("TimeoutOverflowWarning")
    } finally {
      process.off("warning", onWarning)
    }
  })
})
