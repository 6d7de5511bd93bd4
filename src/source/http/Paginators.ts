/**
 * Pagination styles, one small value per style (as dlt's rest_client paginators). Each has two duties:
 * `first` shapes the first request of a run, and `next` reads the last exchange (request URL, response
 * headers, body, records) and says what the next request is, or that there is none.
 *
 * They are pure: loop detection (a repeated URL, empty pages that keep pointing onwards) lives in
 * `HttpSource`, once for every style.
 */
import { Either, Option } from "effect"
import type { Pagination } from "../../domain/Pagination.js"
import * as Json from "../../domain/Json.js"
import { valueAt, valueAtKeys } from "../../domain/JsonPath.js"
import { nextLink } from "./LinkHeader.js"

/** The last request and what came back. */
export interface Exchange {
  readonly url: URL
  /** response headers, names in lower case */
  readonly headers: Readonly<Record<string, string | undefined>>
  readonly body: unknown
  readonly records: ReadonlyArray<unknown>
}

/** `Right(None)`: no next page; `Right(Some(url))`: request it; `Left(reason)`: the response does not fit the style. */
export type Next = Either.Either<Option.Option<URL>, string>

export interface Paginator {
  readonly first: (url: URL) => URL
  readonly next: (last: Exchange) => Next
}

const end: Next = Either.right(Option.none())
const goTo = (url: URL): Next => Either.right(Option.some(url))

const withParams = (url: URL, params: Readonly<Record<string, string>>): URL => {
  const copy = new URL(url)
  for (const [name, value] of Object.entries(params)) copy.searchParams.set(name, value)
  return copy
}

/** A token or record field as a query value: strings and finite numbers only (a long number with all its digits). */
const asParam = (value: unknown): Option.Option<string> =>
  typeof value === "string" ? Option.some(value)
  : typeof value === "number" && Number.isFinite(value) ? Option.some(String(value))
  : typeof value === "bigint" ? Option.some(String(value))
  : Json.isLosslessNumber(value) ? Option.some(value.text)
  : Option.none()

// --- link -------------------------------------------------------------------------------------------

const link: Paginator = {
  first: (url) => url,
  next: ({ headers, url }) => {
    const header = headers["link"]
    return header === undefined ? end : Either.right(nextLink(header, url))
  }
}

/**
 * The next page's URL in the body at `nextPath`, resolved against the request URL; a JSON:API link
 * object (`{ href }`) counts as its `href`. null, "" or missing ends.
 */
const linkInBody = (nextPath: string): Paginator => ({
  first: (url) => url,
  next: ({ body, url }) => {
    const found = valueAt(body, nextPath)
    const target = typeof found === "object" && found !== null && !Array.isArray(found) ? (found as { href?: unknown }).href : found
    if (target === undefined || target === null || target === "") return end
    if (typeof target !== "string") return Either.left(`the next-page link at "${nextPath}" is not a string`)
    return URL.canParse(target, url.href) ? goTo(new URL(target, url)) : Either.left(`the next-page link at "${nextPath}" is not a URL`)
  }
})

// --- cursor -----------------------------------------------------------------------------------------

/** A token in the body at `nextPath`, sent back as `param`; null, "" or missing ends. */
const cursorToken = (param: string, nextPath: string): Paginator => ({
  first: (url) => url,
  next: ({ body, url }) => {
    const token = valueAt(body, nextPath)
    if (token === undefined || token === null || token === "") return end
    return Option.match(asParam(token), {
      onNone: () => Either.left(`the next-page token at "${nextPath}" is not a string or a number`),
      onSome: (value) => goTo(withParams(url, { [param]: value }))
    })
  }
})

/**
 * The last record's `fromRecord` field sent as `param` (Stripe's `starting_after`). With `hasMorePath`,
 * continue while that body path is `true`; without it, while the page is not empty.
 */
const cursorFromRecord = (param: string, fromRecord: string, hasMorePath: string | undefined): Paginator => ({
  first: (url) => url,
  next: ({ body, records, url }) => {
    if (hasMorePath !== undefined && valueAt(body, hasMorePath) !== true) return end
    const last = records[records.length - 1]
    if (last === undefined) return end
    const value = valueAt(last, fromRecord)
    return Option.match(asParam(value), {
      onNone: () => Either.left(`the last record has no string or number at "${fromRecord}" to continue from`),
      onSome: (v) => goTo(withParams(url, { [param]: v }))
    })
  }
})

/** A token in the response header `nextHeader`, sent back as `param`; a missing or empty header ends. */
const cursorHeader = (param: string, nextHeader: string): Paginator => ({
  first: (url) => url,
  next: ({ headers, url }) => {
    const token = headers[nextHeader.toLowerCase()]?.trim()
    return token === undefined || token === "" ? end : goTo(withParams(url, { [param]: token }))
  }
})

// --- offset / page ----------------------------------------------------------------------------------

const currentInt = (url: URL, param: string, fallback: number): number => {
  const raw = url.searchParams.get(param)
  const n = raw === null ? NaN : Number(raw)
  return Number.isInteger(n) ? n : fallback
}

/** `offsetParam`/`limitParam`; a page shorter than `limit` (or empty) is the last. */
const offset = (offsetParam: string, limitParam: string, limit: number): Paginator => ({
  first: (url) => withParams(url, { [offsetParam]: "0", [limitParam]: String(limit) }),
  next: ({ records, url }) => {
    if (records.length === 0 || records.length < limit) return end
    const at = currentInt(url, offsetParam, 0)
    return goTo(withParams(url, { [offsetParam]: String(at + records.length) }))
  }
})

