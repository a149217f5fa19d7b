// Expectation matchers over what a TestHost recorded: the sink's requests
// (pairwise, exact count), the calls into the script (an ordered
// subsequence), log lines (in order) and "no errors". Pure functions over
// plain arrays, so a vitest test can use them on a TestHost directly:
//
//   const problems = matchRequests(t.requests, [{ method: 'POST', json: { subject: 'Hi' } }])
//   expect(formatMismatches(problems)).toBe('')
//
// Each failed expectation is a Mismatch: a one-line (or few-line) message
// naming what differs, e.g.
//   request 1: body json: $.subject: expected "Hi", got "Hello"
// and a `diff`: what was actually there (the request, the closest calls, the
// log lines), for the reader to compare.

/** A request as the sink received it (TestHost's SinkRequest fits). */
export interface RecordedRequest {
  readonly method: string
  readonly url: string
  /** Path and query. */
  readonly path: string
  readonly headers: ReadonlyArray<readonly [string, string]>
  readonly body: string
}

/** A call into the script (TestHost's ScriptCall fits). */
export interface RecordedCall {
  readonly fn: string
  readonly user: string
  readonly session?: string
  readonly event?: object
  readonly committed?: boolean
  readonly error?: string
}

/** A log line (TestHost's LogLine fits): pino's numeric level and message. */
export interface RecordedLog {
  readonly level: number
  readonly msg: string
  readonly user?: string
}

export interface RequestExpectation {
  /** HTTP method, case-insensitive. */
  readonly method?: string
  /** Path and query, exact. */
  readonly path?: string
  /** Full URL, exact; `{{sink}}` is replaced by the sink's base URL. */
  readonly url?: string
  /** Headers that must be present with exactly these values; names case-insensitive. */
  readonly headers?: Readonly<Record<string, string | number>>
  /** The body, exact. */
  readonly body?: string
  /** Text the body must contain. */
  readonly body_contains?: string
  /** A deep subset of the body parsed as JSON (objects partial, arrays exact length). */
  readonly json?: unknown
}

export interface CallExpectation {
  readonly fn: string
  readonly user?: string
  /** A deep subset of the event table (null = absent). */
  readonly event?: Readonly<Record<string, unknown>>
  /** end_txn's second argument. */
  readonly committed?: boolean
  /** true: the call failed; false: it did not; text: it failed with an error containing it. */
  readonly error?: boolean | string
}

export type ExpectLevel = 'debug' | 'info' | 'warn' | 'error'

export interface LogExpectation {
  readonly level?: ExpectLevel
  readonly contains?: string
  /** A regular expression the message must match. */
  readonly matches?: string | RegExp
  readonly user?: string
}

export interface Expectations {
  /** Exactly these requests, pairwise in order. */
  readonly requests?: readonly RequestExpectation[]
  /** An ordered subsequence of the calls. */
  readonly calls?: readonly CallExpectation[]
  /** Log lines that must appear, in this order. */
  readonly logs?: readonly LogExpectation[]
  /** true: no log line at error level or above. */
  readonly no_errors?: boolean
}

export interface Mismatch {
  /** What differs, naming the item: `request 1: header Content-Type: expected "application/json", got none`. */
  readonly message: string
  /** What was actually there, several lines. */
  readonly diff?: string
}

/** What the matchers look at: a TestHost fits. */
export interface Recorded {
  readonly requests: readonly RecordedRequest[]
  readonly calls: readonly RecordedCall[]
  readonly logs: readonly RecordedLog[]
  /** The sink's base URL, for `{{sink}}` in expected URLs. */
  readonly sinkUrl?: string
}

// ---- values -----------------------------------------------------------------------

const MAX_SHOWN = 120

