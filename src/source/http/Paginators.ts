/**
 * Pagination styles, one small value per style (as dlt's rest_client paginators). Each has two duties:
 * `first` shapes the first request of a run, and `next` reads the last exchange (request URL, response
 * headers, body, records) and says what the next request is, or that there is none.
 *
 * They are pure: loop detection (a repeated URL, empty pages that keep pointing onwards) lives in
 * `HttpSource`, once for every style.
 */
import { Either, Option } from "effect"
import type { Pagination, Placement } from "../../domain/Pagination.js"
import * as Json from "../../domain/Json.js"
import { valueAt, valueAtKeys } from "../../domain/JsonPath.js"
import { nextLink } from "./LinkHeader.js"

/**
 * One page's request: its URL and, with `in: body` or `in: variables`, the style's parameters for the
 * JSON body or the GraphQL variables (`Body.ts` puts them there).
 */
export interface PageRequest {
  readonly url: URL
  /** by parameter name, as JSON values (a token keeps its type) */
  readonly fields: Readonly<Record<string, unknown>>
  /** this page's token, offset or page number: `{next}` in a body; absent on a cursor style's first page */
  readonly next?: unknown
}

/** The last request and what came back. */
export interface Exchange {
  readonly request: PageRequest
  /** response headers, names in lower case */
  readonly headers: Readonly<Record<string, string | undefined>>
  readonly body: unknown
  readonly records: ReadonlyArray<unknown>
}

/** `Right(None)`: no next page; `Right(Some(request))`: send it; `Left(reason)`: the response does not fit the style. */
export type Next = Either.Either<Option.Option<PageRequest>, string>

export interface Paginator {
  readonly first: (request: PageRequest) => PageRequest
  readonly next: (last: Exchange) => Next
}

const end: Next = Either.right(Option.none())
const goTo = (request: PageRequest): Next => Either.right(Option.some(request))

/** A token or record field as a query value: strings and finite numbers only (a long number with all its digits). */
const asParam = (value: unknown): Option.Option<string> =>
  typeof value === "string" ? Option.some(value)
  : typeof value === "number" && Number.isFinite(value) ? Option.some(String(value))
  : typeof value === "bigint" ? Option.some(String(value))
  : Json.isLosslessNumber(value) ? Option.some(value.text)
  : Option.none()

/**
 * `request` with `params` set where `where` puts them: the URL's query as text, or the body's fields
 * as the JSON values they are (a numeric token stays a number). `next` is the new page's `{next}`.
 */
const place = (
  where: Placement | undefined,
  request: PageRequest,
  params: Readonly<Record<string, unknown>>,
  next: unknown
): PageRequest => {
  if (where === "body" || where === "variables") return { url: request.url, fields: { ...request.fields, ...params }, next }
  const url = new URL(request.url)
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, Option.getOrElse(asParam(value), () => String(value)))
  return { url, fields: request.fields, next }
}

/** Another URL (a link), POSTed with the same body: the fields carry over, there is no token. */
const toUrl = (request: PageRequest, url: URL): PageRequest => ({ url, fields: request.fields })

// --- link -------------------------------------------------------------------------------------------

const link: Paginator = {
  first: (request) => request,
  next: ({ headers, request }) => {
    const header = headers["link"]
    return header === undefined ? end : Either.right(Option.map(nextLink(header, request.url), (url) => toUrl(request, url)))
  }
}

/**
 * The next page's URL in the body at `nextPath`, resolved against the request URL; a JSON:API link
 * object (`{ href }`) counts as its `href`. null, "" or missing ends.
 */
const linkInBody = (nextPath: string): Paginator => ({
  first: (request) => request,
  next: ({ body, request }) => {
    const { url } = request
    const found = valueAt(body, nextPath)
    const target = typeof found === "object" && found !== null && !Array.isArray(found) ? (found as { href?: unknown }).href : found
    if (target === undefined || target === null || target === "") return end
    if (typeof target !== "string") return Either.left(`the next-page link at "${nextPath}" is not a string`)
    return URL.canParse(target, url.href) ? goTo(toUrl(request, new URL(target, url))) : Either.left(`the next-page link at "${nextPath}" is not a URL`)
  }
})

// --- cursor -----------------------------------------------------------------------------------------

/**
 * A token in the body at `nextPath`, sent back as `param`; null, "" or missing ends, and so does
 * `hasMorePath` when given and not `true` (a Relay `endCursor` is set on the last page too).
 */
