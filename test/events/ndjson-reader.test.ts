// The NDJSON reader and the transaction validation: what a line becomes, and
// the exact error (line and field) for what it cannot be.

import { Readable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { type NdjsonItem, readTransactions } from '../../src/events/ndjson-reader.js'
import { eventFunctionName, EVENT_NAMES } from '../../src/events/types.js'

async function read(text: string | string[]): Promise<NdjsonItem[]> {
  const out: NdjsonItem[] = []
  for await (const item of readTransactions(Readable.from(Array.isArray(text) ? text : [text]), { user: 'dflt@example.test' })) out.push(item)
  return out
}
const errors = (items: NdjsonItem[]) => items.filter((i) => i.error).map((i) => i.error!.message)

describe('readTransactions', () => {
  it('reads transactions with defaults, across chunk boundaries, CRLF and blank lines', async () => {
    const items = await read(['{"user":"a@x","events":[{"name":"MailboxCreate","mai', 'lbox":"INBOX"}]}\r\n\n{"name":"MailboxDelete","mailbox":"Old"}'])
    expect(items.map((i) => [i.line, i.txn])).toEqual([
      [1, { user: 'a@x', committed: true, events: [{ name: 'MailboxCreate', mailbox: 'INBOX' }] }],
      [3, { user: 'dflt@example.test', committed: true, events: [{ name: 'MailboxDelete', mailbox: 'Old' }] }],
    ])
  })

  it('keeps service, session and committed; null fields become absent (nil)', async () => {
    const [item] = await read('{"user":"a@x","service":"lmtp","session":"s1","committed":false,"events":[{"name":"MessageNew","mailbox":"INBOX","uid":3,"subject":null,"flags":["\\\\Seen"]}]}')
    expect(item!.txn).toEqual({ user: 'a@x', service: 'lmtp', session: 's1', committed: false, events: [{ name: 'MessageNew', mailbox: 'INBOX', uid: 3, flags: ['\\Seen'] }] })
  })

  it('reads a group of overlapping transactions', async () => {
    const [item] = await read('{"user":"a@x","transactions":[{"events":[{"name":"MessageAppend","mailbox":"B","uid":1,"uid_validity":2}]},{"committed":true,"events":[{"name":"MessageExpunge","mailbox":"A","uid":9,"uid_validity":1}]}]}')
    expect(item!.txn).toEqual({
      user: 'a@x',
      transactions: [
        { user: 'a@x', committed: true, events: [{ name: 'MessageAppend', mailbox: 'B', uid: 1, uid_validity: 2 }] },
        { user: 'a@x', committed: true, events: [{ name: 'MessageExpunge', mailbox: 'A', uid: 9, uid_validity: 1 }] },
      ],
    })
  })

  it('names the line and the field of each problem, and goes on', async () => {
    const items = await read([
      '{"user":"a@x","events":[{"name":"MessageNew","mailbox":"INBOX","uid":"7"}]}',
      '[1,2]',
      '{"user":"a@x","events":[{"name":"MailboxCreate","mailbox":"X","uid":1}]}',
      '{"user":"a@x","evnts":[]}',
      '{"user":"a@x","events":[{"mailbox":"X"}]}',
      '{"user":"a@x","events":[{"name":"MailboxRename"}]}',
      '{"user":"a@x","committed":"yes","events":[]}',
      '{"user":"a@x","events":[{"name":"MailboxCreate","mailbox":"OK"}]}',
    ].join('\n'))
    expect(errors(items)).toEqual([
      'line 1: events[0].uid: expected a number, got string',
      'line 2: expected a transaction or event object, got array',
      'line 3: events[0].uid: MailboxCreate has no field "uid" in Dovecot\'s event table',
      'line 4: evnts: unknown transaction field "evnts" (known: user, service, session, committed, events)',
      'line 5: events[0].name: missing event name',
      'line 6: events[0].mailbox: missing mailbox',
      'line 7: committed: expected true or false, got string',
    ])
    expect(items.at(-1)!.txn).toEqual({ user: 'a@x', committed: true, events: [{ name: 'MailboxCreate', mailbox: 'OK' }] })
  })
})

describe('eventFunctionName', () => {
  it('maps every event name as push_notification_driver_lua_to_fn does', () => {
    expect(EVENT_NAMES.map(eventFunctionName)).toEqual([
      'dovecot_lua_notify_event_flags_clear',
      'dovecot_lua_notify_event_flags_set',
      'dovecot_lua_notify_event_mailbox_create',
      'dovecot_lua_notify_event_mailbox_delete',
      'dovecot_lua_notify_event_mailbox_rename',
      'dovecot_lua_notify_event_mailbox_subscribe',
      'dovecot_lua_notify_event_mailbox_unsubscribe',
      'dovecot_lua_notify_event_message_append',
      'dovecot_lua_notify_event_message_expunge',
      'dovecot_lua_notify_event_message_new',
      'dovecot_lua_notify_event_message_read',
      'dovecot_lua_notify_event_message_trash',
    ])
  })
})
