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

const MESSAGE_EVENT = new Set<string>(EVENT_NAMES.filter(isMessageEvent))

/** Checks field `key` of the event at `path` (the field's path is built only for an error). */
function checkField(path: string, key: string, kind: FieldKind, v: unknown): void {
  switch (kind) {
    case 'number':
      if (typeof v !== 'number' || !Number.isFinite(v)) fail(`${path}.${key}`, `expected a number, got ${typeOf(v)}`)
      return
    case 'string':
      if (typeof v !== 'string') fail(`${path}.${key}`, `expected a string, got ${typeOf(v)}`)
      return
    case 'strings':
      if (!Array.isArray(v)) fail(`${path}.${key}`, `expected an array of strings, got ${typeOf(v)}`)
      for (let i = 0; i < v.length; i++) {
        if (typeof v[i] !== 'string') fail(`${path}.${key}[${i}]`, `expected a string, got ${typeOf(v[i])}`)
      }
  }
}

/**
 * Checks an event object and returns it, validated in place (a JSON null
 * field is removed: nil in Lua). In place because building a copy cost more
 * than JSON.parse itself in the replay benchmark.
 */
export function parseEvent(v: unknown, path: string): PushEvent {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, `expected an event object, got ${typeOf(v)}`)
  const o = v as Record<string, unknown>
  const name = o.name
  if (typeof name !== 'string') fail(`${path}.name`, name === undefined ? 'missing event name' : `expected a string, got ${typeOf(name)}`)
  if (!EVENT_NAME_SET.has(name)) fail(`${path}.name`, `unknown event "${name}" (known: ${EVENT_NAMES.join(', ')})`)
  if (typeof o.mailbox !== 'string') fail(`${path}.mailbox`, o.mailbox === undefined ? 'missing mailbox' : `expected a string, got ${typeOf(o.mailbox)}`)
  const own = EVENT_OWN_FIELDS[name as EventName]
  const message = MESSAGE_EVENT.has(name)
  for (const key in o) {
    if (key === 'name' || key === 'mailbox') continue
    const kind = own[key] ?? (message ? MESSAGE_FIELDS[key] : undefined)
    if (kind === undefined) fail(`${path}.${key}`, `${name} has no field "${key}" in Dovecot's event table`)
    const value = o[key]
    if (value === null) delete o[key]
    else checkField(path, key, kind, value)
  }
  return o as unknown as PushEvent
}

/** Checks `committed` and `events` of a transaction body in place (defaults filled in). */
function parseBody(o: Record<string, unknown>, prefix: string): void {
  if (o.committed === undefined) o.committed = true
  else if (typeof o.committed !== 'boolean') fail(`${prefix}committed`, `expected true or false, got ${typeOf(o.committed)}`)
  if (o.events === undefined) o.events = []
  const events = o.events
  if (!Array.isArray(events)) fail(`${prefix}events`, `expected an array, got ${typeOf(events)}`)
  for (let i = 0; i < events.length; i++) parseEvent(events[i], `${prefix}events[${i}]`)
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
  for (const key in o) if (!known.has(key)) fail(key, `unknown ${group ? 'transaction group' : 'transaction'} field "${key}" (known: ${[...known].join(', ')})`)
  if (o.user === undefined) o.user = defaults.user
  if (typeof o.user !== 'string' || o.user === '') fail('user', `expected a non-empty string, got ${typeOf(o.user)}`)
  if (o.service !== undefined && typeof o.service !== 'string') fail('service', `expected a string, got ${typeOf(o.service)}`)
  if (o.session !== undefined && typeof o.session !== 'string') fail('session', `expected a string, got ${typeOf(o.session)}`)
  if (!group) {
    parseBody(o, '')
    return o as unknown as Transaction
  }
  const parts = o.transactions
  if (!Array.isArray(parts) || parts.length === 0) fail('transactions', `expected a non-empty array, got ${typeOf(parts)}`)
  const head = {
    user: o.user,
    ...(o.service !== undefined ? { service: o.service as string } : {}),
    ...(o.session !== undefined ? { session: o.session as string } : {}),
  }
  const transactions: Transaction[] = parts.map((p, i) => {
    if (typeof p !== 'object' || p === null || Array.isArray(p)) fail(`transactions[${i}]`, `expected an object, got ${typeOf(p)}`)
    for (const key in p) if (!PART_KEYS.has(key)) fail(`transactions[${i}].${key}`, `unknown field (known: committed, events)`)
    const body = p as Record<string, unknown>
    parseBody(body, `transactions[${i}].`)
    return { ...head, committed: body.committed as boolean, events: body.events as PushEvent[] }
  })
  return { ...head, transactions }
}
