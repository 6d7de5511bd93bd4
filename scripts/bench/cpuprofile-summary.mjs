#!/usr/bin/env node
/**
 * Summarises a `node --cpu-prof` profile: self time by package/file and by function.
 *
 *   node scripts/bench/cpuprofile-summary.mjs FILE.cpuprofile [TOP=30]
 *
 * (`node scripts/bench.mjs --cpu-prof DIR` writes one of Ferry's full load at the largest N, with the
 * unminified bundle it ran beside it as DIR/ferry-cli.js: time inside the bundle is then attributed to the
 * source file or package it came from, by esbuild's `// path` comments.)
 */
import fs from "node:fs"
import path from "node:path"
const file = process.argv[2]
const p = JSON.parse(fs.readFileSync(file))

/** line -> source file of the bundle, when the bundle is beside the profile */
const bundlePath = path.join(path.dirname(file), "ferry-cli.js")
const marks = []
if (fs.existsSync(bundlePath)) {
  fs.readFileSync(bundlePath, "utf8").split("\n").forEach((line, i) => {
    const m = /^\/\/ (?:\.\.\/)*(?:.*?\/)?((?:node_modules\/(?:@[^/]+\/)?[^/]+)|src\/\S+)/.exec(line)
    if (m) marks.push([i, m[1].replace(/^node_modules\//, "")])
  })
}
const sourceOf = (line) => {
  let lo = 0, hi = marks.length - 1, found = undefined
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    if (marks[mid][0] <= line) { found = marks[mid][1]; lo = mid + 1 } else hi = mid - 1
  }
  return found
}

const dt = {}
for (let i = 0; i < p.samples.length; i++) { const d = p.timeDeltas[i] || 0; dt[p.samples[i]] = (dt[p.samples[i]] || 0) + d }
const self = {}, pkg = {}
for (const n of p.nodes) {
  const t = (dt[n.id] || 0) / 1000
  const cf = n.callFrame
  const inBundle = cf.url.endsWith("/ferry-cli.js") && marks.length > 0 ? sourceOf(cf.lineNumber) : undefined
  const key = `${cf.functionName || "(anon)"} ${inBundle ?? cf.url.split("/").slice(-2).join("/")}:${cf.lineNumber}`
  self[key] = (self[key] || 0) + t
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(cf.url)
  const k2 = inBundle ?? (m ? m[1] : cf.url.startsWith("node:") ? "node:" + cf.url.slice(5).split("/")[0] : cf.url === "" ? cf.functionName : cf.url.split("/").slice(-1)[0])
  pkg[k2] = (pkg[k2] || 0) + t
}
const top = (o, k) => Object.entries(o).sort((a, b) => b[1] - a[1]).slice(0, k).map(([n, t]) => `${t.toFixed(0).padStart(6)} ms  ${n}`).join("\n")
console.log("total", ((p.endTime - p.startTime) / 1000).toFixed(0), "ms\n-- by file/package\n" + top(pkg, 20) + "\n-- by function\n" + top(self, Number(process.argv[3] ?? 30)))
