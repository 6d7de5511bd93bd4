/**
 * Guarantee 7 ("secrets never reach logs or error messages"), checked the same way in every suite:
 * configure distinctive tokens and passwords, collect every text Ferry produced (stdout, stderr,
 * and what it wrote about the run in `ferry.runs` and `ferry.quarantine`), and look for them.
 */
import { expect } from "@effect/vitest"
import type { TestDatabase } from "./pg.js"

/**
 * The forms a secret travels in: raw, URL-encoded three ways (a component, a query value as
 * URLSearchParams writes it, a path segment as the URL parser writes it) and escaped in a JSON string.
 * Written out here, not imported from Ferry, so that the check does not share Ferry's mistakes.
 */
export const secretForms = (secret: string): Set<string> =>
  new Set([
    secret,
    encodeURIComponent(secret),
    new URLSearchParams({ v: secret }).toString().slice(2),
    new URL(`http://h/${secret}`).pathname.slice(1),
    JSON.stringify(secret).slice(1, -1)
  ])

/**
 * No secret, raw or in the forms it travels in (URL-encoded, inside a basic-auth header), appears in any text.
 * The failure names the secret's index, never the text around it (the assertion message itself is a log).
 */
export const expectNoSecrets = (texts: ReadonlyArray<string>, secrets: ReadonlyArray<string>): void => {
  const forms = secretForms
  secrets.forEach((secret, i) => {
    expect(secret.length, `secret #${i} is too short to search for`).toBeGreaterThanOrEqual(6)
    for (const form of forms(secret)) {
      const hits = texts.filter((t) => t.includes(form)).length
      expect(hits, `secret #${i} appears in ${hits} text(s)`).toBe(0)
    }
  })
}

/** `basic` auth travels as base64(user:password): the form to look for as well. */
export const basicForm = (username: string, password: string): string =>
  Buffer.from(`${username}:${password}`, "utf8").toString("base64")

/**
 * The text of every row of `ferry.runs` and `ferry.quarantine` in the test database (empty when Ferry
 * never created its tables there), one string per row.
 */
export const ferryTablesText = async (db: TestDatabase): Promise<Array<string>> => {
  const out: Array<string> = []
  for (const table of ["ferry.runs", "ferry.quarantine", "ferry.state"]) {
    const [{ present }] = await db.query<{ present: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS present`, [table])
    if (!present) continue
    const rows = await db.query<{ text: string }>(`SELECT t::text AS text FROM ${table} t`)
    for (const row of rows) out.push(row.text)
  }
  return out
}

/** A database URL with this password in it (the local server trusts any password). */
export const withPassword = (url: string, password: string, user = "postgres"): string => {
  const u = new URL(url)
  u.username = user
  u.password = password
  return u.toString()
}