const cursorToken = (param: string, nextPath: string, hasMorePath: string | undefined, where: Placement | undefined): Paginator => ({
  first: (request) => request,
  next: ({ body, request }) => {
    if (hasMorePath !== undefined && valueAt(body, hasMorePath) !== true) return end
    const token = valueAt(body, nextPath)
    if (token === undefined || token === null || token === "") return end
    return Option.isNone(asParam(token))
      ? Either.left(`the next-page token at "${nextPath}" is not a string or a number`)
      : goTo(place(where, request, { [param]: token }, token))
  }
})

/**
 * The last record's `fromRecord` field sent as `param` (Stripe's `starting_after`). With `hasMorePath`,
 * continue while that body path is `true`; without it, while the page is not empty.
 */
const cursorFromRecord = (
  param: string,
  fromRecord: string,
  hasMorePath: string | undefined,
  where: Placement | undefined
): Paginator => ({
  first: (request) => request,
  next: ({ body, records, request }) => {
    if (hasMorePath !== undefined && valueAt(body, hasMorePath) !== true) return end
    const last = records[records.length - 1]
    if (last === undefined) return end
    const value = valueAt(last, fromRecord)
    return Option.isNone(asParam(value))
      ? Either.left(`the last record has no string or number at "${fromRecord}" to continue from`)
      : goTo(place(where, request, { [param]: value }, value))
  }
})

/** A token in the response header `nextHeader`, sent back as `param`; a missing or empty header ends. */
const cursorHeader = (param: string, nextHeader: string, where: Placement | undefined): Paginator => ({
  first: (request) => request,
  next: ({ headers, request }) => {
    const token = headers[nextHeader.toLowerCase()]?.trim()
    return token === undefined || token === "" ? end : goTo(place(where, request, { [param]: token }, token))
  }
})

// --- offset / page ----------------------------------------------------------------------------------

/** The offset or page number the last request sent (its `next`), else `fallback`. */
const current = (request: PageRequest, fallback: number): number =>
  typeof request.next === "number" && Number.isInteger(request.next) ? request.next : fallback

/** `offsetParam`/`limitParam`; a page shorter than `limit` (or empty) is the last. */
const offset = (offsetParam: string, limitParam: string, limit: number, where: Placement | undefined): Paginator => ({
  first: (request) => place(where, request, { [offsetParam]: 0, [limitParam]: limit }, 0),
  next: ({ records, request }) => {
    if (records.length === 0 || records.length < limit) return end
    const at = current(request, 0) + records.length
    return goTo(place(where, request, { [offsetParam]: at }, at))
  }
})

/** `pageParam`/`sizeParam`, counting from `firstPage`; a page shorter than `size` (or empty) is the last. */
const page = (pageParam: string, sizeParam: string, size: number, firstPage: number, where: Placement | undefined): Paginator => ({
  first: (request) => place(where, request, { [pageParam]: firstPage, [sizeParam]: size }, firstPage),
  next: ({ records, request }) => {
    if (records.length === 0 || records.length < size) return end
    const at = current(request, firstPage) + 1
    return goTo(place(where, request, { [pageParam]: at }, at))
  }
})

const none: Paginator = { first: (request) => request, next: () => end }

/**
 * `paginator` with every next URL checked by `refusal` (`Origin.nextPageRefusal`): a refused one is the
 * `Left` of a response that does not fit, so the loop fails the stream (69) instead of requesting it.
 */
export const guardOrigins = (paginator: Paginator, refusal: (from: URL, to: URL) => string | undefined): Paginator => ({
  first: paginator.first,
  next: (last) =>
    Either.flatMap(paginator.next(last), (next) => {
      if (Option.isNone(next)) return end
      const reason = refusal(last.request.url, next.value.url)
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
  if (header !== undefined && Option.isSome(nextLink(header, last.request.url))) return "a Link header with rel=\"next\""
  for (const { at, value } of envelopes(last.body, records)) {
    for (const path of nextFields) if (isNextValue(valueAtKeys(value, path))) return `"${at}${path.join(".")}" in the body`
    for (const path of moreFields) if (valueAtKeys(value, path) === true) return `"${at}${path.join(".")}": true in the body`
  }
  if (tag !== "None" || last.records.length === 0) return undefined
  for (const [name, value] of last.request.url.searchParams) {
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
      return cursorHeader(pagination.param, pagination.nextHeader, pagination.in)
    case "CursorToken":
      return cursorToken(pagination.param, pagination.nextPath, pagination.hasMorePath, pagination.in)
    case "CursorFromRecord":
      return cursorFromRecord(pagination.param, pagination.fromRecord, pagination.hasMorePath, pagination.in)
    case "Offset":
      return offset(pagination.offsetParam, pagination.limitParam, pagination.limit, pagination.in)
    case "Page":
      return page(pagination.pageParam, pagination.sizeParam, pagination.size, pagination.firstPage, pagination.in)
  }
}