/** A value as it appears in messages: JSON text, shortened; undefined → nothing. */
export function show(v: unknown, max = MAX_SHOWN): string {
  if (v === undefined) return 'nothing'
  let s: string
  try {
    s = typeof v === 'bigint' ? `${v}` : (JSON.stringify(v) ?? String(v))
  } catch {
    s = String(v)
  }
  return s.length > max ? `${s.slice(0, max - 1)}…` : s
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

function childPath(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`
}

/**
 * Where `actual` does not contain `expected`: objects partially (keys of
 * `expected` only), arrays exactly (same length, items matched the same
 * way), everything else equal (null also matches an absent value: nil).
 * Returns one line per difference, `$.a.b: expected 1, got 2`.
 */
export function subsetDiff(expected: unknown, actual: unknown, path = '$'): string[] {
  if (expected === null) return actual === null || actual === undefined ? [] : [`${path}: expected null (absent), got ${show(actual)}`]
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return [`${path}: expected a list, got ${show(actual)}`]
    const out: string[] = []
    if (actual.length !== expected.length) out.push(`${path}: expected a list of ${expected.length}, got ${actual.length}: ${show(actual)}`)
    const n = Math.min(actual.length, expected.length)
    for (let i = 0; i < n; i++) out.push(...subsetDiff(expected[i], actual[i], childPath(path, i)))
    return out
  }
  if (isObject(expected)) {
    if (!isObject(actual)) return [`${path}: expected an object, got ${actual === undefined ? 'nothing' : show(actual)}`]
    const out: string[] = []
    for (const [k, v] of Object.entries(expected)) out.push(...subsetDiff(v, actual[k], childPath(path, k)))
    return out
  }
  if (Object.is(expected, actual) || expected === actual) return []
  return [`${path}: expected ${show(expected)}, got ${show(actual)}`]
}

// ---- requests ---------------------------------------------------------------------

function headerValues(r: RecordedRequest, name: string): string[] {
  const lower = name.toLowerCase()
  return r.headers.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v)
}

/** The request as a few indented lines: request line, headers, body (JSON pretty-printed). */
export function describeRequest(r: RecordedRequest, indent = '    '): string {
  const lines = [`${r.method} ${r.url}`, ...r.headers.map(([n, v]) => `${n}: ${v}`)]
  if (r.body !== '') {
    let body = r.body
    try {
      body = JSON.stringify(JSON.parse(r.body), null, 2)
    } catch {
      // not JSON: as is
    }
    if (body.length > 2000) body = `${body.slice(0, 2000)}… (${r.body.length} characters)`
    lines.push('', ...body.split('\n'))
  }
  return lines.map((l) => (l === '' ? '' : indent + l)).join('\n')
}

/** The differences between one request and its expectation, one line each (without the "request N: " prefix). */
export function requestDiff(r: RecordedRequest, e: RequestExpectation, sinkUrl?: string): string[] {
  const out: string[] = []
  if (e.method !== undefined && e.method.toUpperCase() !== r.method.toUpperCase()) out.push(`method: expected ${show(e.method.toUpperCase())}, got ${show(r.method)}`)
  if (e.path !== undefined && e.path !== r.path) out.push(`path: expected ${show(e.path)}, got ${show(r.path)}`)
  if (e.url !== undefined) {
    const url = sinkUrl !== undefined ? e.url.replaceAll('{{sink}}', sinkUrl) : e.url
    if (url !== r.url) out.push(`url: expected ${show(url)}, got ${show(r.url)}`)
  }
  for (const [name, want] of Object.entries(e.headers ?? {})) {
    const got = headerValues(r, name)
    if (got.includes(String(want))) continue
    out.push(`header ${name}: expected ${show(String(want))}, got ${got.length === 0 ? 'none' : got.map((v) => show(v)).join(', ')}`)
  }
  if (e.body !== undefined && e.body !== r.body) out.push(`body: ${textDiff(e.body, r.body)}`)
  if (e.body_contains !== undefined && !r.body.includes(e.body_contains)) out.push(`body: expected to contain ${show(e.body_contains)}, got ${show(r.body)}`)
  if (e.json !== undefined) {
    let parsed: unknown
    try {
      parsed = JSON.parse(r.body)
    } catch (err) {
      out.push(`body json: not JSON (${(err as Error).message}): ${show(r.body)}`)
      return out
    }
    for (const d of subsetDiff(e.json, parsed)) out.push(`body json: ${d}`)
  }
  return out
}

/** `expected "abc", got "abd"`, or for long texts where they first differ. */
function textDiff(expected: string, actual: string): string {
  if (expected.length + actual.length <= 2 * MAX_SHOWN - 40) return `expected ${show(expected)}, got ${show(actual)}`
  let i = 0
  while (i < expected.length && i < actual.length && expected[i] === actual[i]) i++
  const from = Math.max(0, i - 20)
  const cut = (s: string): string => `${from > 0 ? '…' : ''}${show(s.slice(from, i + 40), 80)}`
  return `differs at character ${i + 1} (expected ${expected.length} characters, got ${actual.length}): expected ${cut(expected)}, got ${cut(actual)}`
}

/** Exactly these requests, in order: the count, then each pair. */
export function matchRequests(actual: readonly RecordedRequest[], expected: readonly RequestExpectation[], options: { sinkUrl?: string } = {}): Mismatch[] {
  const out: Mismatch[] = []
  if (actual.length !== expected.length) {
    const list = actual.length === 0 ? '    (none)' : actual.map((r, i) => `    ${i + 1}. ${r.method} ${r.path} (${Buffer.byteLength(r.body)} bytes)`).join('\n')
    out.push({ message: `requests: expected ${plural(expected.length, 'request')}, got ${actual.length}`, diff: `  received:\n${list}` })
  }
  const n = Math.min(actual.length, expected.length)
  for (let i = 0; i < n; i++) {
    const diffs = requestDiff(actual[i]!, expected[i]!, options.sinkUrl)
    if (diffs.length > 0) out.push({ message: diffs.map((d) => `request ${i + 1}: ${d}`).join('\n'), diff: `  request ${i + 1} received:\n${describeRequest(actual[i]!)}` })
  }
  return out
}

// ---- calls ------------------------------------------------------------------------

/** The differences between a call and its expectation (fn first). */
export function callDiff(c: RecordedCall, e: CallExpectation): string[] {
  const out: string[] = []
  if (c.fn !== e.fn) out.push(`fn: expected ${show(e.fn)}, got ${show(c.fn)}`)
  if (e.user !== undefined && c.user !== e.user) out.push(`user: expected ${show(e.user)}, got ${show(c.user)}`)
  if (e.committed !== undefined && c.committed !== e.committed) out.push(`committed: expected ${e.committed}, got ${show(c.committed)}`)
  if (e.error !== undefined) {
    if (e.error === true && c.error === undefined) out.push('error: expected the call to fail, it did not')
    else if (e.error === false && c.error !== undefined) out.push(`error: expected none, got ${show(c.error)}`)
    else if (typeof e.error === 'string' && !(c.error ?? '').includes(e.error))
      out.push(`error: expected one containing ${show(e.error)}, got ${c.error === undefined ? 'none' : show(c.error)}`)
  }
  if (e.event !== undefined) {
    if (c.event === undefined) out.push('event: expected an event table, the call has none')
    else out.push(...subsetDiff(e.event, c.event, 'event'))
  }
  return out
}

const describeExpectedCall = (e: CallExpectation): string =>
  [e.fn, e.user !== undefined ? `user=${e.user}` : '', e.committed !== undefined ? `committed=${e.committed}` : '', e.event !== undefined ? `event ${show(e.event, 80)}` : '']
    .filter(Boolean)
    .join(' ')

const describeCall = (c: RecordedCall, i: number): string =>
  `#${i + 1} ${c.fn} (${c.user || '-'})${c.committed !== undefined ? ` committed=${c.committed}` : ''}${c.error !== undefined ? ` error=${show(c.error, 60)}` : ''}`

/**
 * The expected calls must appear in this order, others may come between.
 * A missing one is reported with the closest candidates (same function,
 * fewest differences) and what differs in each.
 */
export function matchCalls(actual: readonly RecordedCall[], expected: readonly CallExpectation[]): Mismatch[] {
  const out: Mismatch[] = []
  let from = 0
  expected.forEach((e, k) => {
    for (let i = from; i < actual.length; i++) {
      if (callDiff(actual[i]!, e).length === 0) {
        from = i + 1
        return
      }
    }
    const what = `call ${k + 1} (${describeExpectedCall(e)})`
    const earlier = actual.findIndex((c, i) => i < from && callDiff(c, e).length === 0)
    if (earlier >= 0) {
      out.push({ message: `${what}: out of order: made as #${earlier + 1}, before the call matched by the previous expectation (#${from})`, diff: callList(actual, earlier, from) })
      return
    }
    const sameFn = actual.map((c, i) => ({ c, i, d: callDiff(c, e) })).filter((x) => x.c.fn === e.fn)
    if (sameFn.length === 0) {
      const counts = new Map<string, number>()
      for (const c of actual) counts.set(c.fn, (counts.get(c.fn) ?? 0) + 1)
      const made = [...counts].map(([fn, n]) => `    ${fn} ×${n}`).join('\n')
      out.push({ message: `${what}: ${e.fn} was never called`, diff: `  calls made:\n${made || '    (none)'}` })
      return
    }
    const closest = [...sameFn].sort((a, b) => a.d.length - b.d.length || a.i - b.i).slice(0, 3)
    const lines = closest.map((x) => {
      const d = x.d.length > 0 ? x.d : [`matches, but comes before the previous expected call (#${from})`]
      return `    ${describeCall(x.c, x.i)}:\n${d.map((l) => `      ${l}`).join('\n')}`
    })
    const first = closest[0]!
    const headline = first.d.length > 0 ? `: not found; closest ${describeCall(first.c, first.i).split(' (')[0]}: ${first.d[0]}` : ': not found'
    out.push({
      message: `${what}${headline}`,
      diff: `  closest ${closest.length === 1 ? 'candidate' : 'candidates'} (of ${plural(sameFn.length, `${e.fn} call`)}):\n${lines.join('\n')}`,
    })
  })
  return out
}

function callList(actual: readonly RecordedCall[], a: number, b: number): string {
  const lo = Math.max(0, Math.min(a, b - 1) - 1)
  const hi = Math.min(actual.length, Math.max(a, b - 1) + 2)
  return `  calls #${lo + 1}–#${hi}:\n${actual.slice(lo, hi).map((c, j) => `    ${describeCall(c, lo + j)}`).join('\n')}`
}

// ---- logs -------------------------------------------------------------------------

export const LEVEL_NUMBERS: Readonly<Record<ExpectLevel, number>> = { debug: 20, info: 30, warn: 40, error: 50 }
const LEVEL_NAMES: Readonly<Record<number, string>> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' }

const levelName = (n: number): string => LEVEL_NAMES[n] ?? String(n)

function levelMatches(level: ExpectLevel | undefined, n: number): boolean {
  if (level === undefined) return true
  return level === 'error' ? n >= 50 : n === LEVEL_NUMBERS[level]
}

function textMatches(e: LogExpectation, msg: string): boolean {
  if (e.contains !== undefined && !msg.includes(e.contains)) return false
  if (e.matches !== undefined && !(typeof e.matches === 'string' ? new RegExp(e.matches) : e.matches).test(msg)) return false
  return true
}

const logMatches = (l: RecordedLog, e: LogExpectation): boolean =>
  levelMatches(e.level, l.level) && textMatches(e, l.msg) && (e.user === undefined || l.user === e.user)

const describeLog = (l: RecordedLog, i: number): string => `#${i + 1} ${levelName(l.level)}: ${l.user !== undefined ? `(${l.user}) ` : ''}${l.msg}`

const describeExpectedLog = (e: LogExpectation): string =>
  [
    e.level ?? '',
    e.contains !== undefined ? `contains ${show(e.contains)}` : '',
    e.matches !== undefined ? `matches ${typeof e.matches === 'string' ? `/${e.matches}/` : String(e.matches)}` : '',
    e.user !== undefined ? `user=${e.user}` : '',
  ]
    .filter(Boolean)
    .join(', ')

/** Each expected line must appear, in this order (others may come between). */
export function matchLogs(actual: readonly RecordedLog[], expected: readonly LogExpectation[]): Mismatch[] {
  const out: Mismatch[] = []
  let from = 0
  expected.forEach((e, k) => {
    const at = actual.findIndex((l, i) => i >= from && logMatches(l, e))
    if (at >= 0) {
      from = at + 1
      return
    }
    const what = `log ${k + 1} (${describeExpectedLog(e)})`
    const earlier = actual.findIndex((l, i) => i < from && logMatches(l, e))
    if (earlier >= 0) {
      out.push({ message: `${what}: out of order: logged as #${earlier + 1}, before the line matched by the previous expectation (#${from})`, diff: logList(actual) })
      return
    }
    const textOnly = actual.findIndex((l) => textMatches(e, l.msg))
    const hint =
      textOnly >= 0 && !levelMatches(e.level, actual[textOnly]!.level)
        ? `; #${textOnly + 1} has the text but level ${levelName(actual[textOnly]!.level)}`
        : textOnly >= 0 && e.user !== undefined
          ? `; #${textOnly + 1} has the text but user ${show(actual[textOnly]!.user)}`
          : ''
    out.push({ message: `${what}: not found${hint}`, diff: logList(actual) })
  })
  return out
}

function logList(actual: readonly RecordedLog[], max = 30): string {
  if (actual.length === 0) return '  log lines: (none)'
  const shown = actual.length > max ? actual.slice(actual.length - max) : actual
  const skip = actual.length - shown.length
  return `  log lines${skip > 0 ? ` (last ${max} of ${actual.length})` : ''}:\n${shown.map((l, j) => `    ${describeLog(l, skip + j)}`).join('\n')}`
}

/** No line at error level or above. */
export function matchNoErrors(actual: readonly RecordedLog[]): Mismatch[] {
  const errors = actual.map((l, i) => ({ l, i })).filter((x) => x.l.level >= 50)
  if (errors.length === 0) return []
  return [
    {
      message: `no_errors: ${plural(errors.length, 'error line')}, first: ${errors[0]!.l.msg}`,
      diff: `  error lines:\n${errors.slice(0, 20).map((x) => `    ${describeLog(x.l, x.i)}`).join('\n')}${errors.length > 20 ? `\n    … and ${errors.length - 20} more` : ''}`,
    },
  ]
}

/** Every expectation given, over what was recorded: requests, calls, logs, no_errors. */
export function checkExpectations(recorded: Recorded, e: Expectations): Mismatch[] {
  const out: Mismatch[] = []
  if (e.requests !== undefined) out.push(...matchRequests(recorded.requests, e.requests, recorded.sinkUrl !== undefined ? { sinkUrl: recorded.sinkUrl } : {}))
  if (e.calls !== undefined) out.push(...matchCalls(recorded.calls, e.calls))
  if (e.logs !== undefined) out.push(...matchLogs(recorded.logs, e.logs))
  if (e.no_errors === true) out.push(...matchNoErrors(recorded.logs))
  return out
}

/** The mismatches as text (message, then the diff), '' when none: handy in `expect(...).toBe('')`. */
export function formatMismatches(ms: readonly Mismatch[]): string {
  return ms.map((m) => (m.diff !== undefined ? `${m.message}\n${m.diff}` : m.message)).join('\n')
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}
