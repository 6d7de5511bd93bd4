#!/usr/bin/env node
/**
 * The installed `ferry` command: compiles and runs the bundled CLI (dist/ferry-cli.js, built by
 * `npm install` via `prepare`) with a V8 code cache. Cron starts Ferry often, and start-up is most of
 * a no-op run: without a cache V8 parses the 0.9 MB bundle at every start and compiles each function
 * again when it is first called. Node 20 has no cache for modules; Node 22's (`module.enableCompileCache`)
 * holds only what is compiled before the module runs. This one is taken after the command has run, so
 * it also holds the functions the command called (docs/PERFORMANCE.md, "Start-up").
 *
 * One cache file per installation, Node version and command, in $FERRY_COMPILE_CACHE (default
 * <tmpdir>/ferry-compile-cache-<uid>; `off` disables it). It is written at exit when it is missing,
 * stale (another bundle), rejected by V8, or was taken after a failed command and this one succeeded
 * (a failure runs less of the program). A cache is code this process runs: it is read only from a
 * directory of the user's own that nobody else can write, and only if its checksum holds, as V8 does
 * not check one. Any problem with it costs the cache, never the run.
 */
import { createRequire } from "node:module"

// built-ins through `require`: `import` goes through an ES module facade that costs start-up time
const require = createRequire(import.meta.url)
const { createHash } = require("node:crypto")
const fs = require("node:fs")
const { tmpdir } = require("node:os")
const { join } = require("node:path")
const { fileURLToPath } = require("node:url")
const { Script } = require("node:vm")

const bundle = fileURLToPath(new URL("../dist/ferry-cli.js", import.meta.url))
const readBundle = () => {
  try {
    return fs.readFileSync(bundle, "utf8")
  } catch (e) {
    if (e?.code !== "ENOENT") throw e
    // a copy of the sources without their build (a checkout before `npm install`, a copied directory):
    // one line, in the log format the bundle would have used (JSON unless on a terminal)
    const msg = `${bundle} is missing: this copy of Ferry is not built (in a checkout: \`npm install\`; ` +
      "an application installs a packed tarball or a git URL: README, \"Install in your application\")"
    const format = process.env.FERRY_LOG_FORMAT
    const json = format === "json" || (format !== "pretty" && process.stderr.isTTY !== true)
    process.stderr.write(
      json
        ? JSON.stringify({ ts: new Date().toISOString(), level: "error", msg, stream: null, error: "NotBuilt", exit_code: 70 }) + "\n"
        : `ferry: ${msg}\n`
    )
    process.exit(70)
  }
}
const source = readBundle()

// file layout: sha1(source, data) | 1 byte: taken after a successful command | V8's cached data
const HEADER = 21
const sha1 = (...parts) => parts.reduce((h, p) => h.update(p), createHash("sha1")).digest()

const cacheDir = () => {
  const setting = process.env.FERRY_COMPILE_CACHE
  if (setting === "off") return undefined
  return setting || join(tmpdir(), `ferry-compile-cache-${process.getuid?.() ?? "user"}`)
}

const isPrivate = (dir) => {
  const stat = fs.lstatSync(dir)
  return stat.isDirectory() && (process.getuid === undefined || stat.uid === process.getuid()) &&
    (stat.mode & 0o022) === 0
}

/**
 * The directory must not grow for ever: every upgrade (a new bundle) and every new Node version leaves
 * caches nobody reads again. When a cache is written (rare: the first run of a command after a change),
 * caches of other bundles or Node versions unchanged for a week, and leftovers of interrupted writes older
 * than an hour, are removed; and at most 32 caches are kept, the least recently written go first.
 * A cache still in use elsewhere (another checkout) only costs that one a slower start, once.
 */
const WEEK = 7 * 24 * 3600 * 1000
const MAX_CACHES = 32
const prune = (dir, keep) => {
  const now = Date.now()
  const caches = []
  for (const name of fs.readdirSync(dir)) {
    const path = join(dir, name)
    if (path === keep) continue
    try {
      const age = now - fs.statSync(path).mtimeMs
      if (name.endsWith(".tmp") ? age > 3600 * 1000 : name.endsWith(".v8") && age > WEEK) fs.rmSync(path, { force: true })
      else if (name.endsWith(".v8")) caches.push({ path, age })
    } catch {
      // removed meanwhile by another process
    }
  }
  caches.sort((a, b) => a.age - b.age)
  for (const { path } of caches.slice(MAX_CACHES - 1)) fs.rmSync(path, { force: true })
}

const openCache = (dir) => {
  // the command (`run`, `status`, ...): each runs different code, so each gets its own cache
  const command = process.argv.slice(2).find((a) => /^[a-z]{1,20}$/.test(a)) ?? "none"
  const installation = sha1(bundle).toString("hex").slice(0, 12)
  const file = join(dir, `${command}-${process.version}-${process.arch}-${installation}.v8`)
  let data
  let complete = false
  try {
    if (isPrivate(dir)) {
      const raw = fs.readFileSync(file)
      const body = raw.subarray(HEADER)
      if (raw.length > HEADER && sha1(source, body).equals(raw.subarray(0, 20))) {
        data = body
        complete = raw[20] === 1
      }
    }
  } catch {
    // no cache yet, or none we may read
  }
  const save = (script, code) => {
    if (data !== undefined && !script.cachedDataRejected && (complete || code !== 0)) return
    const tmp = `${file}.${process.pid}.tmp`
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
      if (!isPrivate(dir)) return
      const fresh = script.createCachedData()
      fs.writeFileSync(tmp, Buffer.concat([sha1(source, fresh), Uint8Array.of(code === 0 ? 1 : 0), fresh]), { mode: 0o600 })
      fs.renameSync(tmp, file) // atomic: a concurrent start reads the old cache or this one, whole
      prune(dir, file)
    } catch {
      try {
        fs.rmSync(tmp, { force: true })
      } catch {
        // left for the OS to clean up with the rest of its temporary files
      }
    }
  }
  return { data, save }
}

const dir = cacheDir()
const cache = dir === undefined ? undefined : openCache(dir)
const script = new Script(source, { filename: bundle, cachedData: cache?.data })
if (cache !== undefined) process.on("exit", (code) => cache.save(script, code))
script.runInThisContext()(createRequire(bundle), (specifier) => import(specifier))
