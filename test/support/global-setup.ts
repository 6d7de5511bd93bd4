/**
 * Once before the tests: bundle the CLI (child-process tests run the code under test), and when no
 * PostgreSQL server is configured, initialise one embedded data directory that each test file copies
 * (an initdb takes seconds; a copy does not).
 */
import { execFileSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { TestProject } from "vitest/node"

export default async function setup(project: TestProject) {
  execFileSync(process.execPath, ["scripts/build.mjs", "--bundle-only"], { stdio: "inherit" })
  const server = process.env.FERRY_TEST_DATABASE_URL || process.env.DATABASE_URL
  if (server) {
    project.provide("pgTemplate", undefined)
    return
  }
  const dir = mkdtempSync(join(tmpdir(), "ferry-pgtemplate-"))
  const { PGlite } = await import("@electric-sql/pglite")
  const db = await PGlite.create(dir)
  await db.close()
  project.provide("pgTemplate", dir)
  return () => rmSync(dir, { recursive: true, force: true })
}
