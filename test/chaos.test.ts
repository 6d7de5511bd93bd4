/**
 * The short form of `npm run chaos` (scripts/chaos.mjs): 40 seeded kill -9s at random moments and
 * random failpoints over real runs of the bin, on both checkpoint stores and both source orders, a
 * source that changes between and during runs, then a clean run compared to the source's truth.
 * Against the server in FERRY_TEST_DATABASE_URL (a database of its own) or an embedded one.
 * FERRY_CHAOS_SEED replays a seed; the long form's result is in docs/GUARANTEES.md.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { join } from "node:path"

const seed = process.env.FERRY_CHAOS_SEED || "40"
const KILLS = 40

describe("chaos: seeded kill -9s over real runs, then the table compared to the source's truth", () => {
  it(`${KILLS} kills landed, 0 missing, 0 extra, 0 stale, the checkpoint consistent after every kill`, async () => {
    const child = spawn(process.execPath, [join(import.meta.dirname, "..", "scripts", "chaos.mjs"), "--kills", String(KILLS), "--seed", seed], {
      env: process.env,
      stdio: ["ignore", "pipe", "pipe"]
    })
    let out = ""
    child.stdout.on("data", (d) => (out += d))
    child.stderr.on("data", (d) => (out += d))
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve))
    console.log(out.trim())
    expect(code, out).toBe(0)
    expect(out).toMatch(new RegExp(`^chaos: PASS seed ${seed}: ${KILLS} kills landed in \\d+ runs`, "m"))
  }, 300_000)
})
