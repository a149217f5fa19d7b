// Scenario files: a push script's test as data. YAML or JSON (same
// structure, schema/scenario.schema.json): plugin settings, mail actions
// (steps) run through a TestHost over the simulated mail store, and what the
// script must have done (requests to the local sink, calls, log lines).
// Running one is src/testing/run-scenario.ts.
//
//   const s = loadScenario('fixtures/scenarios/webhook.yaml')   // throws ScenarioError (exit 2)
//
// loadScenario validates with the JSON Schema (ajv) and reports every problem
// with the file and the path in the document (`x.yaml: steps[3].store: must
// have one of add, remove, replace (line 14)`), resolves the script and
// .eml paths against the scenario's directory and reads the .eml files.

import { readFileSync } from 'node:fs'
import { basename, dirname, extname, resolve } from 'node:path'
import type { ErrorObject, ValidateFunction } from 'ajv'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { type Document, LineCounter, parseDocument } from 'yaml'
import { InputError } from '../errors.js'
import type { DovecotVersion } from '../lua/env.js'
import type { Actor, AppendItem, DeliverOptions, MessageInput, StoreOp, UidSet } from '../mailstore/actions.js'
import type { SimpleMessage } from '../mailstore/message.js'
import type { Expectations } from '../testing/expect.js'

// ---- types ------------------------------------------------------------------------

type WithBox = Actor & { readonly mailbox: string }

/** One mail action, with its arguments as the TestHost takes them. */
export type StepAction =
  | { readonly kind: 'deliver'; readonly args: DeliverOptions }
  | { readonly kind: 'login' | 'logout'; readonly args: Actor }
  | { readonly kind: 'select' | 'create' | 'delete' | 'subscribe' | 'unsubscribe'; readonly args: WithBox }
  | { readonly kind: 'append'; readonly args: WithBox & { readonly items: readonly AppendItem[] } }
  | { readonly kind: 'store'; readonly args: WithBox & { readonly uids?: UidSet; readonly op: StoreOp; readonly flags: readonly string[] } }
  | { readonly kind: 'expunge'; readonly args: WithBox & { readonly uids?: UidSet } }
  | { readonly kind: 'copy' | 'move'; readonly args: WithBox & { readonly uids?: UidSet; readonly to: string } }
  | { readonly kind: 'rename'; readonly args: WithBox & { readonly to: string } }

export type ActionName = StepAction['kind']

export const ACTION_NAMES: readonly ActionName[] = [
  'deliver',
  'login',
  'logout',
  'select',
  'append',
  'store',
  'expunge',
  'copy',
  'move',
  'create',
  'rename',
  'delete',
  'subscribe',
  'unsubscribe',
]

export interface ScenarioStep {
  /** 0-based, as in `steps[N]`. */
  readonly index: number
  readonly name?: string
  /** How failures name the step: `steps[2] "Alice reads it"` or `steps[2] store`. */
  readonly label: string
  readonly action: StepAction
  /** The action must be refused. */
  readonly fails: boolean
  readonly expect?: Expectations
}

export interface Scenario {
  readonly name: string
  /** The scenario file, as given to loadScenario. */
  readonly file: string
  /** The script (absolute), when the file names one. */
  readonly script?: string
  readonly dovecot?: DovecotVersion
  readonly settings: Readonly<Record<string, string>>
  readonly users: Readonly<Record<string, Readonly<Record<string, string>>>>
  readonly steps: readonly ScenarioStep[]
  readonly expect?: Expectations
}

/** One problem of a scenario file: where (a path like `steps[3].store`, and the line in a YAML file) and what. */
export interface ScenarioProblem {
  readonly path: string
  readonly line?: number
  readonly message: string
}

/** A scenario file that cannot be read, parsed or validated (DOVEPUSH_ERR_INPUT; CLI exit 2). Its message has one line per problem. */
export class ScenarioError extends InputError {
  readonly file: string
  readonly problems: readonly ScenarioProblem[]
  constructor(file: string, problems: readonly ScenarioProblem[], options?: { cause?: unknown }) {
    super(problems.map((p) => formatProblem(file, p)).join('\n'), {}, options)
    this.name = 'ScenarioError'
    this.file = file
    this.problems = problems
  }
}

