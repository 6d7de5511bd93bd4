#!/usr/bin/env node
/**
 * Summarises a `node --cpu-prof` profile: self time by package/file and by function.
 *
 *   node scripts/bench/cpuprofile-summary.mjs FILE.cpuprofile [TOP=30]
 *
 * (`node scripts/bench.mjs --cpu-prof DIR` writes one of Ferry's full load at the largest N.)
 */
import fs from "node:fs"
const p = JSON.parse(fs.readFileSync(process.argv[2]))
const dt = {}
const byId = new Map(p.nodes.map(n => [n.id, n]))
for (let i = 0; i < p.samples.length; i++) { const d = p.timeDeltas[i] || 0; dt[p.samples[i]] = (dt[p.samples[i]] || 0) + d }
const self = {}, pkg = {}
for (const n of p.nodes) {
  const t = (dt[n.id] || 0) / 1000
  const cf = n.callFrame
  const key = `${cf.functionName || "(anon)"} ${cf.url.split("/").slice(-2).join("/")}:${cf.lineNumber}`
  self[key] = (self[key] || 0) + t
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(cf.url)
  const k2 = m ? m[1] : cf.url.startsWith("node:") ? "node:" + cf.url.slice(5).split("/")[0] : cf.url === "" ? cf.functionName : cf.url.split("/").slice(-1)[0]
  pkg[k2] = (pkg[k2] || 0) + t
}
const top = (o, k) => Object.entries(o).sort((a, b) => b[1] - a[1]).slice(0, k).map(([n, t]) => `${t.toFixed(0).padStart(6)} ms  ${n}`).join("\n")
console.log("total", ((p.endTime - p.startTime) / 1000).toFixed(0), "ms\n-- by file/package\n" + top(pkg, 15) + "\n-- by function\n" + top(self, Number(process.argv[3] ?? 30)))
