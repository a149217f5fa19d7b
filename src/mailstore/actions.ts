// Mail actions → push transactions, by Dovecot 2.3.19's rules (spec §2).
//
// Each action changes the store the way Dovecot's storage would and hands the
// Host the transactions its push-notification plugin would have made, in the
// same sessions:
// - deliver (LMTP/LDA): one session per recipient per delivery, plus the
//   raw mail user ("raw mail user"), whose session initialises the script and
//   never gets a transaction; sessions end in reverse order (recorded).
//   INBOX is auto-created in its own MailboxCreate transaction first.
// - IMAP actions run in a named session (default "imap") that lives until
//   logout; doveadm actions each get a session of their own.
// - A transaction exists only when a notify hook fired: a STORE that changes
//   nothing, or an EXPUNGE with nothing \Deleted, makes no calls at all
//   (push-notification-plugin.c initialises its txn in the hooks).
// - Per message, events come in the order their data was first created: the
//   flag hook (FlagsClear always, FlagsSet when a flag went on, MessageRead,
//   MessageTrash), then the keyword hook (FlagsClear, FlagsSet always)
//   (push-notification-event-flags{set,clear}.c, -messageread.c, -messagetrash.c).

import { MailActionError } from '../errors.js'
import type { PushEvent, Transaction, TransactionUnit } from '../events/types.js'
import { newSessionId } from '../host/session.js'
import { type MessageFields, type SimpleMessage, composeMessage, parseMessage } from './message.js'
import {
  MAIL_DELETED,
  MAIL_SEEN,
  type MailStore,
  type Mailbox,
  SETTABLE_FLAGS,
  type StoredMessage,
  UserStore,
  flagBit,
  flagNames,
} from './store.js'

/** What the simulator drives: the Host's submit/open/endSession and its store. */
export interface ActionTarget {
  readonly store: MailStore
  submit(unit: TransactionUnit): void | Promise<void>
  open(user: string, session: string, service?: string): void | Promise<void>
  endSession(user: string, session: string): void | Promise<void>
}

/** A message: its RFC 5322 text or bytes, or a few fields to build one from. */
export type MessageInput = string | Uint8Array | SimpleMessage

/** Who acts: the user, and for IMAP-like services the session (a label; default "imap"). */
export interface Actor {
  readonly user: string
  /** Service in user.service: imap (default), pop3, doveadm, … doveadm gets a new session per action. */
  readonly service?: string
  /** A label naming a long-lived session of this user; actions with the same label share its Lua state. */
  readonly session?: string
}

/** IMAP sequence-set style UIDs: `1`, `1:3`, `2,4:*`, `*`, or a list; default all. */
export type UidSet = string | number | readonly number[]

export interface DeliverOptions {
  readonly to: string | readonly string[]
  readonly message: MessageInput
  /** Default INBOX (a Sieve fileinto target otherwise). */
  readonly mailbox?: string
  /** lmtp (default) or lda. */
  readonly service?: 'lmtp' | 'lda'
  /** Flags and keywords set at delivery (Sieve addflag). */
  readonly flags?: readonly string[]
}

export interface AppendItem {
  readonly message: MessageInput
  /** System flags (`\Seen`) and keywords (`$Label`); an invalid system flag rolls the whole APPEND back. */
  readonly flags?: readonly string[]
}

export type StoreOp = '+' | '-' | '='

/** The result of an action: the UIDs it made or touched, and whether Dovecot would have answered OK. */
export interface ActionResult {
  readonly ok: boolean
  /** IMAP-like answer text when not ok. */
  readonly error?: string
  readonly uids: number[]
}

interface LiveSession {
  readonly id: string
  readonly user: string
  readonly service: string
  /** The mailbox IMAP-SELECTed in this session (claims \Recent). */
  selected: string | undefined
}

/** Turns mail actions into the push transactions Dovecot 2.3.19 makes. */
export class MailSimulator {
  readonly #target: ActionTarget
  readonly #sessions = new Map<string, LiveSession>()
  readonly #newId: () => string

  constructor(target: ActionTarget, options: { newSessionId?: () => string } = {}) {
    this.#target = target
    this.#newId = options.newSessionId ?? newSessionId
  }

  /** The simulated mail the actions change. */
  get mailStore(): MailStore {
    return this.#target.store
  }