function formatProblem(file: string, p: ScenarioProblem): string {
  return `${file}: ${p.path !== '' ? `${p.path}: ` : ''}${p.message}${p.line !== undefined ? ` (line ${p.line})` : ''}`
}

// ---- schema -----------------------------------------------------------------------

/** Where the JSON Schema of scenario files is (schema/scenario.schema.json in the package). */
export const SCENARIO_SCHEMA_URL = new URL('../../schema/scenario.schema.json', import.meta.url)

interface Compiled {
  readonly check: ValidateFunction
  /** The subschemas that get their own wording in messages (ajv's verbose errors point at them). */
  readonly step: unknown
  readonly uids: unknown
}

let compiled: Compiled | undefined

/** The compiled schema (once). */
function validator(): Compiled {
  if (compiled === undefined) {
    const schema = JSON.parse(readFileSync(SCENARIO_SCHEMA_URL, 'utf8')) as { $defs: Record<string, unknown> }
    const ajv = new Ajv2020({ allErrors: true, verbose: true, allowUnionTypes: true, strict: true, strictRequired: false })
    compiled = { check: ajv.compile(schema), step: schema.$defs.step, uids: schema.$defs.uids }
  }
  return compiled
}

type Segment = string | number

/** `steps[3].store`, `users["bob@example.test"].settings`. */
export function formatPath(segments: readonly Segment[]): string {
  let out = ''
  for (const s of segments) {
    if (typeof s === 'number') out += `[${s}]`
    else if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(s)) out += out === '' ? s : `.${s}`
    else out += `[${JSON.stringify(s)}]`
  }
  return out
}

/** A JSON pointer (ajv's instancePath) → segments, numbers where the data has arrays. */
function pointerSegments(pointer: string, data: unknown): Segment[] {
  if (pointer === '') return []
  const out: Segment[] = []
  let cur: unknown = data
  for (const raw of pointer.slice(1).split('/')) {
    const key = raw.replaceAll('~1', '/').replaceAll('~0', '~')
    if (Array.isArray(cur)) {
      out.push(Number(key))
      cur = cur[Number(key)]
    } else {
      out.push(key)
      cur = typeof cur === 'object' && cur !== null ? (cur as Record<string, unknown>)[key] : undefined
    }
  }
  return out
}

const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true/false',
  array: 'a list',
  object: 'a mapping',
  null: 'null',
}

function got(v: unknown): string {
  if (v === undefined) return 'nothing'
  const s = JSON.stringify(v) ?? String(v)
  return s.length > 60 ? `${s.slice(0, 59)}…` : s
}

function words(list: readonly string[], last = 'or'): string {
  return list.length <= 1 ? (list[0] ?? '') : `${list.slice(0, -1).join(', ')} ${last} ${list[list.length - 1]}`
}

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!
    d[0] = i
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j]!
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
      prev = tmp
    }
  }
  return d[b.length]!
}

function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined
  let bestD = Infinity
  for (const c of candidates) {
    const dist = distance(word.toLowerCase(), c.toLowerCase())
    if (dist < bestD) [best, bestD] = [c, dist]
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(best.length / 3)) ? best : undefined
}

/** `oneOf`/`anyOf` whose branches only require one key each: those keys. */
function requiredAlternatives(schema: unknown): string[] | undefined {
  if (!Array.isArray(schema)) return undefined
  const keys: string[] = []
  for (const b of schema) {
    const r = (b as { required?: unknown }).required
    if (Object.keys(b as object).length !== 1 || !Array.isArray(r) || r.length !== 1) return undefined
    keys.push(String(r[0]))
  }
  return keys
}

