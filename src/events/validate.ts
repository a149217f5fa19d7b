// Turns one parsed NDJSON value into a Transaction, or an InputError that
// names the field. Checked once at the boundary; the per-event path trusts it.

import { InputError } from '../errors.js'
import { EVENT_NAMES, EVENT_OWN_FIELDS, type EventName, type FieldKind, isMessageEvent, MESSAGE_FIELDS, type PushEvent, type Transaction, type TransactionUnit } from './types.js'

const EVENT_NAME_SET = new Set<string>(EVENT_NAMES)
const TXN_KEYS = new Set(['user', 'service', 'session', 'committed', 'events'])
const GROUP_KEYS = new Set(['user', 'service', 'session', 'transactions'])
const PART_KEYS = new Set(['committed', 'events'])

export interface TransactionDefaults {
  /** User of bare-event lines and of transactions without `user`. */
  readonly user: string
}

const typeOf = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v)

function fail(field: string, message: string): never {
  throw new InputError(message, { field })
}

function checkField(path: string, kind: FieldKind, v: unknown): PushEvent[string] {
  if (v === null) return undefined // JSON null: the field is nil in Lua
  switch (kind) {
    case 'number':
      if (typeof v !== 'number' || !Number.isFinite(v)) fail(path, `expected a number, got ${typeOf(v)}`)
      return v
    case 'string':
      if (typeof v !== 'string') fail(path, `expected a string, got ${typeOf(v)}`)
      return v
    case 'strings':
      if (!Array.isArray(v)) fail(path, `expected an array of strings, got ${typeOf(v)}`)
      v.forEach((s, i) => {
        if (typeof s !== 'string') fail(`${path}[${i}]`, `expected a string, got ${typeOf(s)}`)
      })
      return v as string[]
  }
}

export function parseEvent(v: unknown, path: string): PushEvent {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, `expected an event object, got ${typeOf(v)}`)
  const o = v as Record<string, unknown>
  if (typeof o.name !== 'string') fail(`${path}.name`, o.name === undefined ? 'missing event name' : `expected a string, got ${typeOf(o.name)}`)
  if (!EVENT_NAME_SET.has(o.name)) fail(`${path}.name`, `unknown event "${o.name}" (known: ${EVENT_NAMES.join(', ')})`)
  const name = o.name as EventName
  if (typeof o.mailbox !== 'string') fail(`${path}.mailbox`, o.mailbox === undefined ? 'missing mailbox' : `expected a string, got ${typeOf(o.mailbox)}`)
  const own = EVENT_OWN_FIELDS[name]
  const out: Record<string, PushEvent[string]> = { name, mailbox: o.mailbox }
  for (const [key, value] of Object.entries(o)) {
    if (key === 'name' || key === 'mailbox') continue
    const kind = own[key] ?? (isMessageEvent(name) ? MESSAGE_FIELDS[key] : undefined)
    if (kind === undefined) fail(`${path}.${key}`, `${name} has no field "${key}" in Dovecot's event table`)
    const checked = checkField(`${path}.${key}`, kind, value)
    if (checked !== undefined) out[key] = checked
  }
  return out as unknown as PushEvent
}

function parseBody(o: Record<string, unknown>, prefix: string): { committed: boolean; events: PushEvent[] } {
  const committed = o.committed ?? true
  if (typeof committed !== 'boolean') fail(`${prefix}committed`, `expected true or false, got ${typeOf(committed)}`)
  const events = o.events ?? []
  if (!Array.isArray(events)) fail(`${prefix}events`, `expected an array, got ${typeOf(events)}`)
  return { committed, events: events.map((e, i) => parseEvent(e, `${prefix}events[${i}]`)) }
}

/**
 * A line: a transaction, a group of overlapping transactions (`transactions`),
 * or a bare event (it has `name`) as a one-event transaction of the default user.
 */
export function parseTransaction(v: unknown, defaults: TransactionDefaults): TransactionUnit {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail('', `expected a transaction or event object, got ${typeOf(v)}`)
  const o = v as Record<string, unknown>
  if ('name' in o && !('events' in o) && !('transactions' in o)) {
    return { user: defaults.user, committed: true, events: [parseEvent(o, 'event')] }
  }
  const group = 'transactions' in o
  const known = group ? GROUP_KEYS : TXN_KEYS
  for (const key of Object.keys(o)) if (!known.has(key)) fail(key, `unknown ${group ? 'transaction group' : 'transaction'} field "${key}" (known: ${[...known].join(', ')})`)
  const user = o.user ?? defaults.user
  if (typeof user !== 'string' || user === '') fail('user', `expected a non-empty string, got ${typeOf(user)}`)
  for (const key of ['service', 'session'] as const) {
    if (o[key] !== undefined && typeof o[key] !== 'string') fail(key, `expected a string, got ${typeOf(o[key])}`)
  }
  const head = {
    user,
    ...(o.service !== undefined ? { service: o.service as string } : {}),
    ...(o.session !== undefined ? { session: o.session as string } : {}),
  }
  if (!group) return { ...head, ...parseBody(o, '') }
  const parts = o.transactions
  if (!Array.isArray(parts) || parts.length === 0) fail('transactions', `expected a non-empty array, got ${typeOf(parts)}`)
  const transactions: Transaction[] = parts.map((p, i) => {
    if (typeof p !== 'object' || p === null || Array.isArray(p)) fail(`transactions[${i}]`, `expected an object, got ${typeOf(p)}`)
    for (const key of Object.keys(p)) if (!PART_KEYS.has(key)) fail(`transactions[${i}].${key}`, `unknown field (known: committed, events)`)
    return { ...head, ...parseBody(p as Record<string, unknown>, `transactions[${i}].`) }
  })
  return { ...head, transactions }
}
