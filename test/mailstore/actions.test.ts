// The firing rules of the mail actions (spec §2.1, §2.4, §2.6), checked on
// the transactions the simulator hands the Host. What the real Dovecot did
// for the same actions is checked in actions.oracle.test.ts.

import { describe, expect, it } from 'vitest'
import type { PushEvent, Transaction, TransactionUnit } from '../../src/events/types.js'
import { type ActionTarget, MailSimulator } from '../../src/mailstore/actions.js'
import type { MessageFields } from '../../src/mailstore/message.js'
import { MAIL_DELETED, MAIL_FLAGGED, MAIL_SEEN, MailStore } from '../../src/mailstore/store.js'

const ALICE = 'alice@example.test'
const BOB = 'bob@example.test'

const FIELDS: MessageFields = {
  from: 'Bob <bob@example.test>',
  from_address: 'bob@example.test',
  from_display_name: 'Bob',
  to: ALICE,
  to_address: ALICE,
  to_display_name: '',
  subject: 'Hi',
  date: 1700000000,
  tz: 60,
  snippet: 'Hello',
  message_id: '<1@example.test>',
}

const EML = 'From: Bob <bob@example.test>\r\nTo: alice@example.test\r\nSubject: Hi\r\nDate: Tue, 14 Nov 2023 23:13:20 +0100\r\nMessage-ID: <1@example.test>\r\n\r\nHello\r\n'

/** A target that records what the simulator hands the Host. */
function recorder(now = 1700000000): { target: ActionTarget; units: TransactionUnit[]; log: string[]; store: MailStore } {
  const store = new MailStore({ now: () => now })
  const units: TransactionUnit[] = []
  const log: string[] = []
  const target: ActionTarget = {
    store,
    submit: (u) => {
      units.push(u)
      const txns = 'transactions' in u ? u.transactions : [u]
      log.push(`txn ${u.user} ${u.session} ${txns.map((t) => (t.committed ? t.events.map((e) => e.name).join('+') || '(none)' : 'rollback')).join(' | ')}`)
    },
    open: (user, session, service) => void log.push(`open ${user} ${session} ${service}`),
    endSession: (user, session) => void log.push(`end ${user} ${session}`),
  }
  return { target, units, log, store }
}

function ids(): () => string {
  let n = 0
  return () => `s${++n}`
}

/** A simulator over a store where alice's INBOX holds `n` messages. */
function withInbox(n: number, flags: number[] = []): ReturnType<typeof recorder> & { sim: MailSimulator } {
  const r = recorder()
  const box = r.store.user(ALICE).create('INBOX')
  for (let i = 0; i < n; i++) box.save(EML, FIELDS, flags[i] ?? 0, [], 1700000000)
  return { ...r, sim: new MailSimulator(r.target, { newSessionId: ids() }) }
}

const events = (u: TransactionUnit | undefined): PushEvent[] => (u === undefined ? [] : (u as Transaction).events)
const strip = (e: PushEvent): Record<string, unknown> => {
  const { uid_validity: _v, ...rest } = e as Record<string, unknown>
  return rest
}

