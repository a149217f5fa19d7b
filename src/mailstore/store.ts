// The simulated mail store: per-user mailboxes with UIDVALIDITY/UIDNEXT,
// messages (uid, flags, keywords, the parsed message), subscriptions, and
// server and mailbox metadata. In memory. This file is state and the rules of
// Dovecot's storage layer only; which push events an action fires lives in
// actions.ts.
//
// Facts kept from Dovecot 2.3.19 (Debian 12, maildir, namespace separator "/"):
// - UIDVALIDITY of a new mailbox: max(now, previous + 1), one counter per
//   process (src/lib-storage/mailbox-uidvalidity.c; recorded: INBOX and a
//   mailbox created seconds later got consecutive values).
// - \Recent belongs to the first session that opens the mailbox with
//   MAILBOX_FLAG_DROP_RECENT (IMAP SELECT) after the message arrived; until
//   then every session sees it (LMTP and doveadm do not claim; recorded in
//   flags_old).
// - INBOX is case-insensitive and auto-created when first opened, or silently
//   when another folder is created first (Maildir: INBOX is the root).

import type { MessageFields } from './message.js'

/** System flag bits (src/lib-mail/mail-types.h); also the values of status().flags. */
export const MAIL_ANSWERED = 0x01
export const MAIL_FLAGGED = 0x02
export const MAIL_DELETED = 0x04
export const MAIL_SEEN = 0x08
export const MAIL_DRAFT = 0x10
export const MAIL_RECENT = 0x20

/** Flag names in bit order, as dlua_push_flags pushes them. */
export const FLAG_NAMES: readonly (readonly [number, string])[] = [
  [MAIL_ANSWERED, '\\Answered'],
  [MAIL_FLAGGED, '\\Flagged'],
  [MAIL_DELETED, '\\Deleted'],
  [MAIL_SEEN, '\\Seen'],
  [MAIL_DRAFT, '\\Draft'],
  [MAIL_RECENT, '\\Recent'],
]

/** The five flags a client can store (\Recent cannot be set). */
export const SETTABLE_FLAGS = MAIL_ANSWERED | MAIL_FLAGGED | MAIL_DELETED | MAIL_SEEN | MAIL_DRAFT

/** `\Seen` → MAIL_SEEN (case-insensitive, as IMAP); undefined for a keyword or an unknown system flag. */
export function flagBit(name: string): number | undefined {
  const lower = name.toLowerCase()
  for (const [bit, n] of FLAG_NAMES) if (n.toLowerCase() === lower) return bit
  return undefined
}

/** A bitmask → flag names in bit order (the event tables' `flags`, `flags_old`). */
export function flagNames(bits: number): string[] {
  const out: string[] = []
  for (const [bit, n] of FLAG_NAMES) if ((bits & bit) !== 0) out.push(n)
  return out
}

export interface StoredMessage {
  readonly uid: number
  /** System flags (never MAIL_RECENT: that is per session, see Mailbox.recentOf). */
  flags: number
  keywords: string[]
  /** The message as received (RFC 5322, CRLF). */
  readonly eml: string
  readonly fields: MessageFields
  /** Unix seconds the message was saved (IMAP INTERNALDATE). */
  readonly savedAt: number
  modseq: number
}

export class Mailbox {
  /** The virtual name (namespace prefix + "/" separator), e.g. `INBOX`, `Archive/2024`. */
  name: string
  readonly uidValidity: number
  uidNext = 1
  highestModseq = 1
  /** Ascending UID. */
  readonly messages: StoredMessage[] = []
  /** Every keyword ever used in the mailbox (the index's keyword list; status KEYWORDS). */
  readonly keywords: string[] = []
  /** Messages with uid >= firstRecentUid are recent and unclaimed. */
  firstRecentUid = 1
  /** uid → the session that claimed the message's \Recent. */
  readonly recentOwner = new Map<number, string>()
  /** Mailbox metadata, keys as given (`/private/…`, `/shared/…`). */
  readonly metadata = new Map<string, string>()

  constructor(name: string, uidValidity: number) {
    this.name = name
    this.uidValidity = uidValidity
  }

  /**
   * An open with MAILBOX_FLAG_DROP_RECENT (IMAP SELECT): `session` claims the
   * unclaimed recent messages, and later sessions no longer see them recent
   * (src/lib-storage/index/index-sync.c).
   */
  claimRecent(session: string): void {
    for (const m of this.messages) if (m.uid >= this.firstRecentUid) this.recentOwner.set(m.uid, session)
    this.firstRecentUid = this.uidNext
  }

  /**
   * Whether `session` sees \Recent on the message: it claimed it, or nobody
   * has (a session opening without DROP_RECENT, e.g. doveadm, still sees
   * unclaimed messages as recent; recorded in flags_old).
   */
  recentOf(uid: number, session: string | undefined): boolean {
    return uid >= this.firstRecentUid || (session !== undefined && this.recentOwner.get(uid) === session)
  }

  /** The flags a session sees: stored flags plus \Recent. */
  flagsSeenBy(m: StoredMessage, session: string | undefined): number {
    return this.recentOf(m.uid, session) ? m.flags | MAIL_RECENT : m.flags
  }