  // ---- delivery ------------------------------------------------------------

  /**
   * LMTP/LDA delivery of one message to each recipient (one transaction per
   * user, each in its own session). Both make a "raw mail user", a Lua state
   * with no transaction; sessions end in the reverse order of their start
   * (recorded). LMTP: one connection, the raw user first, then each
   * recipient. LDA: one dovecot-lda process per recipient, which makes the
   * recipient's user first, then the raw one (observed with a real 2.3.19.1).
   */
  async deliver(o: DeliverOptions): Promise<ActionResult> {
    const rcpts = typeof o.to === 'string' ? [o.to] : [...o.to]
    if (rcpts.length === 0) throw new MailActionError('deliver: no recipients')
    const service = o.service ?? 'lmtp'
    const message = readMessage(o.message)
    const { flags, keywords } = splitFlags(o.flags ?? [], 'deliver')
    const save = async (user: string, id: string): Promise<number> => {
      const box = await this.#openMailbox(user, id, service, o.mailbox ?? 'INBOX')
      const m = box.save(message.eml, message.fields, flags, keywords, this.mailStore.now())
      await this.#submit(user, id, service, [savedEvent('MessageNew', box, m)])
      return m.uid
    }
    const uids: number[] = []
    if (service === 'lda') {
      for (const user of rcpts) {
        await this.#inSessions(async (start) => {
          const id = await start(user)
          await start(RAW_USER)
          uids.push(await save(user, id))
        }, service)
      }
    } else {
      await this.#inSessions(async (start) => {
        await start(RAW_USER)
        for (const user of rcpts) uids.push(await save(user, await start(user)))
      }, service)
    }
    return { ok: true, uids }
  }

  /** Runs `fn`, which starts sessions with `start(user)`; they end after it, in the reverse order of their start. */
  async #inSessions(fn: (start: (user: string) => Promise<string>) => Promise<void>, service: string): Promise<void> {
    const started: [string, string][] = []
    try {
      await fn(async (user) => {
        const id = this.#newId()
        started.push([user, id])
        await this.#target.open(user, id, service)
        return id
      })
    } finally {
      for (const [user, id] of started.reverse()) await this.#target.endSession(user, id)
    }
  }

  // ---- IMAP-like actions -----------------------------------------------------

  /** IMAP LOGIN: the session starts (main chunk, script_init) with no transaction. */
  async login(a: Actor): Promise<ActionResult> {
    return this.#with(a, async () => ({ ok: true, uids: [] }))
  }

  /** IMAP SELECT: claims \Recent of the mailbox's new messages for this session. No push calls. */
  async select(a: Actor & { mailbox: string }): Promise<ActionResult> {
    return this.#with(a, async (s) => {
      const box = await this.#openMailbox(s.user, s.id, s.service, a.mailbox)
      this.#select(s, box)
      return { ok: true, uids: box.messages.map((m) => m.uid) }
    })
  }

  /**
   * IMAP APPEND (several items = MULTIAPPEND, one transaction). An invalid
   * system flag on an item makes IMAP answer BAD and roll back: items saved
   * before it give begin_txn/end_txn(false) (recorded); none saved, no calls.
   */
  async append(a: Actor & { mailbox: string; items: readonly AppendItem[] }): Promise<ActionResult> {
    return this.#with(a, async (s) => {
      const box = await this.#openMailbox(s.user, s.id, s.service, a.mailbox)
      const saved: { eml: string; fields: MessageFields; flags: number; keywords: string[] }[] = []
      let bad: string | undefined
      for (const item of a.items) {
        const parsed = tryFlags(item.flags ?? [])
        if (typeof parsed === 'string') {
          bad = parsed
          break
        }
        saved.push({ ...readMessage(item.message), ...parsed })
      }
      if (bad !== undefined) {
        if (saved.length > 0) await this.#submit(s.user, s.id, s.service, [], false)
        return { ok: false, error: `BAD Invalid system flag ${bad}`, uids: [] }
      }
      const events: PushEvent[] = []
      const uids: number[] = []
      for (const it of saved) {
        const m = box.save(it.eml, it.fields, it.flags, it.keywords, this.mailStore.now())
        uids.push(m.uid)
        events.push(savedEvent('MessageAppend', box, m))
      }
      if (events.length > 0) await this.#submit(s.user, s.id, s.service, events)
      return { ok: true, uids }
    })
  }

  /** IMAP STORE: `+` adds, `-` removes, `=` replaces the flags and keywords of the messages. */
  async store(a: Actor & { mailbox: string; uids?: UidSet; op: StoreOp; flags: readonly string[] }): Promise<ActionResult> {
    return this.#with(a, async (s) => {
      const box = await this.#selectMailbox(s, a.mailbox)
      const { flags, keywords } = splitFlags(a.flags, 'store')
      const events: PushEvent[] = []
      const uids: number[] = []
      for (const m of pickMessages(box, a.uids)) {
        const before = events.length
        this.#updateFlags(box, m, s.id, a.op, flags, events)
        this.#updateKeywords(box, m, a.op, keywords, events, before)
        if (events.length > before) uids.push(m.uid)
      }
      if (events.length > 0) await this.#submit(s.user, s.id, s.service, events)
      return { ok: true, uids }
    })
  }

  /** IMAP EXPUNGE (the \Deleted messages), or UID EXPUNGE of `uids` that are \Deleted. */
  async expunge(a: Actor & { mailbox: string; uids?: UidSet }): Promise<ActionResult> {
    return this.#with(a, async (s) => {
      const box = await this.#selectMailbox(s, a.mailbox)
      const gone = pickMessages(box, a.uids).filter((m) => (m.flags & MAIL_DELETED) !== 0)
      return this.#expunge(s, box, gone)
    })
  }

  /** IMAP COPY: MessageAppend in the destination's transaction. */
  async copy(a: Actor & { mailbox: string; uids?: UidSet; to: string }): Promise<ActionResult> {
    return this.#with(a, async (s) => {
      const c = await this.#copyFrom(s, a)
      if (c === undefined) return { ok: true, uids: [] }
      await this.#submit(s.user, s.id, s.service, c.events)
      return { ok: true, uids: c.uids }
    })
  }

  /**
   * IMAP MOVE: the destination and the source transaction are open together;
   * both begin, then the destination commits (MessageAppend) and the source
   * (MessageExpunge), as recorded.
   */
  async move(a: Actor & { mailbox: string; uids?: UidSet; to: string }): Promise<ActionResult> {
    return this.#with(a, async (s) => {
      const c = await this.#copyFrom(s, a)
      if (c === undefined) return { ok: true, uids: [] }
      const expunged = c.msgs.map((m) => messageEvent('MessageExpunge', c.src, m))
      for (const m of c.msgs) c.src.expunge(m.uid)
      await this.#target.submit({
        user: s.user,
        service: s.service,
        session: s.id,
        transactions: [
          { user: s.user, committed: true, events: c.events },
          { user: s.user, committed: true, events: expunged },
        ],
      })
      return { ok: true, uids: c.uids }
    })
  }

  async create(a: Actor & { mailbox: string }): Promise<ActionResult> {
    return this.#with(a, async (s) => {
      const box = this.#try(() => this.#user(s.user).create(a.mailbox))
      await this.#submit(s.user, s.id, s.service, [{ name: 'MailboxCreate', mailbox: box.name }])
      return { ok: true, uids: [] }
    })
  }

  async rename(a: Actor & { mailbox: string; to: string }): Promise<ActionResult> {
    return this.#with(a, async (s) => {
      const user = this.#user(s.user)
      const old = this.#try(() => user.require(a.mailbox)).name
      const box = this.#try(() => user.rename(a.mailbox, a.to))
      for (const child of user.names().filter((n) => n.startsWith(old + '/'))) user.rename(child, box.name + child.slice(old.length))
      await this.#submit(s.user, s.id, s.service, [{ name: 'MailboxRename', mailbox: box.name, mailbox_old: old }])
      return { ok: true, uids: [] }
    })
  }

  /** DELETE: a non-empty mailbox first expunges its messages in their own transaction, then MailboxDelete. */
  async delete(a: Actor & { mailbox: string }): Promise<ActionResult> {
    return this.#with(a, async (s) => {
      const user = this.#user(s.user)
      const box = this.#try(() => user.require(a.mailbox))
      if (box.name === 'INBOX') throw new MailActionError('delete INBOX: NO INBOX can\'t be deleted.')
      const uids = box.messages.map((m) => m.uid)
      await this.#expunge(s, box, [...box.messages])
      user.delete(box.name)
      if (s.selected === box.name) s.selected = undefined
      await this.#submit(s.user, s.id, s.service, [{ name: 'MailboxDelete', mailbox: box.name }])
      return { ok: true, uids }
    })
  }

  /** SUBSCRIBE (IMAP: the mailbox must exist, doveadm: need not; already subscribed: nothing, as mailbox_set_subscribed). */
  async subscribe(a: Actor & { mailbox: string }): Promise<ActionResult> {
    return this.#subscription(a, true)
  }

  async unsubscribe(a: Actor & { mailbox: string }): Promise<ActionResult> {
    return this.#subscription(a, false)
  }

  /** Ends the actor's session (script_deinit), as IMAP LOGOUT. */
  async logout(a: Actor): Promise<void> {
    const key = sessionKey(a)
    const s = this.#sessions.get(key)
    if (s === undefined) return
    this.#sessions.delete(key)
    await this.#target.endSession(s.user, s.id)
  }

  /** Logs out every session still open, in the order they were opened. */
  async close(): Promise<void> {
    const all = [...this.#sessions.values()]
    this.#sessions.clear()
    for (const s of all) await this.#target.endSession(s.user, s.id)
  }

  // ---- internals ---------------------------------------------------------------

  #user(name: string): UserStore {
    return this.mailStore.user(name)
  }

  #try<T>(fn: () => T): T {
    try {
      return fn()
    } catch (err) {
      throw new MailActionError((err as Error).message, { cause: err })
    }
  }

  /**
   * Runs an action in the actor's session: a named one lives until logout;
   * a doveadm command without a session label is a session of its own,
   * ended right after (recorded: one Lua state per doveadm command).
   */
  async #with<T>(a: Actor, fn: (s: LiveSession) => Promise<T>): Promise<T> {
    const service = a.service ?? 'imap'
    if (service === 'doveadm' && a.session === undefined) {
      const s: LiveSession = { id: this.#newId(), user: a.user, service, selected: undefined }
      await this.#target.open(s.user, s.id, service)
      try {
        return await fn(s)
      } finally {
        await this.#target.endSession(s.user, s.id)
      }
    }
    const key = sessionKey(a)
    let s = this.#sessions.get(key)
    if (s === undefined) {
      s = { id: this.#newId(), user: a.user, service, selected: undefined }
      this.#sessions.set(key, s)
      await this.#target.open(s.user, s.id, service)
    }
    return fn(s)
  }

  /** Opens a mailbox for the user; INBOX is created on first use, in its own MailboxCreate transaction. */
  async #openMailbox(user: string, session: string, service: string, name: string): Promise<Mailbox> {
    const u = this.#user(user)
    const box = u.get(name)
    if (box !== undefined) return box
    if (UserStore.normalize(name) !== 'INBOX') throw new MailActionError(`NO Mailbox doesn't exist: ${name}`)
    const inbox = u.create('INBOX')
    await this.#submit(user, session, service, [{ name: 'MailboxCreate', mailbox: 'INBOX' }])
    return inbox
  }

  /** The mailbox an IMAP command works on: SELECTed (claiming \Recent) unless it already is; doveadm opens without claiming. */
  async #selectMailbox(s: LiveSession, name: string): Promise<Mailbox> {
    const box = await this.#openMailbox(s.user, s.id, s.service, name)
    if (s.service !== 'doveadm' && s.selected !== box.name) this.#select(s, box)
    return box
  }

  #select(s: LiveSession, box: Mailbox): void {
    s.selected = box.name
    box.claimRecent(s.id)
  }

  #updateFlags(box: Mailbox, m: StoredMessage, session: string, op: StoreOp, flags: number, events: PushEvent[]): void {
    if (op !== '=' && flags === 0) return
    const oldSeen = box.flagsSeenBy(m, session)
    const old = m.flags
    const next = op === '+' ? old | flags : op === '-' ? old & ~flags : flags
    if (next === old) return
    m.flags = next
    m.modseq = ++box.highestModseq
    const set = next & ~old
    const cleared = old & ~next
    pushFlagsClear(events, box, m, { flags: flagNames(cleared), flags_old: flagNames(oldSeen), keywords: [], keywords_old: [] })
    if (set !== 0) pushFlagsSet(events, box, m, flagNames(set), [])
    if ((set & MAIL_SEEN) !== 0) events.push(messageEvent('MessageRead', box, m))
    if ((set & MAIL_DELETED) !== 0) events.push(messageEvent('MessageTrash', box, m))
  }

  #updateKeywords(box: Mailbox, m: StoredMessage, op: StoreOp, keywords: readonly string[], events: PushEvent[], from: number): void {
    if (op !== '=' && keywords.length === 0) return
    const old = m.keywords
    const wanted = op === '+' ? [...old, ...keywords] : op === '-' ? old.filter((k) => !keywords.includes(k)) : [...keywords]
    const next = box.addKeywords(wanted)
    if (next.length === old.length && next.every((k, i) => k === old[i])) return
    m.keywords = next
    m.modseq = ++box.highestModseq
    const added = next.filter((k) => !old.includes(k))
    const removed = old.filter((k) => !next.includes(k))
    // this message's events so far (the flag hook's), merged as Dovecot merges event data
    const mine = events.slice(from)
    const clear = mine.find((e) => e.name === 'FlagsClear') as Record<string, unknown> | undefined
    if (clear === undefined) pushFlagsClear(events, box, m, { flags: [], flags_old: [], keywords: removed, keywords_old: [...old] })
    else {
      clear.keywords = [...(clear.keywords as string[]), ...removed]
      clear.keywords_old = [...(clear.keywords_old as string[]), ...old]
    }
    const set = mine.find((e) => e.name === 'FlagsSet') as Record<string, unknown> | undefined
    if (set === undefined) pushFlagsSet(events, box, m, [], added)
    else set.keywords = [...(set.keywords as string[]), ...added]
  }

  async #expunge(s: LiveSession, box: Mailbox, msgs: readonly StoredMessage[]): Promise<ActionResult> {
    if (msgs.length === 0) return { ok: true, uids: [] }
    const events = msgs.map((m) => messageEvent('MessageExpunge', box, m))
    const uids = msgs.map((m) => m.uid)
    for (const uid of uids) box.expunge(uid)
    await this.#submit(s.user, s.id, s.service, events)
    return { ok: true, uids }
  }

  /** The messages of a COPY/MOVE saved into the destination (undefined when none match): their MessageAppend events. */
  async #copyFrom(s: LiveSession, a: { mailbox: string; uids?: UidSet; to: string }): Promise<{ src: Mailbox; msgs: StoredMessage[]; events: PushEvent[]; uids: number[] } | undefined> {
    const src = await this.#selectMailbox(s, a.mailbox)
    const dest = await this.#openMailbox(s.user, s.id, s.service, a.to)
    const msgs = pickMessages(src, a.uids)
    if (msgs.length === 0) return undefined
    const events: PushEvent[] = []
    const uids: number[] = []
    for (const m of msgs) {
      const copy = dest.save(m.eml, m.fields, m.flags, m.keywords, m.savedAt)
      uids.push(copy.uid)
      events.push(savedEvent('MessageAppend', dest, copy))
    }
    return { src, msgs, events, uids }
  }

  async #subscription(a: Actor & { mailbox: string }, on: boolean): Promise<ActionResult> {
    return this.#with(a, async (s) => {
      const subs = this.#user(s.user).subscriptions
      const name = UserStore.normalize(a.mailbox)
      // IMAP SUBSCRIBE checks the mailbox exists (cmd-subscribe.c); doveadm and UNSUBSCRIBE do not
      if (on && s.service !== 'doveadm' && !this.#user(s.user).exists(name)) throw new MailActionError(`NO Mailbox doesn't exist: ${a.mailbox}`)
      if (subs.has(name) === on) return { ok: true, uids: [] }
      if (on) subs.add(name)
      else subs.delete(name)
      await this.#submit(s.user, s.id, s.service, [{ name: on ? 'MailboxSubscribe' : 'MailboxUnsubscribe', mailbox: name }])
      return { ok: true, uids: [] }
    })
  }

  async #submit(user: string, session: string, service: string, events: PushEvent[], committed = true): Promise<void> {
    const t: Transaction = { user, service, session, committed, events }
    await this.#target.submit(t)
  }
}