describe('store: FlagsSet / FlagsClear / MessageRead / MessageTrash (spec §2.4)', () => {
  it('+FLAGS (\\Seen) on a recent message: FlagsClear (flags_old with \\Recent), FlagsSet, MessageRead', async () => {
    const { sim, units } = withInbox(1)
    await sim.store({ user: ALICE, mailbox: 'INBOX', uids: 1, op: '+', flags: ['\\Seen'] })
    expect(events(units[0]).map(strip)).toEqual([
      { name: 'FlagsClear', mailbox: 'INBOX', uid: 1, flags: [], flags_old: ['\\Recent'], keywords: [], keywords_old: [] },
      { name: 'FlagsSet', mailbox: 'INBOX', uid: 1, flags: ['\\Seen'], keywords: [] },
      { name: 'MessageRead', mailbox: 'INBOX', uid: 1 },
    ])
  })

  it('+FLAGS (\\Flagged $Label1): FlagsClear, FlagsSet with the flag and the keyword, nothing else', async () => {
    const { sim, units } = withInbox(1)
    await sim.store({ user: ALICE, mailbox: 'INBOX', uids: 1, op: '+', flags: ['\\Flagged', '$Label1'] })
    expect(events(units[0]).map(strip)).toEqual([
      { name: 'FlagsClear', mailbox: 'INBOX', uid: 1, flags: [], flags_old: ['\\Recent'], keywords: [], keywords_old: [] },
      { name: 'FlagsSet', mailbox: 'INBOX', uid: 1, flags: ['\\Flagged'], keywords: ['$Label1'] },
    ])
  })

  it('-FLAGS (\\Flagged): only FlagsClear, flags_old the whole set before', async () => {
    const { sim, units } = withInbox(1, [MAIL_FLAGGED])
    await sim.store({ user: ALICE, mailbox: 'INBOX', uids: 1, op: '-', flags: ['\\Flagged'] })
    expect(events(units[0]).map(strip)).toEqual([{ name: 'FlagsClear', mailbox: 'INBOX', uid: 1, flags: ['\\Flagged'], flags_old: ['\\Flagged', '\\Recent'], keywords: [], keywords_old: [] }])
  })

  it('+FLAGS (\\Deleted): FlagsClear, FlagsSet, MessageTrash', async () => {
    const { sim, units } = withInbox(1)
    await sim.store({ user: ALICE, mailbox: 'INBOX', uids: 1, op: '+', flags: ['\\Deleted'] })
    expect(events(units[0]).map((e) => e.name)).toEqual(['FlagsClear', 'FlagsSet', 'MessageTrash'])
  })

  it('a STORE that changes nothing makes no transaction', async () => {
    const { sim, units } = withInbox(1, [MAIL_SEEN])
    const r = await sim.store({ user: ALICE, mailbox: 'INBOX', uids: 1, op: '+', flags: ['\\Seen'] })
    expect(units).toEqual([])
    expect(r.uids).toEqual([])
  })

  it('removing only a keyword: FlagsClear with empty flags/flags_old, and FlagsSet with empty arrays', async () => {
    const { sim, units } = withInbox(1)
    await sim.store({ user: ALICE, mailbox: 'INBOX', uids: 1, op: '+', flags: ['$a'] })
    await sim.store({ user: ALICE, mailbox: 'INBOX', uids: 1, op: '-', flags: ['$a'] })
    expect(events(units[1]).map(strip)).toEqual([
      { name: 'FlagsClear', mailbox: 'INBOX', uid: 1, flags: [], flags_old: [], keywords: ['$a'], keywords_old: ['$a'] },
      { name: 'FlagsSet', mailbox: 'INBOX', uid: 1, flags: [], keywords: [] },
    ])
  })

  it('FLAGS replace: the flag hook first (with MessageRead), then the keyword hook merges into the same events', async () => {
    const { sim, units } = withInbox(1, [MAIL_FLAGGED])
    await sim.store({ user: ALICE, mailbox: 'INBOX', uids: 1, op: '+', flags: ['$a'] })
    await sim.store({ user: ALICE, mailbox: 'INBOX', uids: 1, op: '=', flags: ['\\Seen', '$b'] })
    expect(events(units[1]).map(strip)).toEqual([
      { name: 'FlagsClear', mailbox: 'INBOX', uid: 1, flags: ['\\Flagged'], flags_old: ['\\Flagged', '\\Recent'], keywords: ['$a'], keywords_old: ['$a'] },
      { name: 'FlagsSet', mailbox: 'INBOX', uid: 1, flags: ['\\Seen'], keywords: ['$b'] },
      { name: 'MessageRead', mailbox: 'INBOX', uid: 1 },
    ])
  })

  it('several messages: one transaction, ascending UID, all events of a message before the next', async () => {
    const { sim, units } = withInbox(3, [0, MAIL_SEEN, 0])
    await sim.store({ user: ALICE, mailbox: 'INBOX', op: '+', flags: ['\\Seen'] })
    expect(units).toHaveLength(1)
    expect(events(units[0]).map((e) => `${e.uid}:${e.name}`)).toEqual(['1:FlagsClear', '1:FlagsSet', '1:MessageRead', '3:FlagsClear', '3:FlagsSet', '3:MessageRead'])
  })

  it('an invalid system flag is refused before anything changes', async () => {
    const { sim, units, store } = withInbox(1)
    await expect(sim.store({ user: ALICE, mailbox: 'INBOX', uids: 1, op: '+', flags: ['\\Bogus'] })).rejects.toThrow('BAD Invalid system flag \\Bogus')
    expect(units).toEqual([])
    expect(store.user(ALICE).get('INBOX')!.messages[0]!.flags).toBe(0)
  })
})