/** `pageParam`/`sizeParam`, counting from `firstPage`; a page shorter than `size` (or empty) is the last. */
const page = (pageParam: string, sizeParam: string, size: number, firstPage: number): Paginator => ({
  first: (url) => withParams(url, { [pageParam]: String(firstPage), [sizeParam]: String(size) }),
  next: ({ records, url }) => {
    if (records.length === 0 || records.length < size) return end
    const at = currentInt(url, pageParam, firstPage)
    return goTo(withParams(url, { [pageParam]: String(at + 1) }))
  }
})

const none: Paginator = { first: (url) => url, next: () => end }

/**
 * `paginator` with every next URL checked by `refusal` (`Origin.nextPageRefusal`): a refused one is the
 * `Left` of a response that does not fit, so the loop fails the stream (69) instead of requesting it.
 */
export const guardOrigins = (paginator: Paginator, refusal: (from: URL, to: URL) => string | undefined): Paginator => ({
  first: paginator.first,
  next: (last) =>
    Either.flatMap(paginator.next(last), (next) => {
      if (Option.isNone(next)) return end
      const reason = refusal(last.url, next.value)
      return reason === undefined ? Either.right(next) : Either.left(reason)
    })
})

// --- more pages than the style reads ---------------------------------------------------------------

/** Body fields that clearly say "there is a next page" when they hold a non-empty string (or a JSON:API link object). */
const nextFields: ReadonlyArray<ReadonlyArray<string>> = [
  ["next"],
  ["next_page_url"],
  ["next_cursor"],
  ["next_page_token"],
  ["nextPageToken"],
  ["@odata.nextLink"],
  ["links", "next"],
  ["meta", "next"],
  ["meta", "next_cursor"],
  ["response_metadata", "next_cursor"],
  ["paging", "next"]
]

/** Body fields that say "there is a next page" when they are `true`. */
const moreFields: ReadonlyArray<ReadonlyArray<string>> = [["has_more"], ["hasMore"], ["meta", "has_more"], ["pageInfo", "hasNextPage"]]

/** Query parameters that set a page's size, compared lower-case without `_`, `-` and `$` (`per_page`, `$top`, `pageSize`). */
const limitNames = new Set(["limit", "perpage", "pagesize", "size", "count", "top", "maxresults"])

const isNextValue = (value: unknown): boolean =>
  (typeof value === "string" && value.trim() !== "") ||
  (typeof value === "object" && value !== null && !Array.isArray(value) &&
    typeof (value as { href?: unknown }).href === "string" && (value as { href: string }).href.trim() !== "")

/** The objects a next-page field sits in: the body, and the object holding the records (`data.orders` → `data`). */
const envelopes = (body: unknown, records: string | undefined): ReadonlyArray<{ readonly at: string; readonly value: unknown }> => {
  const keys = records === undefined ? [] : records.split(".")
  const parent = keys.length > 1 ? [{ at: `${keys.slice(0, -1).join(".")}.`, value: valueAtKeys(body, keys.slice(0, -1)) }] : []
  return [{ at: "", value: body }, ...parent].filter((e) => typeof e.value === "object" && e.value !== null && !Array.isArray(e.value))
}

/**
 * A sign, on the page where `pagination` stopped, that the source has more than it read: a `Link`
 * rel="next", a next URL or cursor or `has_more: true` at a usual place in the body, or (with
 * `none`) a page exactly as long as a limit-like query parameter. Only signs that clearly mean "there
 * is more": a user who forgot `pagination` must not get 100 of 1,250 records in silence, and a
 * complete source must not warn. The styles that stop on a short page (`offset`, `page`) are checked
 * for the first two (an API that caps the page size below `limit` ends them after one page); `link`
 * and `cursor` follow their own sign. Names the sign, never a value (a next URL may carry a token).
 */
export const moreSign = (pagination: Pagination, records: string | undefined, last: Exchange): string | undefined => {
  const tag = pagination._tag
  if (tag !== "None" && tag !== "Offset" && tag !== "Page") return undefined
  const header = last.headers["link"]
  if (header !== undefined && Option.isSome(nextLink(header, last.url))) return "a Link header with rel=\"next\""
  for (const { at, value } of envelopes(last.body, records)) {
    for (const path of nextFields) if (isNextValue(valueAtKeys(value, path))) return `"${at}${path.join(".")}" in the body`
    for (const path of moreFields) if (valueAtKeys(value, path) === true) return `"${at}${path.join(".")}": true in the body`
  }
  if (tag !== "None" || last.records.length === 0) return undefined
  for (const [name, value] of last.url.searchParams) {
    if (!limitNames.has(name.toLowerCase().replace(/[_\-$]/g, ""))) continue
    if (/^\d+$/.test(value) && Number(value) === last.records.length) {
      return `a page of exactly ${last.records.length} records, the ${name}=${value} asked for`
    }
  }
  return undefined
}

/** The paginator of a spec's `pagination`. */
export const fromSpec = (pagination: Pagination): Paginator => {
  switch (pagination._tag) {
    case "None":
      return none
    case "Link":
      return link
    case "LinkInBody":
      return linkInBody(pagination.nextPath)
    case "CursorHeader":
      return cursorHeader(pagination.param, pagination.nextHeader)
    case "CursorToken":
      return cursorToken(pagination.param, pagination.nextPath)
    case "CursorFromRecord":
      return cursorFromRecord(pagination.param, pagination.fromRecord, pagination.hasMorePath)
    case "Offset":
      return offset(pagination.offsetParam, pagination.limitParam, pagination.limit)
    case "Page":
      return page(pagination.pageParam, pagination.sizeParam, pagination.size, pagination.firstPage)
  }
}
