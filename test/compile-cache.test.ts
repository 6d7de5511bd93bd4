/**
 * The bin's V8 code cache (bin/ferry.mjs): written once, used after, and never able to break a run:
 * a corrupt, truncated or foreign cache is ignored and replaced, and a directory that others can write
 * is not used at all.
 */
import { describe, expect, it } from "@effect/vitest"
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createHash } from "node:crypto"
import { ferry } from "./support/cli.js"

const bundle = join(import.meta.dirname, "..", "dist", "ferry-cli.js")
/** the bin's layout: sha1(bundle source, data) | 1 byte: after a success | V8's data */
const isValid = (cache: Buffer) =>
  cache.length > 21 &&
  createHash("sha1").update(readFileSync(bundle, "utf8")).update(cache.subarray(21)).digest().equals(cache.subarray(0, 20))

const cacheDir = () => join(mkdtempSync(join(tmpdir(), "ferry-cache-test-")), "cache")
const files = (dir: string) => (existsSync(dir) ? readdirSync(dir) : [])
const only = (dir: string) => {
  const names = files(dir)
  expect(names).toHaveLength(1)
  return join(dir, names[0]!)
}

const version = async (dir: string) => {
  const result = await ferry(["--version"], { env: { FERRY_COMPILE_CACHE: dir } })
  expect(result.code).toBe(0)
  expect(result.stdout).toMatch(/^ferry \d+\.\d+\.\d+\n$/)
  expect(result.stderr).toBe("")
}

describe("compile cache", () => {
  it("is written by the first run, in a private directory, and then read as it is", async () => {
    const dir = cacheDir()
    await version(dir)
    const file = only(dir)
    expect(statSync(dir).mode & 0o777).toBe(0o700)
    const written = readFileSync(file)
    expect(isValid(written)).toBe(true)
    await version(dir)
    expect(readFileSync(file).equals(written)).toBe(true)
  })

  it.each([
    ["a flipped byte", (b: Buffer) => Buffer.concat([b.subarray(0, b.length >> 1), Buffer.from([b[b.length >> 1]! ^ 0xff]), b.subarray((b.length >> 1) + 1)])],
    ["a truncated file", (b: Buffer) => b.subarray(0, b.length >> 1)],
    ["an empty file", () => Buffer.alloc(0)],
    ["another bundle's cache", (b: Buffer) => Buffer.concat([Buffer.alloc(20), b.subarray(20)])]
  ])("ignores %s and replaces it", async (_, corrupt) => {
    const dir = cacheDir()
    await version(dir)
    const file = only(dir)
    const good = readFileSync(file)
    writeFileSync(file, corrupt(good))
    expect(isValid(readFileSync(file))).toBe(false)
    await version(dir)
    expect(isValid(readFileSync(file))).toBe(true)
  })

  it("replaces a cache taken after a failed command once the command succeeds", async () => {
    const dir = cacheDir()
    const failed = await ferry(["help", "--nope"], { env: { FERRY_COMPILE_CACHE: dir } })
    expect(failed.code).toBe(64)
    const file = only(dir)
    expect(readFileSync(file)[20]).toBe(0)
    const ok = await ferry(["help"], { env: { FERRY_COMPILE_CACHE: dir } })
    expect(ok.code).toBe(0)
    expect(readFileSync(file)[20]).toBe(1)
  })

  it("is not used in a directory others can write, nor when switched off", async () => {
    const shared = cacheDir()
    mkdirSync(shared, { recursive: true })
    chmodSync(shared, 0o777)
    await version(shared)
    expect(files(shared)).toEqual([])
    const parent = mkdtempSync(join(tmpdir(), "ferry-cache-test-"))
    const result = await ferry(["--version"], { env: { FERRY_COMPILE_CACHE: "off" }, cwd: parent })
    expect(result.code).toBe(0)
    expect(files(parent)).toEqual([])
  })
})

describe("compile cache pruning", () => {
  it("a new cache removes week-old caches of other bundles or Node versions and old leftovers; at most 32 are kept", async () => {
    const dir = cacheDir()
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    const weekAgo = new Date(Date.now() - 8 * 24 * 3600 * 1000)
    const hourAgo = new Date(Date.now() - 2 * 3600 * 1000)
    const write = (name: string, at?: Date) => {
      writeFileSync(join(dir, name), "x")
      if (at !== undefined) utimesSync(join(dir, name), at, at)
    }
    write("run-v18.0.0-x64-aaaaaaaaaaaa.v8", weekAgo) // an old Node's: unused for a week
    write("run-v20.0.0-x64-bbbbbbbbbbbb.v8", weekAgo) // an old bundle's
    write("status-v20.0.0-x64-cccccccccccc.v8") // recent: another checkout may use it
    write("run-v20.0.0-x64-dddddddddddd.v8.123.tmp", hourAgo) // an interrupted write
    write("run-v20.0.0-x64-eeeeeeeeeeee.v8.456.tmp") // a write in progress
    await version(dir)
    const left = files(dir)
    expect(left).not.toContain("run-v18.0.0-x64-aaaaaaaaaaaa.v8")
    expect(left).not.toContain("run-v20.0.0-x64-bbbbbbbbbbbb.v8")
    expect(left).not.toContain("run-v20.0.0-x64-dddddddddddd.v8.123.tmp")
    expect(left).toContain("status-v20.0.0-x64-cccccccccccc.v8")
    expect(left).toContain("run-v20.0.0-x64-eeeeeeeeeeee.v8.456.tmp")
    // `--version` names no command: its cache is `none-…`
    expect(left.filter((n) => n.startsWith("none-"))).toHaveLength(1)

    for (let i = 0; i < 40; i++) write(`run-v20.0.0-x64-${String(i).padStart(12, "0")}.v8`, new Date(Date.now() - (i + 1) * 60_000))
    rmSync(join(dir, left.find((n) => n.startsWith("none-"))!))
    await version(dir)
    const caches = files(dir).filter((n) => n.endsWith(".v8"))
    expect(caches).toHaveLength(32)
    // the newest are kept: the one just written and the 31 most recent others
    expect(caches).toContain(`run-v20.0.0-x64-${"0".repeat(12)}.v8`)
    expect(caches).not.toContain(`run-v20.0.0-x64-${String(39).padStart(12, "0")}.v8`)
  })
})
