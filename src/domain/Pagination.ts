/**
 * Pagination styles, one tagged member each; `source/http/Paginators.ts` gives each its two duties
 * (what is the next request, and is there one). A style is written `type: <style>` with its fields
 * (`type: link` covers the Link header and a next URL in the body, told apart by `nextPath`; `type: cursor`
 * covers three styles, told apart by `nextPath`, `fromRecord` or `nextHeader`) and decodes to its member.
 */
import { ParseResult, Schema, type SchemaAST } from "effect"
import { DottedPath, HeaderName, integerAtLeast, NonEmpty, oneOf, withDefault } from "./Fields.js"

/** A style written `type: <type>` with `fields`, decoded to its member: the same fields tagged `tag`. */
const style = <const Type extends string, const Tag extends string, Fields extends Schema.Struct.Fields>(
  type: Type,
  tag: Tag,
  fields: Fields
) =>
  Schema.transform(Schema.Struct({ type: Schema.Literal(type), ...fields }), Schema.typeSchema(Schema.TaggedStruct(tag, fields)), {
    strict: false,
    decode: (written) => {
      const { type: _, ...rest } = written as Record<string, unknown>
      return { _tag: tag, ...rest }
    },
    encode: (member) => {
      const { _tag: _, ...rest } = member as Record<string, unknown>
      return { type, ...rest }
    }
  })

/**
 * Where a style's parameters go: the URL's query (absent: the default), the top level of the JSON body
 * (`method: POST`), or the GraphQL variables.
 */
const Placement = oneOf("query", "body", "variables")
const placement = { in: Schema.optional(Placement) }

/** a token in the body at `nextPath`, sent back as `param` (while `hasMorePath`, if given, is true: Relay's pageInfo) */
const CursorToken = Schema.TaggedStruct("CursorToken", {
  param: NonEmpty,
  nextPath: DottedPath,
  hasMorePath: Schema.optional(DottedPath),
  ...placement
})

/** the last record's `fromRecord` field sent as `param` (Stripe's `starting_after`), while `hasMorePath` is true */
const CursorFromRecord = Schema.TaggedStruct("CursorFromRecord", {
  param: NonEmpty,
  fromRecord: DottedPath,
  hasMorePath: Schema.optional(DottedPath),
  ...placement
})

/** a token in the response header `nextHeader`, sent back as `param` */
const CursorHeader = Schema.TaggedStruct("CursorHeader", { param: NonEmpty, nextHeader: HeaderName, ...placement })

/** RFC 8288 `Link: <...>; rel="next"` */
const Link = Schema.TaggedStruct("Link", {})

/** the next page's URL in the body at `nextPath` (JSON:API `links.next`, HAL `_links.next.href`), absolute or relative */
const LinkInBody = Schema.TaggedStruct("LinkInBody", { nextPath: DottedPath })

const fail = (ast: SchemaAST.AST, input: unknown, message: string) =>
  ParseResult.fail(new ParseResult.Type(ast, input, message))

const cursorRule =
  "cursor pagination needs exactly one of nextPath (token in the body), fromRecord (field of the last record) or nextHeader (token in a response header)"

/** `type: cursor`: one shape for the three styles, so that a mistake gets one message naming the field to fix. */
const WrittenCursor = Schema.transformOrFail(
  Schema.Struct({
    type: Schema.Literal("cursor"),
    param: NonEmpty,
    nextPath: Schema.optional(DottedPath),
    fromRecord: Schema.optional(DottedPath),
    nextHeader: Schema.optional(HeaderName),
    hasMorePath: Schema.optional(DottedPath),
    ...placement
  }),
  Schema.Union(Schema.typeSchema(CursorToken), Schema.typeSchema(CursorFromRecord), Schema.typeSchema(CursorHeader)),
  {
    strict: true,
    decode: ({ fromRecord, hasMorePath, in: where, nextHeader, nextPath, param }, _, ast, input) => {
      if ([nextPath, fromRecord, nextHeader].filter((field) => field !== undefined).length !== 1) return fail(ast, input, cursorRule)
      const placed = where === undefined ? {} : { in: where }
      if (fromRecord !== undefined) return ParseResult.succeed(CursorFromRecord.make({ param, fromRecord, hasMorePath, ...placed }))
      if (nextHeader !== undefined && hasMorePath !== undefined) {
        return ParseResult.fail(new ParseResult.Pointer("hasMorePath", input, new ParseResult.Type(ast, hasMorePath, "hasMorePath is only used with nextPath or fromRecord")))
      }
      if (nextHeader !== undefined) return ParseResult.succeed(CursorHeader.make({ param, nextHeader, ...placed }))
      return ParseResult.succeed(CursorToken.make({ param, nextPath: nextPath!, hasMorePath, ...placed }))
    },
    encode: ({ _tag, ...fields }) => ParseResult.succeed({ type: "cursor" as const, ...fields })
  }
)

/** `type: link`: the Link header, or with `nextPath` the next URL in the body. */
const WrittenLink = Schema.transformOrFail(
  Schema.Struct({ type: Schema.Literal("link"), nextPath: Schema.optional(DottedPath) }),
  Schema.Union(Schema.typeSchema(Link), Schema.typeSchema(LinkInBody)),
  {
    strict: true,
    decode: ({ nextPath }) => ParseResult.succeed(nextPath === undefined ? Link.make({}) : LinkInBody.make({ nextPath })),
    encode: ({ _tag, ...fields }) => ParseResult.succeed({ type: "link" as const, ...fields })
  }
)

/** A pagination as written (`{ type: offset, limit: 50 }`), decoded to its style (defaults filled in). */
export const Pagination = Schema.Union(
  style("none", "None", {}),
  WrittenLink,
  WrittenCursor,
  style("offset", "Offset", {
    offsetParam: withDefault(NonEmpty, () => "offset"),
    limitParam: withDefault(NonEmpty, () => "limit"),
    limit: withDefault(integerAtLeast(1), () => 100),
    ...placement
  }),
  style("page", "Page", {
    pageParam: withDefault(NonEmpty, () => "page"),
    sizeParam: withDefault(NonEmpty, () => "per_page"),
    size: withDefault(integerAtLeast(1), () => 100),
    firstPage: withDefault(integerAtLeast(0), () => 1),
    ...placement
  })
)
export type Pagination = typeof Pagination.Type
export type Placement = typeof Placement.Type
