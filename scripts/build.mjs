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
if (!bundleOnly) rmSync(join(root, "dist"), { recursive: true, force: true })

await build({
  entryPoints: [join(root, "src/main.ts")],
  outfile: join(root, "dist/ferry.mjs"),
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  minifySyntax: true,
  legalComments: "none",
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
