// Transactions and push events: the unit everything in dovepush speaks.
//
// A Transaction is what Dovecot's push-notification framework hands a driver:
// begin, the events of the committed mailbox transaction, end(success)
// (spec §1.4). Event fields are exactly those Dovecot puts into the Lua table
// (spec §2): numbers become Lua floats, string lists become sequences, an
// absent field is nil.

/** The twelve push events, in Dovecot's registration order (spec §2.6). */
export const EVENT_NAMES = [
  'FlagsClear',
  'FlagsSet',
  'MailboxCreate',
  'MailboxDelete',
  'MailboxRename',
  'MailboxSubscribe',
  'MailboxUnsubscribe',
  'MessageAppend',
  'MessageExpunge',
  'MessageNew',
  'MessageRead',
  'MessageTrash',
] as const
export type EventName = (typeof EVENT_NAMES)[number]

/** How a field reaches Lua: a float, a string, or a sequence of strings. */
export type FieldKind = 'number' | 'string' | 'strings'

// Fields in the order Dovecot's Lua driver sets them
// (push-notification-driver-lua.c, push_notification_driver_lua_push_event and
// push_notification_driver_lua_call): `name`, the event's own fields, then
// `mailbox`, and `uid`, `uid_validity` for message events. (What `pairs()`
// yields does not follow it: Lua 5.4 seeds string hashes per state, so the
// order differs from run to run, under Dovecot too.)
const MESSAGE = { uid: 'number', uid_validity: 'number' } as const
const CONTENT = {
  date: 'number',
  tz: 'number',
  from: 'string',
  to: 'string',
  snippet: 'string',
  flags: 'strings',
  keywords: 'strings',
  message_id: 'string',
  from_address: 'string',
  from_display_name: 'string',
  to_address: 'string',
  to_display_name: 'string',
  subject: 'string',
} as const

/** The fields each event table may carry before `mailbox` (besides `name`). */
export const EVENT_OWN_FIELDS: Record<EventName, Readonly<Record<string, FieldKind>>> = {
  FlagsClear: { flags: 'strings', flags_old: 'strings', keywords: 'strings', keywords_old: 'strings' },
  FlagsSet: { flags: 'strings', keywords: 'strings' },
  MailboxCreate: {},
  MailboxDelete: {},
  MailboxRename: { mailbox_old: 'string' },
  MailboxSubscribe: {},
  MailboxUnsubscribe: {},
  MessageAppend: CONTENT,
  MessageExpunge: {},
  MessageNew: CONTENT,
  MessageRead: {},
  MessageTrash: {},
}

/** Message events carry `uid` and `uid_validity` after `mailbox`; mailbox events do not. */
export const MESSAGE_FIELDS: Readonly<Record<string, FieldKind>> = MESSAGE

export function isMessageEvent(name: EventName): boolean {
  return name.startsWith('Message') || name.startsWith('Flags')
}

/** A field value as it will be pushed to Lua. */
export type FieldValue = number | string | readonly string[]

/** One push event: `name`, `mailbox` and the event's own fields (absent = nil). */
export interface PushEvent {
  readonly name: EventName
  readonly mailbox: string
  readonly [field: string]: FieldValue | undefined
}

/** One push-notification transaction of one user. */
export interface Transaction {
  readonly user: string
  /** `user.service`: imap, lmtp, lda, pop3, doveadm, … */
  readonly service?: string
  /** Groups transactions into one Lua state; default: one session per user. */
  readonly session?: string
  /** false = the mailbox transaction rolled back: begin_txn, end_txn(ctx, false), no events. */
  readonly committed: boolean
  readonly events: readonly PushEvent[]
}

/**
 * Mailbox transactions of one session that are open at the same time: every
 * begin_txn comes first, in order, then each commits in order (events,
 * end_txn). Dovecot does this for IMAP MOVE: the destination and the source
 * transaction both begin before the destination commits (recorded).
 */
export interface TransactionGroup {
  readonly user: string
  readonly service?: string
  readonly session?: string
  readonly transactions: readonly Transaction[]
}

/** What the Host runs: one transaction, or a group that overlaps. */
export type TransactionUnit = Transaction | TransactionGroup

/** The transactions of a unit, in order. */
export function transactionsOf(unit: TransactionUnit): readonly Transaction[] {
  return 'transactions' in unit ? unit.transactions : [unit]
}

/** `MessageNew` → `dovecot_lua_notify_event_message_new` (push_notification_driver_lua_to_fn). */
export function eventFunctionName(name: string): string {
  return 'dovecot_lua_notify_event' + name.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase())
}