// ---- helpers ----------------------------------------------------------------------

/** LMTP's and LDA's user for parsing the incoming message (raw_storage_create_from_set). */
const RAW_USER = 'raw mail user'

function sessionKey(a: Actor): string {
  return `${a.user}\u0000${a.service ?? 'imap'}\u0000${a.session ?? ''}`
}

function readMessage(input: MessageInput): { eml: string; fields: MessageFields } {
  const eml =
    typeof input === 'string' ? input : input instanceof Uint8Array ? Buffer.from(input).toString('latin1') : composeMessage(input)
  return { eml, fields: parseMessage(typeof input === 'string' || !(input instanceof Uint8Array) ? eml : input) }
}

/** Splits IMAP flags into system flag bits and keywords; an invalid system flag is returned as a string. */
function tryFlags(list: readonly string[]): { flags: number; keywords: string[] } | string {
  let flags = 0
  const keywords: string[] = []
  for (const f of list) {
    if (f.startsWith('\\')) {
      const bit = flagBit(f)
      if (bit === undefined || (bit & SETTABLE_FLAGS) === 0) return f
      flags |= bit
    } else if (!/^[^\s(){%*"\\\]]+$/.test(f)) return f
    else if (!keywords.includes(f)) keywords.push(f)
  }
  return { flags, keywords }
}

function splitFlags(list: readonly string[], what: string): { flags: number; keywords: string[] } {
  const r = tryFlags(list)
  if (typeof r === 'string') throw new MailActionError(`${what}: BAD Invalid system flag ${r}`)
  return r
}

/** `1:3,5`, `*`, numbers → the messages of the mailbox with those UIDs, ascending. */
export function pickMessages(box: Mailbox, set: UidSet | undefined): StoredMessage[] {
  if (set === undefined || set === 'all') return [...box.messages]
  const max = box.messages.length > 0 ? box.messages[box.messages.length - 1]!.uid : 0
  const ranges: [number, number][] = []
  if (typeof set === 'number') ranges.push([set, set])
  else if (typeof set !== 'string') for (const n of set) ranges.push([n, n])
  else
    for (const part of set.split(',')) {
      const [a, b = a] = part.split(':').map((x) => (x.trim() === '*' ? max : Number(x.trim())))
      if (!Number.isInteger(a) || !Number.isInteger(b)) throw new MailActionError(`bad UID set "${set}"`)
      ranges.push([Math.min(a!, b!), Math.max(a!, b!)])
    }
  return box.messages.filter((m) => ranges.some(([lo, hi]) => m.uid >= lo && m.uid <= hi))
}

function messageEvent(name: 'MessageRead' | 'MessageTrash' | 'MessageExpunge', box: Mailbox, m: StoredMessage): PushEvent {
  return { name, mailbox: box.name, uid: m.uid, uid_validity: box.uidValidity }
}

function savedEvent(name: 'MessageNew' | 'MessageAppend', box: Mailbox, m: StoredMessage): PushEvent {
  const f = m.fields
  const e: Record<string, unknown> = {
    name,
    mailbox: box.name,
    uid: m.uid,
    uid_validity: box.uidValidity,
    date: f.date,
    tz: f.tz,
    from: f.from,
    to: f.to,
    flags: flagNames(m.flags),
    keywords: [...m.keywords],
    from_address: f.from_address,
    from_display_name: f.from_display_name,
    to_address: f.to_address,
    to_display_name: f.to_display_name,
  }
  if (f.snippet !== undefined) e.snippet = f.snippet
  if (f.message_id !== undefined) e.message_id = f.message_id
  if (f.subject !== undefined) e.subject = f.subject
  return e as unknown as PushEvent
}

function pushFlagsClear(events: PushEvent[], box: Mailbox, m: StoredMessage, f: { flags: string[]; flags_old: string[]; keywords: string[]; keywords_old: string[] }): void {
  events.push({ name: 'FlagsClear', mailbox: box.name, uid: m.uid, uid_validity: box.uidValidity, ...f })
}

function pushFlagsSet(events: PushEvent[], box: Mailbox, m: StoredMessage, flags: string[], keywords: string[]): void {
  events.push({ name: 'FlagsSet', mailbox: box.name, uid: m.uid, uid_validity: box.uidValidity, flags, keywords })
}