describe('\\Recent (flags_old)', () => {
  it('the SELECTing session claims \\Recent; a later session sees it no more, but sees newer unclaimed messages as recent', async () => {
    const { sim, units, store } = withInbox(1)
    await sim.select({ user: ALICE, mailbox: 'INBOX' })
    store.user(ALICE).get('INBOX')!.save(EML, FIELDS, 0, [], 1700000000) // delivered after the SELECT
    await sim.store({ user: ALICE, service: 'doveadm', mailbox: 'INBOX', op: '+', flags: ['\\Answered'] })
    const clears = events(units[0]).filter((e) => e.name === 'FlagsClear')
    expect(clears.map((e) => [e.uid, e.flags_old])).toEqual([
      [1, []],
      [2, ['\\Recent']],
    ])
  })
})

describe('expunge, copy, move, delete (spec §2.6)', () => {
  it('EXPUNGE takes only \\Deleted messages; none → no transaction', async () => {
    const { sim, units, store } = withInbox(3, [0, MAIL_DELETED, MAIL_DELETED])
    await sim.expunge({ user: ALICE, mailbox: 'INBOX' })
    expect(events(units[0]).map(strip)).toEqual([
      { name: 'MessageExpunge', mailbox: 'INBOX', uid: 2 },
      { name: 'MessageExpunge', mailbox: 'INBOX', uid: 3 },
    ])
    await sim.expunge({ user: ALICE, mailbox: 'INBOX' })
    expect(units).toHaveLength(1)
    expect(store.user(ALICE).get('INBOX')!.messages.map((m) => m.uid)).toEqual([1])
  })

  it('COPY: MessageAppend in the destination with the flags (no \\Recent) and keywords, new UID and UIDVALIDITY', async () => {
    const { sim, units, store } = withInbox(1, [MAIL_SEEN])
    await sim.store({ user: ALICE, mailbox: 'INBOX', uids: 1, op: '+', flags: ['$k'] })
    store.user(ALICE).create('Archive').save(EML, FIELDS, 0, [], 1700000000)
    await sim.copy({ user: ALICE, mailbox: 'INBOX', uids: 1, to: 'Archive' })
    const [ev] = events(units[1])
    expect(ev).toMatchObject({ name: 'MessageAppend', mailbox: 'Archive', uid: 2, uid_validity: store.user(ALICE).get('Archive')!.uidValidity, flags: ['\\Seen'], keywords: ['$k'], subject: 'Hi' })
    expect(store.user(ALICE).get('INBOX')!.messages).toHaveLength(1)
  })

  it('MOVE: one overlapping group, destination (MessageAppend) first, then the source (MessageExpunge)', async () => {
    const { sim, units, store } = withInbox(2)
    store.user(ALICE).create('Archive')
    await sim.move({ user: ALICE, mailbox: 'INBOX', uids: '2', to: 'Archive' })
    expect(units).toHaveLength(1)
    const group = units[0] as { transactions: Transaction[] }
    expect(group.transactions.map((t) => t.events.map((e) => `${e.name} ${e.mailbox} ${e.uid}`))).toEqual([['MessageAppend Archive 1'], ['MessageExpunge INBOX 2']])
    expect(store.user(ALICE).get('INBOX')!.messages.map((m) => m.uid)).toEqual([1])
  })

  it('DELETE of a non-empty mailbox: its messages expunged in their own transaction, then MailboxDelete', async () => {
    const { sim, log, store } = withInbox(0)
    const box = store.user(ALICE).create('Projects')
    box.save(EML, FIELDS, 0, [], 1)
    box.save(EML, FIELDS, 0, [], 1)
    await sim.delete({ user: ALICE, mailbox: 'Projects' })
    expect(log.filter((l) => l.startsWith('txn'))).toEqual(['txn alice@example.test s1 MessageExpunge+MessageExpunge', 'txn alice@example.test s1 MailboxDelete'])
    expect(store.user(ALICE).exists('Projects')).toBe(false)
  })

  it('DELETE of an empty mailbox: MailboxDelete only; of a missing one: refused', async () => {
    const { sim, log, store } = withInbox(0)
    store.user(ALICE).create('Empty')
    await sim.delete({ user: ALICE, mailbox: 'Empty' })
    expect(log.filter((l) => l.startsWith('txn'))).toEqual(['txn alice@example.test s1 MailboxDelete'])
    await expect(sim.delete({ user: ALICE, mailbox: 'Nope' })).rejects.toThrow("Mailbox doesn't exist: Nope")
  })
})

