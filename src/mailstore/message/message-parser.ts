// MIME structure, after Dovecot 2.3.19.1 src/lib-mail/message-parser.c
// (message_parser_parse_next_block, parse_next_header, boundary_line_find) and
// message-part-data.c (the Content-Type kept for a part).
// Part of ../message.ts (see its top comment).

import { type Header, findHeader, headerLine, lineEnd, lineText } from './message-header-parser.js'
import { contentParam, contentType } from './rfc822-parser.js'
import type { Bytes } from './unichar.js'

interface Boundary {
  readonly text: Bytes
}

interface BoundaryHit {
  readonly boundary: Boundary
  /** Where the "--boundary" line starts. */
  readonly line: number
  /** After that line. */
  readonly next: number
  /** "--boundary--": the multipart's last part has ended. */
  readonly epilogue: boolean
}

export interface Part {
  readonly headers: readonly Header[]
  /** message-part-data.c content_type "/" content_subtype; undefined without Content-Type. */
  readonly type: string | undefined
  readonly children: Part[]
  readonly start: number
  end: number
}

const BOUNDARY_STRING_MAX_LEN = 80
const BOUNDARY_END_MAX_LEN = BOUNDARY_STRING_MAX_LEN + 4

/**
 * Reads a header block up to the empty line. A line starting with an active MIME
 * boundary ends it too (message-parser.c parse_next_header).
 */
function readHeaders(b: Bytes, start: number, stack: readonly Boundary[]): { headers: Header[]; body: number; hit?: BoundaryHit } {
  const headers: Header[] = []
  for (let pos = start; pos < b.length; ) {
    const lf = lineEnd(b, pos)
    const hit = boundaryAt(b, pos, stack)
    if (hit !== undefined) return { headers, body: pos, hit }
    const line = lineText(b, pos, lf)
    const next = Math.min(lf + 1, b.length)
    if (line === '') return { headers, body: next }
    const last = headers.at(-1)
    if (last !== undefined && (line[0] === ' ' || line[0] === '\t')) last.value += '\n' + line
    else headers.push(headerLine(line))
    pos = next
  }
  return { headers, body: b.length }
}

/** The message's part tree (message_parser_init … message_parser_deinit). */
export function messageParts(b: Bytes): Part {
  return parseEntity(b, 0, [], false).part
}

/**
 * message_parser_parse_next_block, as a recursive descent: a part's header, then its body
 * up to the next line that starts with an active boundary. Multiparts need a boundary
 * parameter; message/rfc822 (and a part without Content-Type in multipart/digest) holds a
 * message. Preamble and epilogue belong to the multipart itself.
 */
function parseEntity(b: Bytes, start: number, stack: Boundary[], inDigest: boolean): { part: Part; hit: BoundaryHit | undefined } {
  const head = readHeaders(b, start, stack)
  const ctValue = findHeader(head.headers, 'Content-Type')
  const ct = ctValue === undefined ? undefined : contentType(ctValue)
  const part: Part = { headers: head.headers, type: ct?.value, children: [], start: head.body, end: head.body }
  if (head.hit !== undefined) return { part, hit: head.hit }
  const type = ct?.value.toLowerCase()
  const boundary = ct?.ok === true && type!.startsWith('multipart/') ? contentParam(ctValue!, 'boundary') : undefined
  if (boundary !== undefined) return parseMultipart(b, part, stack, { text: boundary.slice(0, BOUNDARY_STRING_MAX_LEN) }, type === 'multipart/digest')
  if (type === 'message/rfc822' || (ct === undefined && inDigest)) {
    const inner = parseEntity(b, head.body, stack, false)
    part.children.push(inner.part)
    part.end = inner.part.end
    return { part, hit: inner.hit }
  }
  const hit = nextBoundary(b, head.body, stack)
  part.end = hit === undefined ? b.length : bodyEnd(b, head.body, hit.line)
  return { part, hit }
}

/** The parts between "--boundary" lines, until "--boundary--" or an outer boundary. */
function parseMultipart(b: Bytes, part: Part, stack: Boundary[], own: Boundary, digest: boolean): { part: Part; hit: BoundaryHit | undefined } {
  stack.push(own)
  let hit = nextBoundary(b, part.start, stack)
  while (hit !== undefined && hit.boundary === own && !hit.epilogue) {
    const child = parseEntity(b, hit.next, stack, digest)
    part.children.push(child.part)
    hit = child.hit
  }
  stack.splice(stack.indexOf(own))
  if (hit?.boundary === own) hit = nextBoundary(b, hit.next, stack)
  return { part, hit }
}

/** The body ends before the (CR)LF that precedes the boundary line. */
function bodyEnd(b: Bytes, bodyStart: number, line: number): number {
  if (line === bodyStart) return line
  const lf = line - 1
  return lf > bodyStart && b[lf - 1] === '\r' ? lf - 1 : lf
}

function nextBoundary(b: Bytes, from: number, stack: readonly Boundary[]): BoundaryHit | undefined {
  if (stack.length === 0) return undefined
  for (let pos = from; pos < b.length; pos = lineEnd(b, pos) + 1) {
    const hit = boundaryAt(b, pos, stack)
    if (hit !== undefined) return hit
  }
  return undefined
}

/**
 * boundary_line_find + boundary_find: a line "--X" where X starts with an active boundary;
 * the longest such boundary wins, the innermost on a tie.
 */
function boundaryAt(b: Bytes, pos: number, stack: readonly Boundary[]): BoundaryHit | undefined {
  if (stack.length === 0 || !b.startsWith('--', pos)) return undefined
  const lf = b.indexOf('\n', pos)
  const text = lf < 0 ? b.slice(pos + 2, pos + 2 + BOUNDARY_END_MAX_LEN) : lineText(b, pos + 2, lf)
  const trailingDashes = lf >= 0 && text.length > 2 && text.endsWith('--')
  let best: Boundary | undefined
  for (let i = stack.length - 1; i >= 0; i--) {
    const boundary = stack[i]!
    const len = boundary.text.length
    if (len > text.length || !text.startsWith(boundary.text) || (best !== undefined && best.text.length >= len)) continue
    best = boundary
    if (len === text.length || (len === text.length - 2 && trailingDashes)) break
  }
  if (best === undefined) return undefined
  const epilogue = b.startsWith('--', pos + 2 + best.text.length)
  return { boundary: best, line: pos, next: lf < 0 ? b.length : lf + 1, epilogue }
}
