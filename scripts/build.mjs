// Builds what the `ferry` bin and the package entry need:
// - dist/ferry.mjs: the CLI, bundled into one file so start-up reads one module, not hundreds;
// - dist/*.js + *.d.ts: the library, compiled by tsc, for applications that embed Ferry.
import { build } from "esbuild"
import { execFileSync } from "node:child_process"
import { rmSync } from "node:fs"
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
const outfile = outfileAt > 0 ? process.argv[outfileAt + 1] : join(root, "dist/ferry.mjs")
if (!bundleOnly) rmSync(join(root, "dist"), { recursive: true, force: true })

/**
 * Node's built-ins imported with `import` go through an ES module facade that reads every export;
 * on Node 22 that loads undici (fetch, WebSocket) for `node:http`, ~30 ms of start-up for nothing.
 * `require` returns the module without the facade, so ESM imports of built-ins become requires.
 */
const builtinsViaRequire = {
  name: "builtins-via-require",
  setup(b) {
    b.onResolve({ filter: /^node:/ }, (args) =>
      args.kind === "import-statement" ? { path: args.path, namespace: "builtin-via-require" } : undefined)
    b.onLoad({ filter: /.*/, namespace: "builtin-via-require" }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(args.path)})`,
      loader: "js"
    }))
  }
}

await build({
  entryPoints: [join(root, "src/main.ts")],
  outfile,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  // whitespace and names too: half the bytes for V8 to read and parse at every start (a defect's
  // stack trace then shows short names: rebuild with --no-minify to read one)
  minify,
  minifySyntax: true,
  legalComments: "none",
  plugins: [builtinsViaRequire],
  // PGlite loads its WASM from its own package and is only imported when the embedded database is
  // used; pg-native is an optional dependency of pg that Ferry does not use.
  external: ["@electric-sql/*", "pg-native", "pg-cloudflare"],
  // bundled CommonJS (pg) calls require() for Node's built-ins
  banner: { js: "import { createRequire as __ferryRequire } from 'node:module'; const require = __ferryRequire(import.meta.url);" },
  logLevel: "warning"
})

if (!bundleOnly) {
  const tsc = require.resolve("typescript/bin/tsc")
  execFileSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json")], { stdio: "inherit" })
}