describe('mailbox events', () => {
  it('create, rename (mailbox_old), subscribe once, unsubscribe once: each its own transaction', async () => {
    const { sim, units } = withInbox(0)
    await sim.create({ user: ALICE, mailbox: 'Work' })
    await sim.rename({ user: ALICE, mailbox: 'Work', to: 'Projects' })
    await sim.subscribe({ user: ALICE, mailbox: 'Projects' })
    await sim.subscribe({ user: ALICE, mailbox: 'Projects' })
    await sim.unsubscribe({ user: ALICE, mailbox: 'Projects' })
    await sim.unsubscribe({ user: ALICE, mailbox: 'Projects' })
    expect(units.map((u) => events(u))).toEqual([
      [{ name: 'MailboxCreate', mailbox: 'Work' }],
      [{ name: 'MailboxRename', mailbox: 'Projects', mailbox_old: 'Work' }],
      [{ name: 'MailboxSubscribe', mailbox: 'Projects' }],
      [{ name: 'MailboxUnsubscribe', mailbox: 'Projects' }],
    ])
  })

  it('IMAP SUBSCRIBE of a missing mailbox is refused (cmd-subscribe.c); doveadm subscribes anyway', async () => {
    const { sim, units } = withInbox(0)
    await expect(sim.subscribe({ user: ALICE, mailbox: 'NotThere' })).rejects.toThrow("NO Mailbox doesn't exist: NotThere")
    expect(units).toEqual([])
    await sim.subscribe({ user: ALICE, service: 'doveadm', mailbox: 'NotThere' })
    expect(units.map((u) => events(u))).toEqual([[{ name: 'MailboxSubscribe', mailbox: 'NotThere' }]])
  })

  it('creating a folder before any delivery makes INBOX exist silently (Maildir root): the first delivery then fires no MailboxCreate', async () => {
    const r = recorder()
    const sim = new MailSimulator(r.target, { newSessionId: ids() })
    await sim.create({ user: ALICE, service: 'doveadm', mailbox: 'Lists' })
    await sim.deliver({ to: ALICE, message: EML })
    expect(r.log.filter((l) => l.startsWith('txn'))).toEqual(['txn alice@example.test s1 MailboxCreate', 'txn alice@example.test s3 MessageNew'])
    expect(events(r.units[0])).toEqual([{ name: 'MailboxCreate', mailbox: 'Lists' }])
  })

  it('INBOX can be neither renamed nor deleted, with Dovecot\'s texts (mailbox-list-maildir.c, cmd-delete.c)', async () => {
    const { sim } = withInbox(0)
    await expect(sim.rename({ user: ALICE, mailbox: 'INBOX', to: 'Old' })).rejects.toThrow(/^Renaming INBOX isn't supported\.$/)
    await expect(sim.delete({ user: ALICE, mailbox: 'inbox' })).rejects.toThrow("NO INBOX can't be deleted.")
  })

  it('creating an existing mailbox is refused', async () => {
    const { sim } = withInbox(0)
    await expect(sim.create({ user: ALICE, mailbox: 'inbox' })).rejects.toMatchObject({ code: 'DOVEPUSH_ERR_MAIL_ACTION', message: 'Mailbox already exists' })
  })
})

describe('sessions', () => {
  it('IMAP actions share a session until logout; doveadm gets one per action', async () => {
    const { sim, log } = withInbox(1)
    await sim.login({ user: ALICE })
    await sim.create({ user: ALICE, mailbox: 'A' })
    await sim.create({ user: ALICE, service: 'doveadm', mailbox: 'B' })
    await sim.logout({ user: ALICE })
    expect(log).toEqual([
      'open alice@example.test s1 imap',
      'txn alice@example.test s1 MailboxCreate',
      'open alice@example.test s2 doveadm',
      'txn alice@example.test s2 MailboxCreate',
      'end alice@example.test s2',
      'end alice@example.test s1',
    ])
  })

  it('named sessions are separate Lua states of the same user', async () => {
    const { sim, log } = withInbox(0)
    await sim.create({ user: ALICE, mailbox: 'A' })
    await sim.create({ user: ALICE, session: 'second', mailbox: 'B' })
    await sim.close()
    expect(log.filter((l) => l.startsWith('open'))).toEqual(['open alice@example.test s1 imap', 'open alice@example.test s2 imap'])
    expect(log.slice(-2)).toEqual(['end alice@example.test s1', 'end alice@example.test s2'])
  })
})

describe('deliver and append', () => {
  it('first delivery: raw mail user, then per recipient INBOX MailboxCreate and MessageNew; sessions end in reverse order', async () => {
    const r = recorder()
    r.store.user(ALICE).create('INBOX')
    const sim = new MailSimulator(r.target, { newSessionId: ids() })
    const res = await sim.deliver({ to: [ALICE, BOB], message: EML })
    expect(res.uids).toEqual([1, 1])
    expect(r.log).toEqual([
      'open raw mail user s1 lmtp',
      'open alice@example.test s2 lmtp',
      'txn alice@example.test s2 MessageNew',
      'open bob@example.test s3 lmtp',
      'txn bob@example.test s3 MailboxCreate',
      'txn bob@example.test s3 MessageNew',
      'end bob@example.test s3',
      'end alice@example.test s2',
      'end raw mail user s1',
    ])
    expect(events(r.units[0])[0]).toMatchObject({ name: 'MessageNew', mailbox: 'INBOX', uid: 1, flags: [], keywords: [], subject: 'Hi', message_id: '<1@example.test>' })
  })

  it('LDA: one process per recipient, each making the user first and then the raw mail user (a real 2.3.19.1 does)', async () => {
    const r = recorder()
    r.store.user(ALICE).create('INBOX')
    r.store.user(BOB).create('INBOX')
    const sim = new MailSimulator(r.target, { newSessionId: ids() })
    await sim.deliver({ to: [ALICE, BOB], message: EML, service: 'lda' })
    expect(r.log).toEqual([
      'open alice@example.test s1 lda',
      'open raw mail user s2 lda',
      'txn alice@example.test s1 MessageNew',
      'end raw mail user s2',
      'end alice@example.test s1',
      'open bob@example.test s3 lda',
      'open raw mail user s4 lda',
      'txn bob@example.test s3 MessageNew',
      'end raw mail user s4',
      'end bob@example.test s3',
    ])
  })

  it('APPEND: MessageAppend with the saved flags and keywords', async () => {
    const { sim, units } = withInbox(0)
    await sim.append({ user: ALICE, mailbox: 'INBOX', items: [{ message: EML, flags: ['\\Draft', '$Appended'] }] })
    expect(events(units[0])[0]).toMatchObject({ name: 'MessageAppend', uid: 1, flags: ['\\Draft'], keywords: ['$Appended'] })
  })

  it('MULTIAPPEND with an invalid flag on the 2nd message: begin/end(false), nothing saved', async () => {
    const { sim, units, store } = withInbox(0)
    const r = await sim.append({ user: ALICE, session: 'second', mailbox: 'INBOX', items: [{ message: EML, flags: ['\\Seen'] }, { message: 'abcde', flags: ['\\Bogus'] }] })
    expect(r).toEqual({ ok: false, error: 'BAD Invalid system flag \\Bogus', uids: [] })
    expect(units).toEqual([{ user: ALICE, service: 'imap', session: 's1', committed: false, events: [] }])
    expect(store.user(ALICE).get('INBOX')!.messages).toEqual([])
  })

  it('an invalid flag on the first message: refused before any save, no calls', async () => {
    const { sim, units } = withInbox(0)
    const r = await sim.append({ user: ALICE, mailbox: 'INBOX', items: [{ message: EML, flags: ['\\Recent'] }] })
    expect(r.ok).toBe(false)
    expect(units).toEqual([])
  })

  it('APPEND to a missing mailbox is refused; to a fresh user\'s INBOX creates it first', async () => {
    const r = recorder()
    const sim = new MailSimulator(r.target, { newSessionId: ids() })
    await expect(sim.append({ user: ALICE, mailbox: 'Nope', items: [{ message: EML }] })).rejects.toThrow("NO Mailbox doesn't exist: Nope")
    await sim.append({ user: ALICE, mailbox: 'INBOX', items: [{ message: EML }] })
    expect(r.log.filter((l) => l.startsWith('txn'))).toEqual(['txn alice@example.test s1 MailboxCreate', 'txn alice@example.test s1 MessageAppend'])
  })
})
