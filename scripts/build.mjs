// Builds what the `ferry` bin and the package entry need:
// - dist/ferry-cli.js: the CLI, bundled into one file so start-up reads one script, not hundreds of
//   modules; bin/ferry.mjs compiles and runs it with a V8 code cache (see there);
// - dist/*.js + *.d.ts: the library, compiled by tsc, for applications that embed Ferry.
import { build } from "esbuild"
import { execFileSync } from "node:child_process"
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const require = createRequire(import.meta.url)
// --bundle-only: just the CLI (the tests' global setup, so they never run a stale bin)
const bundleOnly = process.argv.includes("--bundle-only")
// --no-minify [--outfile FILE]: a readable bundle, for profiles with real function names
// (scripts/bench.mjs --cpu-prof builds one this way)
const minify = !process.argv.includes("--no-minify")
const outfileAt = process.argv.indexOf("--outfile")
const outfile = outfileAt > 0 ? process.argv[outfileAt + 1] : join(root, "dist/ferry-cli.js")
if (!bundleOnly) rmSync(join(root, "dist"), { recursive: true, force: true })

/**
 * pg picks its socket implementation at load time by asking whether it runs on Cloudflare Workers:
 * on Node 20 (no `navigator` global) that constructs a `Response`, which loads undici, ~10 ms of
 * start-up. The bin only ever runs on Node: take Node's sockets without asking.
 */
const pgWithoutCloudflareProbe = {
  name: "pg-without-cloudflare-probe",
  setup(b) {
    b.onLoad({ filter: /[\\/]pg[\\/]lib[\\/]stream\.js$/ }, (args) => {
      const source = readFileSync(args.path, "utf8")
      const probe = "if (isCloudflareRuntime()) {"
      if (!source.includes(probe)) throw new Error(`${args.path}: pg's runtime probe changed; update the build`)
      return { contents: source.replace(probe, "if (false) {"), loader: "js" }
    })
  }
}

/**
 * The proxy agents (loaded only through a proxy, src/source/http/ProxyAgent.ts) log through `debug`
 * when DEBUG names them, and http-proxy-agent's lines hold the request's headers: its Authorization
 * and Proxy-Authorization. The bin's secrets never go to stderr that way: `debug` is a no-op in it.
 */
const debugOff = {
  name: "debug-off",
  setup(b) {
    b.onResolve({ filter: /^debug$/ }, () => ({ path: "debug", namespace: "debug-off" }))
    b.onLoad({ filter: /.*/, namespace: "debug-off" }, () => ({
      contents: "module.exports = () => Object.assign(() => {}, { enabled: false })",
      loader: "js"
    }))
  }
}

/**
 * The bundle is one function expression, `(function (require, hostImport) { ... })`, which the bin
 * compiles with `vm.Script` so that it can hand V8 a code cache (Node's own loaders take none before
 * Node 22, and Node 22's caches less: see bin/ferry.mjs). A vm script has no `import()` of its own
 * without an experimental flag, so the few dynamic imports of unbundled packages (PGlite, loaded
 * only for the embedded database) call the bin's `hostImport` instead.
 */
const result = await build({
  entryPoints: [join(root, "src/cli/main.ts")],
  outfile,
  bundle: true,
  platform: "node",
  // CommonJS: Node's built-ins come from `require`, which returns the module without the ES module
  // facade that `import` goes through (on Node 22 that facade loads undici for `node:http`, ~30 ms)
  format: "cjs",
  target: "node20",
  // whitespace and names too: half the bytes for V8 to read and parse (a defect's stack trace then
  // shows short names: rebuild with --no-minify to read one)
  minify,
  minifySyntax: true,
  legalComments: "none",
  plugins: [pgWithoutCloudflareProbe, debugOff],
  // PGlite loads its WASM from its own package and is only imported when the embedded database is
  // used; pg-native is an optional dependency of pg that Ferry does not use, nor is kerberos one of
  // the proxy agents (for Negotiate proxy authentication, which Ferry does not ask for).
  // pg-boss (Node 22.12+) is imported only by `ferry worker` / `ferry enqueue` (src/worker/Boss.ts).
  external: ["@electric-sql/*", "pg-boss", "pg-native", "pg-cloudflare", "kerberos"],
  banner: { js: "(function (require, hostImport) {" },
  footer: { js: "})" },
  metafile: true,
  write: false,
  logLevel: "warning"
})

let bundle = result.outputFiles[0].text
const dynamicImports = Object.values(result.metafile.outputs)[0].imports
  .filter((i) => i.external && i.kind === "dynamic-import")
  .map((i) => i.path)
for (const specifier of new Set(dynamicImports)) {
  const call = `import(${JSON.stringify(specifier)})`
  if (!bundle.includes(call)) throw new Error(`the bundle imports ${specifier} in a way the build does not recognise`)
  bundle = bundle.split(call).join(`hostImport(${JSON.stringify(specifier)})`)
}
if (/\bimport\(/.test(bundle)) throw new Error("the bundle has an import() the bin cannot serve")
mkdirSync(dirname(outfile), { recursive: true })
writeFileSync(outfile, bundle)

if (!bundleOnly) {
  const tsc = require.resolve("typescript/bin/tsc")
  execFileSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json")], { stdio: "inherit" })
}