/** ajv's errors → one readable problem each (the branch errors of a oneOf folded into it). */
function schemaProblems(c: Compiled, errors: readonly ErrorObject[], data: unknown, lineOf: (segs: Segment[]) => number | undefined): ScenarioProblem[] {
  const folded = errors.filter((e) => (e.keyword === 'oneOf' || e.keyword === 'anyOf') && requiredAlternatives(e.schema) !== undefined)
  const isBranch = (e: ErrorObject): boolean => folded.some((f) => f !== e && e.instancePath === f.instancePath && e.schemaPath.startsWith(`${f.schemaPath}/`))
  const unknownKeyAt = new Set(errors.filter((e) => e.keyword === 'additionalProperties').map((e) => e.instancePath))
  const out: ScenarioProblem[] = []
  const seen = new Set<string>()
  for (const e of errors) {
    if (isBranch(e)) continue
    const segs = pointerSegments(e.instancePath, data)
    const isStep = e.parentSchema === c.step
    let message: string
    let at = segs
    switch (e.keyword) {
      case 'required':
        message = `missing "${(e.params as { missingProperty: string }).missingProperty}"`
        break
      case 'additionalProperties': {
        const key = (e.params as { additionalProperty: string }).additionalProperty
        const allowed = Object.keys(((e.parentSchema as { properties?: object } | undefined)?.properties ?? {}) as object).filter((k) => k !== '$schema')
        const guess = closest(key, allowed)
        at = [...segs, key]
        message = guess !== undefined ? `unknown key "${key}" (did you mean "${guess}"?)` : isStep ? `unknown key "${key}": a step has one action (${ACTION_NAMES.join(', ')}) and optionally name, fails, expect` : `unknown key "${key}" (expected ${words(allowed.map((k) => `"${k}"`))})`
        break
      }
      case 'oneOf':
      case 'anyOf': {
        const keys = requiredAlternatives(e.schema)
        if (keys === undefined) {
          message = e.message ?? 'is not valid'
          break
        }
        const present = keys.filter((k) => typeof e.data === 'object' && e.data !== null && k in e.data)
        if (present.length > 1) message = isStep ? `has ${present.length} actions (${present.join(', ')}): a step has exactly one` : `must have only one of ${keys.join(', ')}, got ${present.join(' and ')}`
        else if (isStep && unknownKeyAt.has(e.instancePath)) continue // the unknown key says it
        else message = isStep ? `has no action: give one of ${keys.join(', ')}` : `must have one of ${keys.join(', ')}`
        break
      }
      case 'type': {
        const t = (e.params as { type: string | string[] }).type
        const list = (Array.isArray(t) ? t : String(t).split(',')).map((x) => TYPE_WORDS[x] ?? x)
        message = `must be ${words(list)}, got ${got(e.data)}`
        break
      }
      case 'enum': {
        const allowed = [...new Set(((e.params as { allowedValues: unknown[] }).allowedValues ?? []).map((v) => JSON.stringify(String(v))))]
        message = `must be one of ${allowed.join(', ')}, got ${got(e.data)}`
        break
      }
      case 'pattern':
        message = e.parentSchema === c.uids ? `must be UIDs such as "1", "1:3,5", "2:*" or "*", got ${got(e.data)}` : `must match /${(e.params as { pattern: string }).pattern}/, got ${got(e.data)}`
        break
      case 'minLength':
      case 'minItems': {
        const limit = (e.params as { limit: number }).limit
        message = limit <= 1 ? 'must not be empty' : `must have at least ${limit} ${e.keyword === 'minItems' ? 'items' : 'characters'}`
        break
      }
      case 'minimum':
        message = `must be at least ${(e.params as { limit: number }).limit}, got ${got(e.data)}`
        break
      default:
        message = e.message ?? 'is not valid'
    }
    const path = formatPath(at)
    const key = `${path}\u0000${message}`
    if (seen.has(key)) continue
    seen.add(key)
    const line = lineOf(at)
    out.push(line !== undefined ? { path, message, line } : { path, message })
  }
  // in document order (stable: problems on one line keep ajv's order)
  return out.sort((a, b) => (a.line ?? 0) - (b.line ?? 0))
}

// ---- loading ----------------------------------------------------------------------

type RawMessage = string | { from?: string; to?: string | string[]; subject?: string; date?: string; message_id?: string; body?: string; html?: string; headers?: Record<string, string> }
type RawStep = { name?: string; fails?: boolean; expect?: RawExpect } & Record<string, unknown>
interface RawExpect {
  requests?: Array<Record<string, unknown>>
  calls?: Array<Record<string, unknown>>
  logs?: Array<{ level?: string; contains?: string; matches?: string; user?: string }>
  no_errors?: boolean
}
interface RawScenario {
  name?: string
  script?: string
  dovecot?: string | number
  settings?: Record<string, string | number | boolean>
  users?: Record<string, { settings?: Record<string, string | number | boolean> }>
  steps: RawStep[]
  expect?: RawExpect
}

