#!/usr/bin/env node
// The installed `ferry` command: the bundled program (built by `npm install` via `prepare`).
import module from "node:module"
// Node 22+: cache compiled code between runs; cron starts Ferry often, start-up is most of a no-op run.
module.enableCompileCache?.()
await import("../dist/ferry.mjs")
