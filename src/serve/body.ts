// Request bodies of `POST /v1/transactions`: one transaction (a JSON object),
// a JSON array of them, or NDJSON (one a line), in the input format of
// `dovepush run` (README, "Input"). Every item is validated before anything
// is queued; errors name the line (NDJSON) or the index (array) and the field.

import { InputError } from '../errors.js'
import type { TransactionUnit } from '../events/types.js'
import { parseTransaction } from '../events/validate.js'

export interface BodyError {
  readonly message: string
  /** 1-based line of an NDJSON body. */
  readonly line?: number
  /** 0-based index in a JSON array body. */
  readonly index?: number
  /** The offending field, e.g. `events[0].uid`. */
  readonly field?: string
}

export type ParsedBody =
  | { readonly ok: true; readonly units: TransactionUnit[] }
  | { readonly ok: false; readonly errors: BodyError[]; readonly errorCount: number }

export interface ParseBodyOptions {
  /** User of bare events and of transactions without `user`. */
  readonly user: string
  /** What the Content-Type says: `json` (the body is one JSON value), `ndjson`, or unknown (decided by the body). */
  readonly kind: 'json' | 'ndjson' | undefined
  /** Errors listed in full (the count covers the rest). */
  readonly maxErrors?: number
}

const EXPECTED = 'expected a transaction object, a JSON array of them, or NDJSON (one a line)'

/** The body kind a Content-Type names, if any. */
export function bodyKind(contentType: string | undefined): 'json' | 'ndjson' | undefined {
  if (contentType === undefined) return undefined
  const mime = contentType.split(';', 1)[0]!.trim().toLowerCase()
  if (mime === 'application/json') return 'json'
  if (mime === 'application/x-ndjson' || mime === 'application/ndjson' || mime === 'application/jsonl' || mime === 'application/x-jsonlines' || mime === 'application/jsonlines') return 'ndjson'
  return undefined
}

export function parseBody(text: string, o: ParseBodyOptions): ParsedBody {
  const maxErrors = o.maxErrors ?? 20
  let start = 0
  while (start < text.length && /\s/.test(text[start]!)) start++
  if (start === text.length) return failed([{ message: `empty body: ${EXPECTED}` }])
  if (o.kind !== 'ndjson') {
    let value: unknown
    let parsed = false
    try {
      value = JSON.parse(text)
      parsed = true
    } catch (err) {
      // one JSON value was promised (or the body is an array): report it as such
      if (o.kind === 'json' || text[start] === '[') return failed([{ message: `malformed JSON: ${(err as Error).message}` }])
    }
    if (parsed) {
      if (Array.isArray(value)) return parseArray(value, o.user, maxErrors)
      try {
        return { ok: true, units: [parseTransaction(value, { user: o.user })] }
      } catch (err) {
        return failed([fromInputError(err)])
      }
    }
  }
  return parseNdjson(text, o.user, maxErrors)
}

function failed(errors: BodyError[], errorCount = errors.length): ParsedBody {
  return { ok: false, errors, errorCount }
}

function fromInputError(err: unknown, where: { line?: number; index?: number } = {}): BodyError {
  if (!(err instanceof InputError)) throw err
  const field = err.field !== undefined && err.field !== '' ? err.field : undefined
  if (where.index !== undefined) {
    const path = field === undefined ? `[${where.index}]` : `[${where.index}].${field}`
    return { message: `${path}: ${err.detail}`, index: where.index, ...(field !== undefined ? { field } : {}) }
  }
  const e = new InputError(err.detail, { ...(where.line !== undefined ? { line: where.line } : {}), ...(field !== undefined ? { field } : {}) })
  return { message: e.message, ...(where.line !== undefined ? { line: where.line } : {}), ...(field !== undefined ? { field } : {}) }
}

function parseArray(items: unknown[], user: string, maxErrors: number): ParsedBody {
  if (items.length === 0) return failed([{ message: `empty array: ${EXPECTED}` }])
  const units: TransactionUnit[] = []
  const errors: BodyError[] = []
  let errorCount = 0
  for (let i = 0; i < items.length; i++) {
    try {
      units.push(parseTransaction(items[i], { user }))
    } catch (err) {
      errorCount++
      if (errors.length < maxErrors) errors.push(fromInputError(err, { index: i }))
    }
  }
  return errorCount > 0 ? failed(errors, errorCount) : { ok: true, units }
}

function parseNdjson(text: string, user: string, maxErrors: number): ParsedBody {
  const units: TransactionUnit[] = []
  const errors: BodyError[] = []
  let errorCount = 0
  let line = 0
  let from = 0
  while (from <= text.length) {
    let nl = text.indexOf('\n', from)
    if (nl < 0) nl = text.length
    line++
    const end = nl > from && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl
    const raw = text.slice(from, end)
    from = nl + 1
    if (raw.trim() === '') continue
    let value: unknown
    try {
      value = JSON.parse(raw)
    } catch (err) {
      errorCount++
      if (errors.length < maxErrors) errors.push({ message: `line ${line}: malformed JSON: ${(err as Error).message}`, line })
      continue
    }
    try {
      units.push(parseTransaction(value, { user }))
    } catch (err) {
      errorCount++
      if (errors.length < maxErrors) errors.push(fromInputError(err, { line }))
    }
  }
  return errorCount > 0 ? failed(errors, errorCount) : { ok: true, units }
}