/** Reads the text: a YAML document (with positions, for line numbers) or JSON. */
function parseText(file: string, text: string): { data: unknown; lineOf: (segs: Segment[]) => number | undefined } {
  if (extname(file).toLowerCase() === '.json') {
    try {
      return { data: JSON.parse(text) as unknown, lineOf: () => undefined }
    } catch (err) {
      throw new ScenarioError(file, [{ path: '', message: `not valid JSON: ${(err as Error).message}` }], { cause: err })
    }
  }
  const lines = new LineCounter()
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true })
  if (doc.errors.length > 0) {
    throw new ScenarioError(
      file,
      doc.errors.map((e) => ({ path: '', message: `not valid YAML: ${e.message.split('\n')[0]}`, ...(e.linePos?.[0] ? { line: e.linePos[0].line } : {}) })),
      { cause: doc.errors[0] },
    )
  }
  return { data: doc.toJS({ maxAliasCount: 1000 }) as unknown, lineOf: (segs) => yamlLine(doc, lines, segs) }
}

function yamlLine(doc: Document, lines: LineCounter, segs: Segment[]): number | undefined {
  for (let n = segs.length; n >= 0; n--) {
    const node = segs.length === 0 || n === 0 ? doc.contents : doc.getIn(segs.slice(0, n), true)
    const range = (node as { range?: [number, number, number] } | null | undefined)?.range
    if (range !== undefined) return lines.linePos(range[0]).line
  }
  return undefined
}

const settingText = (v: string | number | boolean): string => (typeof v === 'boolean' ? (v ? 'yes' : 'no') : String(v))

function settingsOf(raw: Record<string, string | number | boolean> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(raw ?? {}).map(([k, v]) => [k, settingText(v)]))
}

/**
 * Reads a scenario file (YAML, or JSON when it ends in .json), validates it
 * against schema/scenario.schema.json and resolves it: the script and .eml
 * paths relative to the file, .eml files read as bytes, settings as text.
 * Throws ScenarioError naming the file, the path and the line of each problem.
 */
export function loadScenario(path: string): Scenario {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new ScenarioError(path, [{ path: '', message: `cannot read: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (err as Error).message}` }], { cause: err })
  }
  const { data, lineOf } = parseText(path, text)
  if (data === null || data === undefined) throw new ScenarioError(path, [{ path: '', message: 'empty: a scenario needs at least "steps"' }])
  const c = validator()
  if (!c.check(data)) throw new ScenarioError(path, schemaProblems(c, c.check.errors ?? [], data, lineOf))
  return resolveScenario(path, data as RawScenario, lineOf)
}

