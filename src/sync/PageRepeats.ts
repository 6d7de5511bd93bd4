/**
 * Pagination that repeats pages under new tokens (A, B, A, B, … each with a fresh cursor or page
 * number) passes the Source's own guards, which see only a repeated request or a page equal to the one
 * just before. This one sees the decoded rows: a page whose records are exactly those of an earlier page
 * of the same run (the same keys with the same cursors, in any order) fails the stream with 69, naming
 * both pages. A page that only overlaps an earlier one (offset pagination while records are inserted)
 * goes on. Memory: one number per page, not the pages.
 */
import { Either } from "effect"
import { SourceError } from "../domain/Errors.js"
import type { Row } from "../domain/StreamSpec.js"

/**
 * FNV-1a's multiply over `text`, two UTF-16 units per step (lossless: each fits in 16 bits), from `h`,
 * then a separator so that ("ab", "c") and ("a", "bc") differ. One pass, no allocation: a crypto hash
 * per row, or one over the page's joined keys, cost several times more.
 */
const fold = (h: number, text: string): number => {
  const n = text.length
  let i = 0
  for (; i + 1 < n; i += 2) h = Math.imul(h ^ (text.charCodeAt(i) | (text.charCodeAt(i + 1) << 16)), 16777619)
  if (i < n) h = Math.imul(h ^ text.charCodeAt(i), 16777619)
  return Math.imul(h ^ 0x1f0000, 16777619)
}

/** a 32-bit finaliser (murmur3's): a second, non-linear view of a record's hash */
const avalanche = (h: number): number => {
  h = Math.imul(h ^ (h >>> 16), 2246822507)
  h = Math.imul(h ^ (h >>> 13), 3266489909)
  return h ^ (h >>> 16)
}

/** the JSON of a record that did not decode (rare: it has no key to go by), "" if it has none */
const jsonOf = (raw: unknown): string => {
  try {
    return JSON.stringify(raw) ?? ""
  } catch {
    return ""
  }
}

/**
 * What a page holds, as one number (53 bits): each valid record's key and cursor (each invalid one's
 * JSON) hashed, the hashes summed so that the order does not matter, and the count mixed in. `undefined` for a page
 * with no records (the Source's empty-page guard is for those).
 */
export const signature = (
  rows: ReadonlyArray<{ readonly row: Row }>,
  invalid: ReadonlyArray<{ readonly raw: unknown }>
): number | undefined => {
  const count = rows.length + invalid.length
  if (count === 0) return undefined
  // two sums of each record's hash, one of it as is and one through a non-linear finaliser: two
  // different pages agree on both by chance about once in 2^53
  let sum = 0
  let sumMixed = 0
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!.row
    const h = fold(fold(0x811c9dc5, row.key), row.cursor ?? "")
    sum = (sum + h) | 0
    sumMixed = (sumMixed + avalanche(h)) | 0
  }
  for (let i = 0; i < invalid.length; i++) {
    const h = fold(0x2545f491, jsonOf(invalid[i]!.raw))
    sum = (sum + h) | 0
    sumMixed = (sumMixed + avalanche(h)) | 0
  }
  return (avalanche(sum ^ count) >>> 0) * 2097152 + (avalanche(sumMixed + count) & 2097151)
}

/**
 * The guard of one run: pages are numbered from 1 as they come; a page whose signature an earlier page
 * had fails with a SourceError (69) naming both.
 */
export const guard = (stream: string) => {
  const seen = new Map<number, number>()
  let number = 0
  return <P extends { readonly url: string; readonly signature: number | undefined }>(
    page: P
  ): Either.Either<P, SourceError> => {
    number++
    if (page.signature === undefined) return Either.right(page)
    const earlier = seen.get(page.signature)
    if (earlier === undefined) {
      seen.set(page.signature, number)
      return Either.right(page)
    }
    return Either.left(
      new SourceError({
        stream,
        url: page.url,
        reason: `pagination repeats: page ${number} holds the same records (keys and cursors) as page ${earlier}; ` +
          `stopping rather than loop`
      })
    )
  }
}
