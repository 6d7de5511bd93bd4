/** `ferry worker` / `ferry enqueue` flags (src/cli/Args.ts): values parsed, bad ones a 64 naming the flag. */
import { Either } from "effect"
import { describe, expect, it } from "vitest"
import { parse } from "../src/cli/Args.js"
import { supportsNode } from "../src/worker/Boss.js"

const ok = (argv: ReadonlyArray<string>) => Either.getOrThrow(parse(argv))
const refused = (argv: ReadonlyArray<string>) => Either.match(parse(argv), { onLeft: (e) => e.message, onRight: () => "accepted" })

describe("ferry worker and enqueue arguments", () => {
  it("worker: defaults, --listen (IPv4, name, [IPv6]), --concurrency, --grace in ms, s, m", () => {
    expect(ok(["worker"])).toEqual({ _tag: "worker", config: undefined, graceMillis: 30_000 })
    expect(ok(["worker", "-c", "f.yaml", "--listen", "0.0.0.0:9464", "--concurrency", "4", "--grace", "2m"])).toEqual({
      _tag: "worker", config: "f.yaml", listen: { host: "0.0.0.0", port: 9464 }, concurrency: 4, graceMillis: 120_000
    })
    expect(ok(["worker", "--listen", "[::1]:9090"])).toMatchObject({ listen: { host: "::1", port: 9090 } })
    expect(ok(["worker", "--listen", "localhost:80"])).toMatchObject({ listen: { host: "localhost", port: 80 } })
    expect(ok(["worker", "--grace", "500ms"])).toMatchObject({ graceMillis: 500 })
    expect(ok(["worker", "--grace", "45"])).toMatchObject({ graceMillis: 45_000 })
    expect(ok(["worker", "--grace", "10 seconds"])).toMatchObject({ graceMillis: 10_000 })
  })

  it("worker: a bad --listen, --grace or --concurrency, or a flag it does not take, is a usage error", () => {
    for (const listen of ["9090", "host:", ":9090", "host:0", "host:70000", "::1:9090"]) {
      expect(refused(["worker", "--listen", listen])).toContain("--listen takes HOST:PORT")
    }
    expect(refused(["worker", "--grace", "soon"])).toContain("--grace takes a duration")
    expect(refused(["worker", "--concurrency", "0"])).toContain("--concurrency takes a whole number")
    expect(refused(["worker", "--stream", "a"])).toBe("worker does not take --stream")
  })

  it("enqueue: exactly one --stream", () => {
    expect(ok(["enqueue", "--stream", "orders"])).toEqual({ _tag: "enqueue", config: undefined, stream: "orders" })
    expect(refused(["enqueue"])).toContain("enqueue needs exactly one --stream NAME")
    expect(refused(["enqueue", "-s", "a", "-s", "b"])).toContain("enqueue needs exactly one --stream NAME")
  })

  it("the Node gate: 22.12 and later", () => {
    expect(["20.19.5", "22.11.0", "21.7.3"].map(supportsNode)).toEqual([false, false, false])
    expect(["22.12.0", "22.23.5", "23.0.0", "24.1.0"].map(supportsNode)).toEqual([true, true, true, true])
  })
})