  /** Registers keywords in the mailbox's keyword list; returns them in that list's order (mail_get_keywords order). */
  addKeywords(keywords: readonly string[]): string[] {
    for (const k of keywords) if (!this.keywords.includes(k)) this.keywords.push(k)
    return this.keywords.filter((k) => keywords.includes(k))
  }

  /** Appends a saved message (UIDNEXT grows). */
  save(eml: string, fields: MessageFields, flags: number, keywords: readonly string[], savedAt: number): StoredMessage {
    const m: StoredMessage = {
      uid: this.uidNext++,
      flags: flags & SETTABLE_FLAGS,
      keywords: this.addKeywords(keywords),
      eml,
      fields,
      savedAt,
      modseq: ++this.highestModseq,
    }
    this.messages.push(m)
    return m
  }

  expunge(uid: number): void {
    const i = this.messages.findIndex((m) => m.uid === uid)
    if (i >= 0) this.messages.splice(i, 1)
    this.recentOwner.delete(uid)
    this.highestModseq++
  }
}

/** Dovecot's storage errors, with its texts (mail-storage.h MAIL_ERRSTR_*, index-storage.c). */
export class StorageError extends Error {
  constructor(
    message: string,
    readonly code: 'NOTFOUND' | 'EXISTS' | 'PARAMS' | 'NOTPOSSIBLE',
  ) {
    super(message)
    this.name = 'StorageError'
  }
}

/** One mail user's store. */
export class UserStore {
  readonly username: string
  readonly #mailboxes = new Map<string, Mailbox>()
  readonly subscriptions = new Set<string>()
  /** Server metadata (user:metadata_*), keys in user form (`/private/…`). */
  readonly serverMetadata = new Map<string, string>()
  readonly #store: MailStore

  constructor(store: MailStore, username: string) {
    this.#store = store
    this.username = username
  }

  /** INBOX in any case is INBOX; other names are case-sensitive. */
  static normalize(name: string): string {
    if (name.toUpperCase() === 'INBOX') return 'INBOX'
    if (name.toUpperCase().startsWith('INBOX/')) return 'INBOX' + name.slice(5)
    return name
  }

  get(name: string): Mailbox | undefined {
    return this.#mailboxes.get(UserStore.normalize(name))
  }

  exists(name: string): boolean {
    return this.#mailboxes.has(UserStore.normalize(name))
  }

  /** Mailbox names in creation order. */
  names(): string[] {
    return [...this.#mailboxes.keys()]
  }

  create(name: string): Mailbox {
    const n = UserStore.normalize(name)
    if (n === '' || n.startsWith('/') || n.endsWith('/') || n.includes('//')) throw new StorageError('Invalid mailbox name', 'PARAMS')
    if (this.#mailboxes.has(n)) throw new StorageError('Mailbox already exists', 'EXISTS')
    // Maildir: INBOX is the Maildir root, which creating any other folder makes
    // as a side effect, with no MailboxCreate (a real Dovecot 2.3.19: CREATE
    // then a first delivery fires no INBOX MailboxCreate; a delivery alone does)
    if (n !== 'INBOX' && !this.#mailboxes.has('INBOX')) this.#mailboxes.set('INBOX', new Mailbox('INBOX', this.#store.nextUidValidity()))
    const box = new Mailbox(n, this.#store.nextUidValidity())
    this.#mailboxes.set(n, box)
    return box
  }

  /** Opens a mailbox that must exist: Dovecot's `Mailbox doesn't exist: NAME`. */
  require(name: string): Mailbox {
    const box = this.get(name)
    if (box === undefined) throw new StorageError(`Mailbox doesn't exist: ${name}`, 'NOTFOUND')
    return box
  }

  rename(from: string, to: string): Mailbox {
    const box = this.require(from)
    const n = UserStore.normalize(to)
    // mailbox-list-maildir.c: the Maildir root (INBOX) cannot be renamed
    if (box.name === 'INBOX') throw new StorageError('Renaming INBOX isn\'t supported.', 'NOTPOSSIBLE')
    if (this.#mailboxes.has(n)) throw new StorageError('Target mailbox already exists', 'EXISTS')
    this.#mailboxes.delete(box.name)
    box.name = n
    this.#mailboxes.set(n, box)
    return box
  }

  delete(name: string): Mailbox {
    const box = this.require(name)
    if (box.name === 'INBOX') throw new StorageError('INBOX can\'t be deleted.', 'NOTPOSSIBLE')
    this.#mailboxes.delete(box.name)
    return box
  }
}

export interface MailStoreOptions {
  /** Unix seconds now (UIDVALIDITY, save times); default: the real clock. */
  readonly now?: () => number
}

/** Every user's mail, in memory. */
export class MailStore {
  readonly #users = new Map<string, UserStore>()
  readonly #now: () => number
  #lastUidValidity = 0

  constructor(options: MailStoreOptions = {}) {
    this.#now = options.now ?? (() => Math.floor(Date.now() / 1000))
  }

  now(): number {
    return this.#now()
  }

  user(username: string): UserStore {
    let u = this.#users.get(username)
    if (u === undefined) {
      u = new UserStore(this, username)
      this.#users.set(username, u)
    }
    return u
  }

  /** mailbox_uid_validity_next(): max(now, previous + 1). */
  nextUidValidity(): number {
    const now = this.#now()
    this.#lastUidValidity = this.#lastUidValidity < now ? now : this.#lastUidValidity + 1
    return this.#lastUidValidity
  }
}