function resolveScenario(file: string, raw: RawScenario, lineOf: (segs: Segment[]) => number | undefined): Scenario {
  const dir = dirname(resolve(file))
  const problems: ScenarioProblem[] = []
  const problem = (segs: Segment[], message: string): void => {
    const line = lineOf(segs)
    problems.push(line !== undefined ? { path: formatPath(segs), message, line } : { path: formatPath(segs), message })
  }

  const message = (m: RawMessage, segs: Segment[]): MessageInput => {
    if (typeof m === 'string') {
      if (!/\.eml$/i.test(m)) return m
      const p = resolve(dir, m)
      try {
        return readFileSync(p)
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        problem(segs, `cannot read ${m} (${p}): ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`)
        return ''
      }
    }
    const out: { -readonly [K in keyof SimpleMessage]: SimpleMessage[K] } = {}
    if (m.from !== undefined) out.from = m.from
    if (m.to !== undefined) out.to = m.to
    if (m.subject !== undefined) out.subject = m.subject
    if (m.date !== undefined) out.date = m.date
    if (m.message_id !== undefined) out.messageId = m.message_id
    if (m.body !== undefined) out.body = m.body
    if (m.html !== undefined) out.html = m.html
    if (m.headers !== undefined) out.headers = m.headers
    return out
  }

  const expectations = (e: RawExpect | undefined, segs: Segment[]): Expectations | undefined => {
    if (e === undefined) return undefined
    e.logs?.forEach((l, i) => {
      if (l.matches === undefined) return
      try {
        new RegExp(l.matches)
      } catch (err) {
        problem([...segs, 'logs', i, 'matches'], `not a valid regular expression: ${(err as Error).message}`)
      }
    })
    return e as Expectations
  }

  const steps = raw.steps.map((s, index): ScenarioStep => {
    const kind = ACTION_NAMES.find((k) => k in s)! // the schema requires exactly one
    const a = s[kind] as Record<string, unknown>
    const at: Segment[] = ['steps', index, kind]
    const actor: Actor = { user: a.user as string, ...(a.session !== undefined ? { session: a.session as string } : {}), ...(a.service !== undefined ? { service: a.service as string } : {}) }
    const uids = a.uids !== undefined ? { uids: a.uids as UidSet } : {}
    let action: StepAction
    switch (kind) {
      case 'deliver':
        action = {
          kind,
          args: {
            to: a.to as string | string[],
            message: message(a.message as RawMessage, [...at, 'message']),
            ...(a.mailbox !== undefined ? { mailbox: a.mailbox as string } : {}),
            ...(a.service !== undefined ? { service: a.service as 'lmtp' | 'lda' } : {}),
            ...(a.flags !== undefined ? { flags: a.flags as string[] } : {}),
          },
        }
        break
      case 'login':
      case 'logout':
        action = { kind, args: actor }
        break
      case 'select':
      case 'create':
      case 'delete':
      case 'subscribe':
      case 'unsubscribe':
        action = { kind, args: { ...actor, mailbox: a.mailbox as string } }
        break
      case 'append': {
        const items: AppendItem[] =
          a.items !== undefined
            ? (a.items as Array<{ message: RawMessage; flags?: string[] }>).map((it, i) => ({
                message: message(it.message, [...at, 'items', i, 'message']),
                ...(it.flags !== undefined ? { flags: it.flags } : {}),
              }))
            : [{ message: message(a.message as RawMessage, [...at, 'message']), ...(a.flags !== undefined ? { flags: a.flags as string[] } : {}) }]
        action = { kind, args: { ...actor, mailbox: a.mailbox as string, items } }
        break
      }
      case 'store': {
        const [op, flags] = a.add !== undefined ? (['+', a.add] as const) : a.remove !== undefined ? (['-', a.remove] as const) : (['=', a.replace] as const)
        action = { kind, args: { ...actor, mailbox: a.mailbox as string, ...uids, op, flags: flags as string[] } }
        break
      }
      case 'expunge':
        action = { kind, args: { ...actor, mailbox: a.mailbox as string, ...uids } }
        break
      case 'copy':
      case 'move':
        action = { kind, args: { ...actor, mailbox: a.mailbox as string, ...uids, to: a.to as string } }
        break
      case 'rename':
        action = { kind, args: { ...actor, mailbox: a.mailbox as string, to: a.to as string } }
        break
    }
    const expect = expectations(s.expect, ['steps', index, 'expect'])
    return {
      index,
      ...(s.name !== undefined ? { name: s.name } : {}),
      label: s.name !== undefined ? `steps[${index}] ${JSON.stringify(s.name)}` : `steps[${index}] ${kind}`,
      action,
      fails: s.fails === true,
      ...(expect !== undefined ? { expect } : {}),
    }
  })
  const expect = expectations(raw.expect, ['expect'])
  if (problems.length > 0) throw new ScenarioError(file, problems)
  return {
    name: raw.name ?? basename(file, extname(file)),
    file,
    ...(raw.script !== undefined ? { script: resolve(dir, raw.script) } : {}),
    ...(raw.dovecot !== undefined ? { dovecot: String(raw.dovecot) as DovecotVersion } : {}),
    settings: settingsOf(raw.settings),
    users: Object.fromEntries(Object.entries(raw.users ?? {}).map(([u, v]) => [u, settingsOf(v.settings)])),
    steps,
    ...(expect !== undefined ? { expect } : {}),
  }
}
