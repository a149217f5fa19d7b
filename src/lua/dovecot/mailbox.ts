// The mailbox object (src/lib-storage/mailbox-lua.c, spec §4.1) and the
// attribute (metadata) rules behind it and user:metadata_* (mailbox-
// attribute-lua.c, mailbox-attribute.c, mailbox-attribute-internal.c,
// index/index-attribute.c), over the simulated store (mailstore/store.ts).
//
// `user:mailbox(name[, flags])` allocates, it does not open: a table with
// `item`, `vname`, `name` and the metatable "struct mailbox". Dovecot's own
// errors go through dluaL_error (no position); luaL_check* keep theirs.
// The config imitated is the oracle's (shared/oracle/setup-dovecot.sh):
// maildir (Maildir++ layout, list separator "."), one inbox=yes namespace
// with prefix "" and separator "/", no mailbox {} blocks, no private index.
//
// What Dovecot does and dovepush copies (sources are 2.3.19.1 paths):
// - vname: "inbox" / "inbox/x" become "INBOX" / "INBOX/x" (mailbox_alloc);
//   name: the storage name, "/" → "." and each part in modified UTF-7
//   (mailbox_list_default_get_storage_name, imap-utf7.c).
// - open/sync/status check the name (mailbox_verify_name) and then whether it
//   exists ("Mailbox doesn't exist: <vname>"); INBOX is auto-created.
// - sync and status on a closed mailbox open it; status with items 0 only
//   checks the name (index_storage_get_status).
// - \Recent: a mailbox object sees as recent the messages at or above the
//   index's first_recent_uid when it syncs or counts (index_sync_update_
//   recent_count); only MAILBOX_FLAG_DROP_RECENT claims them for the session
//   (first_recent_uid moves, mail-index-sync.c), READONLY or not. Recorded:
//   the probe's plain user:mailbox("INBOX") + sync saw recent=2 and IMAP
//   SELECT afterwards still got \Recent on both.
// - status(): every field is present; messages, uidvalidity, uidnext,
//   first_recent_uid and the have_* booleans are filled whatever was asked
//   (index_storage_get_open_status, mailbox_get_status_set_defaults;
//   recorded: messages=2 when only HIGHESTMODSEQ|KEYWORDS|… was asked),
//   the rest only when requested. Recorded maildir values: have_guids and
//   have_save_guids true, permanent_flags and flags 31 (flags = 31 even when
//   read-only), no_modseq_tracking true (no CONDSTORE client ever enabled
//   modseqs), highest_modseq the transaction log's modseq (at least 1).
// - Attributes: `/private/k` and `/shared/k` → type + key; user metadata is
//   INBOX's `vendor/vendor.dovecot/pvt/server/k` (the store keeps it in
//   UserStore.serverMetadata in user form, so INBOX's own metadata_* see it
//   under the long key). Internal attributes answer before the dict:
//   /private/specialuse, /shared/vendor/…/server/{admin,comment} (read-only,
//   listed even without a dict), /private/comment, /shared/comment (defaults,
//   listed only with a dict). Without mail_attribute_dict get/set fail with
//   "Mailbox attributes not enabled" and list returns only the read-only
//   internal ones (index_storage_attribute_iter_init: dict_disabled). A value
//   with a NUL is refused ("Attribute string value has NULs",
//   mailbox_attribute_value_to_string) although the Lua side passes it as a
//   stream. Each successful set/unset is one index transaction with an
//   attribute update: the mailbox's modseq grows by one.
//
// Where Dovecot crashes, dovepush logs an error saying so and goes on as the
// code meant (the precedent of user.ts): metadata_set/unset on a mailbox not
// opened (i_assert(box->opened) in mailbox_transaction_begin) opens it;
// status(STATUS_RECENT) with DROP_RECENT before any sync (i_assert(box->
// synced)) syncs first; __lt/__le (strcmp of NULLs) compare vnames with
// Dovecot's swapped results. Using a mailbox after free() dereferences NULL:
// dovepush raises an error naming the method.
//
// Not settled / not simulated: a mailbox kept open across changes sees them
// at once (Dovecot's view moves only on sync); highest_modseq counts what the
// store counts (actions.ts decides what bumps it); mailbox {} comment /
// special_use settings do not exist in dovepush (those attributes are
// always empty); mail_server_admin / mail_server_comment are read from the
// settings; an INBOX auto-created here fires no MailboxCreate event; values
// are kept as JS strings, so bytes that are not UTF-8 do not survive a round
// trip; the dict is Dovecot's file dict (listing is a plain string-prefix
// match, recursive, in insertion order).

import type { LuaThread } from '../engine.js'
import { type LuaEnv, type LuaMethods, pushMethodTable } from '../env.js'
import { LuaObjects } from '../objects.js'
import { type Mailbox, MAIL_SEEN, SETTABLE_FLAGS, StorageError } from '../../mailstore/store.js'
import { STORAGE } from './storage.js'
import { checkInteger, checkObject, checkString, dluaError, requireArgs, requireArgsIn } from './args.js'
import type { MailUser } from './user.js'

export const MAILBOX = 'struct mailbox'
/** MAILBOX_ATTRIBUTE_PREFIX_DOVECOT_PVT_SERVER (mailbox-attribute.h). */
export const PVT_SERVER = STORAGE.MAILBOX_ATTRIBUTE_PREFIX_DOVECOT_PVT_SERVER
export const { MAILBOX_FLAG_READONLY, MAILBOX_FLAG_DROP_RECENT } = STORAGE
const { STATUS_RECENT, STATUS_UNSEEN, STATUS_FIRST_UNSEEN_SEQ, STATUS_KEYWORDS, STATUS_HIGHESTMODSEQ, STATUS_PERMANENT_FLAGS } = STORAGE
/** MAIL_FLAGS_NONRECENT: \Answered \Flagged \Deleted \Seen \Draft. */
const MAIL_FLAGS_NONRECENT = SETTABLE_FLAGS

/** C's `(unsigned int)` of a Lua integer. */
export const uint32 = (n: number): number => Number(BigInt.asUintN(32, BigInt(n)))

/** A C string of a Lua string: up to the first NUL. */
export const cString = (s: string): string => {
  const i = s.indexOf('\0')
  return i < 0 ? s : s.slice(0, i)
}

const toUpperAscii = (s: string): string => s.replace(/[a-z]/g, (c) => c.toUpperCase())

/** mailbox_alloc's vname: INBOX in any case becomes "INBOX" (also as the first level). */
export function allocVname(name: string): string {
  if (name.length >= 5 && toUpperAscii(name.slice(0, 5)) === 'INBOX' && !name.startsWith('INBOX')) {
    if (name.length === 5) return 'INBOX'
    if (name[5] === '/') return 'INBOX' + name.slice(5)
  }
  return name
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,'

/** imap_utf8_to_utf7: modified UTF-7 (RFC 3501 5.1.3). */
export function utf8ToUtf7(s: string): string {
  let out = ''
  let i = 0
  while (i < s.length) {
    const c = s.charCodeAt(i)
    if (c === 0x26) {
      out += '&-'
      i++
    } else if (c >= 0x20 && c < 0x7f) {
      out += s[i]
      i++
    } else {
      const bytes: number[] = []
      while (i < s.length && !(s.charCodeAt(i) >= 0x20 && s.charCodeAt(i) < 0x7f)) {
        const u = s.charCodeAt(i++)
        bytes.push(u >> 8, u & 0xff)
      }
      out += '&'
      let j = 0
      for (; j + 3 <= bytes.length; j += 3) {
        const [a, b, c2] = [bytes[j]!, bytes[j + 1]!, bytes[j + 2]!]
        out += B64[a >> 2]! + B64[((a & 3) << 4) | (b >> 4)]! + B64[((b & 0x0f) << 2) | (c2 >> 6)]! + B64[c2 & 0x3f]!
      }
      const rest = bytes.length - j
      if (rest === 1) out += B64[bytes[j]! >> 2]! + B64[(bytes[j]! & 3) << 4]!
      else if (rest === 2) out += B64[bytes[j]! >> 2]! + B64[((bytes[j]! & 3) << 4) | (bytes[j + 1]! >> 4)]! + B64[(bytes[j + 1]! & 0x0f) << 2]!
      out += '-'
    }
  }
  return out
}

/** mailbox_get_name(): the Maildir++ storage name of a vname. */
export function storageName(vname: string): string {
  if (vname === 'INBOX') return 'INBOX'
  return vname.split('/').map(utf8ToUtf7).join('.')
}

/** mailbox_verify_name for the imitated namespace (errors are MAIL_ERROR_PARAMS). */
function verifyName(vname: string, name: string): void {
  if (vname === 'INBOX') return // box->inbox_user: no further checks
  const invalid = (why: string): never => {
    throw new StorageError(`Invalid mailbox name: ${why}`, 'PARAMS')
  }
  // namespace separator "/" differs from Maildir++'s "." and there is no escape char
  if (vname.includes('.')) throw new StorageError(`Character not allowed in mailbox name: '.'`, 'PARAMS')
  if (vname.startsWith('/')) invalid('Begins with hierarchy separator')
  if (vname.includes('//')) invalid('Has adjacent hierarchy separators')
  if (vname.length > 0 && vname.endsWith('/')) invalid('Ends with hierarchy separator')
  if (name === '') invalid('Name is empty')
  if (name.startsWith('~')) invalid("Begins with '~'")
}

export interface MailboxStatus {
  messages: number
  recent: number
  unseen: number
  uidvalidity: number
  uidnext: number
  first_unseen_seq: number
  first_recent_uid: number
  highest_modseq: number
  highest_pvt_modseq: number
  permanent_flags: number
  flags: number
  permanent_keywords: boolean
  allow_new_keywords: boolean
  nonpermanent_modseqs: boolean
  no_modseq_tracking: boolean
  have_guids: boolean
  have_save_guids: boolean
  have_only_guid128: boolean
  keywords?: string[]
}

/** The JS side of one Lua mailbox object (Dovecot's struct mailbox). Methods throw StorageError with Dovecot's texts. */
export class MailboxState {
  readonly vname: string
  readonly name: string
  readonly flags: number
  opened = false
  /** box->synced: set by the first sync, kept over close. */
  synced = false
  freed = false
  #box: Mailbox | undefined
  /** The box's own \Recent flags (box->recent_flags), cleared by close. */
  readonly #recent = new Set<number>()

  constructor(
    readonly user: MailUser,
    name: string,
    flags: number,
  ) {
    this.vname = allocVname(name)
    this.name = storageName(this.vname)
    this.flags = flags
  }

  get isInbox(): boolean {
    return this.vname === 'INBOX'
  }

  get readonly(): boolean {
    return (this.flags & MAILBOX_FLAG_READONLY) !== 0
  }

  get dropRecent(): boolean {
    return (this.flags & MAILBOX_FLAG_DROP_RECENT) !== 0
  }

  /** Open, and still the store's mailbox of that name (deleted or renamed since: closed). */
  get isOpen(): boolean {
    if (this.opened && (this.#box === undefined || this.user.mail.get(this.vname) !== this.#box)) this.close()
    return this.opened
  }

  /** mailbox_verify_existing_name (a no-op once open). */
  verifyExisting(): void {
    if (!this.isOpen) verifyName(this.vname, this.name)
  }

  /** mailbox_open: a no-op when open. */
  open(): Mailbox {
    if (this.isOpen) return this.#box!
    verifyName(this.vname, this.name)
    let box = this.user.mail.get(this.vname)
    if (box === undefined) {
      if (!this.isInbox) throw new StorageError(`Mailbox doesn't exist: ${this.vname}`, 'NOTFOUND')
      box = this.user.mail.create('INBOX') // mailbox_autocreate (no MailboxCreate event here)
    }
    this.#box = box
    this.opened = true
    return box
  }

  /** mailbox_close: drops the view and the box's recent flags. */
  close(): void {
    this.opened = false
    this.#box = undefined
    this.#recent.clear()
  }

  /** mailbox_sync (the flags change nothing in the simulation). */
  sync(): Mailbox {
    const box = this.open()
    this.#seeRecent(box)
    if (this.dropRecent) box.claimRecent(this.user.sessionId)
    this.synced = true
    return box
  }

  #seeRecent(box: Mailbox): void {
    for (const m of box.messages) if (m.uid >= box.firstRecentUid) this.#recent.add(m.uid)
  }

  /** mailbox_get_status; `crash` is told when Dovecot would abort (and the status goes on). */
  status(items: number, crash: (what: string) => void): MailboxStatus {
    const st: MailboxStatus = {
      messages: 0, recent: 0, unseen: 0, uidvalidity: 0, uidnext: 0, first_unseen_seq: 0, first_recent_uid: 0,
      highest_modseq: 0, highest_pvt_modseq: 0, permanent_flags: 0, flags: 0,
      permanent_keywords: false, allow_new_keywords: false, nonpermanent_modseqs: false, no_modseq_tracking: false,
      // maildir's class flags (mailbox_get_status_set_defaults)
      have_guids: true, have_save_guids: true, have_only_guid128: false,
    }
    this.verifyExisting()
    if (items === 0) return st
    // a closed mailbox is opened and synced (MAILBOX_SYNC_FLAG_FAST)
    const box = this.isOpen ? this.#box! : this.sync()
    st.messages = box.messages.length
    if ((items & STATUS_RECENT) !== 0) {
      if (!this.dropRecent) this.#seeRecent(box)
      else if (!this.synced) {
        crash('mailbox:status(STATUS_RECENT) on a MAILBOX_FLAG_DROP_RECENT mailbox that was opened but never synced aborts Dovecot 2.3.19 (i_assert(box->synced)); call mb:sync() first')
        this.sync()
      }
      st.recent = box.messages.filter((m) => this.#recent.has(m.uid)).length
    }
    const firstUnseen = box.messages.findIndex((m) => (m.flags & MAIL_SEEN) === 0)
    if ((items & STATUS_UNSEEN) !== 0) st.unseen = box.messages.filter((m) => (m.flags & MAIL_SEEN) === 0).length
    st.uidvalidity = box.uidValidity
    st.uidnext = box.uidNext
    st.first_recent_uid = box.firstRecentUid
    if ((items & STATUS_HIGHESTMODSEQ) !== 0) {
      st.nonpermanent_modseqs = false
      st.no_modseq_tracking = true
      st.highest_modseq = Math.max(box.highestModseq, 1)
    }
    // STATUS_HIGHESTPVTMODSEQ needs a private index (none configured): stays 0
    if ((items & STATUS_FIRST_UNSEEN_SEQ) !== 0) st.first_unseen_seq = firstUnseen + 1
    if ((items & STATUS_KEYWORDS) !== 0) st.keywords = [...box.keywords]
    if ((items & STATUS_PERMANENT_FLAGS) !== 0) {
      if (!this.readonly) {
        st.permanent_flags = MAIL_FLAGS_NONRECENT
        st.permanent_keywords = true
        st.allow_new_keywords = true
      }
      st.flags = MAIL_FLAGS_NONRECENT
    }
    return st
  }
}

// ---------------------------------------------------------------------------
// Attributes

type AttrType = 'private' | 'shared'

interface InternalAttribute {
  readonly type: AttrType
  readonly key: string
  /** authority: answered (and refused for set) without the dict; default: the dict first. */
  readonly rank: 'default' | 'authority'
  readonly get: (u: MailUser) => string | undefined
}

const nonEmpty = (v: string | undefined): string | undefined => (v === undefined || v === '' ? undefined : v)

/** mailbox_attributes_internal_init, sorted as Dovecot keeps them (type, then key). */
const INTERNAL: readonly InternalAttribute[] = [
  { type: 'private', key: 'comment', rank: 'default', get: () => undefined }, // mailbox { comment }
  { type: 'private', key: 'specialuse', rank: 'authority', get: () => undefined }, // mailbox { special_use }
  { type: 'shared', key: 'comment', rank: 'default', get: () => undefined }, // mailbox { comment }
  { type: 'shared', key: `${PVT_SERVER}admin`, rank: 'authority', get: (u) => nonEmpty(u.setting('mail_server_admin')) },
  { type: 'shared', key: `${PVT_SERVER}comment`, rank: 'authority', get: (u) => nonEmpty(u.setting('mail_server_comment')) },
]

const KEY_PREFIX_ERROR = 'Invalid key prefix, must be /private/ or /shared/'

/** "/private/k" → private + "k" (mailbox-attribute-lua.c); anything else is Dovecot's prefix error. */
function splitKey(key: string): { type: AttrType; key: string } {
  if (key.startsWith('/private/')) return { type: 'private', key: key.slice(9) }
  if (key.startsWith('/shared/')) return { type: 'shared', key: key.slice(8) }
  throw new StorageError(KEY_PREFIX_ERROR, 'PARAMS')
}

/** user:metadata_* keys: "/private/k" → "/private/vendor/vendor.dovecot/pvt/server/k" (lua_storage_mail_user_metadata_key). */
export function userMetadataKey(key: string): string {
  if (key.startsWith('/private/')) return `/private/${PVT_SERVER}${key.slice(9)}`
  if (key.startsWith('/shared/')) return `/shared/${PVT_SERVER}${key.slice(8)}`
  throw new StorageError(KEY_PREFIX_ERROR, 'PARAMS')
}

/** mailbox_internal_attribute_get (no attribute registers children), with the INBOX-only rule for server attributes. */
function internalAttribute(st: MailboxState, type: AttrType, key: string): InternalAttribute | undefined {
  if (!st.isInbox && key.startsWith(PVT_SERVER)) return undefined
  return INTERNAL.find((a) => a.type === type && a.key === key)
}

/** Where the store keeps an attribute: INBOX's server subtree is UserStore.serverMetadata (user form). */
function backing(st: MailboxState, box: Mailbox, type: AttrType, key: string): { map: Map<string, string>; key: string } {
  if (st.isInbox && key.startsWith(PVT_SERVER)) return { map: st.user.mail.serverMetadata, key: `/${type}/${key.slice(PVT_SERVER.length)}` }
  return { map: box.metadata, key: `/${type}/${key}` }
}

/** index_storage_get_dict: the mailbox opens (mailbox_get_metadata GUID), then mail_attribute_dict must be set. */
function requireDict(st: MailboxState): Mailbox {
  const box = st.open()
  if (!st.user.attributesEnabled) throw new StorageError('Mailbox attributes not enabled', 'NOTPOSSIBLE')
  return box
}

function attrGet(st: MailboxState, type: AttrType, key: string): string | undefined {
  const iattr = internalAttribute(st, type, key)
  if (iattr?.rank === 'authority') return iattr.get(st.user)
  const box = requireDict(st)
  const b = backing(st, box, type, key)
  const v = b.map.get(b.key)
  if (v !== undefined) return v
  return iattr?.get(st.user)
}

/** lua_storage_mailbox_attribute_get: the value, or undefined when there is none. */
export function attributeGet(st: MailboxState, fullKey: string): string | undefined {
  const { type, key } = splitKey(fullKey)
  return attrGet(st, type, key)
}

const utf8 = new TextDecoder()

/** lua_storage_mailbox_attribute_set: value undefined unsets. The mailbox must be open (Dovecot asserts it). */
export function attributeSet(st: MailboxState, fullKey: string, value: Uint8Array | undefined): void {
  const { type, key } = splitKey(fullKey)
  const iattr = internalAttribute(st, type, key)
  if (iattr?.rank === 'authority') throw new StorageError(`The /${type}/${key} attribute cannot be changed`, 'NOTPOSSIBLE')
  const box = requireDict(st)
  if (value !== undefined && value.includes(0)) throw new StorageError('Attribute string value has NULs', 'PARAMS')
  const b = backing(st, box, type, key)
  if (value === undefined) b.map.delete(b.key)
  else b.map.set(b.key, utf8.decode(value))
  box.highestModseq++ // the transaction's attribute update record
}

/** The dict's keys under `prefix` (file dict: string prefix, recursive), relative to it. */
function dictKeys(st: MailboxState, box: Mailbox, type: AttrType, prefix: string): string[] {
  const out: string[] = []
  const typed = `/${type}/`
  const add = (k: string): void => {
    if (k.startsWith(prefix)) out.push(k.slice(prefix.length))
  }
  for (const k of box.metadata.keys()) if (k.startsWith(typed)) add(k.slice(typed.length))
  if (st.isInbox) for (const k of st.user.mail.serverMetadata.keys()) if (k.startsWith(typed)) add(PVT_SERVER + k.slice(typed.length))
  return out
}

/** mailbox_internal_attributes_get: internal keys under `prefix`, relative to it (the prefix minus one trailing "/"). */
function internalKeys(type: AttrType, prefix: string, haveDict: boolean): string[] {
  const bare = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix
  const out: string[] = []
  // from the bsearch insert position of (type, bare), while the keys match
  let i = INTERNAL.findIndex((a) => a.type > type || (a.type === type && a.key >= bare))
  if (i < 0) return out
  for (; i < INTERNAL.length; i++) {
    const a = INTERNAL[i]!
    if (a.type !== type) break
    let key = a.key
    if (bare.length > 0) {
      if (!key.startsWith(bare)) break
      if (key[bare.length] === '/') key = key.slice(bare.length + 1)
      else if (key.length === bare.length) key = ''
      else break
    }
    if (haveDict || a.rank === 'authority') out.push(key)
  }
  return out
}

const lowerAscii = (s: string): string => s.replace(/[A-Z]/g, (c) => c.toLowerCase())

/** lua_storage_mailbox_attribute_list: [full key, value ("" when none)] for every attribute under the prefix. */
export function attributeList(st: MailboxState, fullPrefix: string): Array<[string, string]> {
  const { type, key: prefix } = splitKey(fullPrefix)
  // mailbox_attribute_iter_init: the dict's iterator (a disabled dict lists nothing, another failure fails at deinit) …
  let keys: string[] = []
  let iterError: unknown
  try {
    keys = dictKeys(st, requireDict(st), type, prefix)
  } catch (err) {
    if (!(err instanceof StorageError && err.code === 'NOTPOSSIBLE')) iterError = err
  }
  // … then the internal attributes (server ones only on INBOX), duplicates dropped from the dict's side
  const extra = internalKeys(type, prefix, st.user.attributesEnabled).filter((k) => st.isInbox || !k.startsWith(PVT_SERVER))
  const extraLower = extra.map(lowerAscii)
  const all = [...keys.filter((k) => !extraLower.includes(lowerAscii(k))), ...extra]
  const out: Array<[string, string]> = all.map((k) => [fullPrefix + k, attrGet(st, type, prefix + k) ?? ''])
  if (iterError !== undefined) throw iterError
  return out
}

// ---------------------------------------------------------------------------
// Lua bindings

export interface MailboxBinding {
  /** user:mailbox(): pushes a new (not opened) mailbox object. */
  push(L: LuaThread, user: MailUser, name: string, flags: number): void
}

/** The Dovecot error text of a storage failure (mailbox_get_last_error). */
export function storageErrorText(err: unknown): string {
  if (err instanceof StorageError) return err.message
  throw err
}

/** Registers the "struct mailbox" metatable for a state (once: the methods are shared by every mailbox object). */
export function registerMailbox(env: LuaEnv): MailboxBinding {
  const { api, L } = env
  const objects = new LuaObjects<MailboxState>(api, L, 'mailbox', { onPush: () => env.gc.observe('a mailbox object') })

  /** lua_check_storage_mailbox. */
  const at = (SL: LuaThread, arg: number): MailboxState => {
    checkObject(api, SL, arg, MAILBOX)
    const st = objects.get(SL, arg)
    if (st === undefined) return dluaError(api, SL, `Bad argument #${arg}, expected ${MAILBOX} got table`)
    return st
  }
  /** The mailbox at arg 1, which must not have been freed (Dovecot would use a NULL pointer). */
  const live = (SL: LuaThread, method: string): MailboxState => {
    const st = at(SL, 1)
    if (st.freed) return dluaError(api, SL, `mailbox:${method}() after mailbox:free() crashes Dovecot 2.3.19 (the mailbox pointer is NULL); do not use a freed mailbox`)
    return st
  }
  const crash = (SL: LuaThread) => (what: string): void => {
    env.log.error({ source: api.where(SL, 1).replace(/:\s*$/, '') }, `lua: ${what}`)
  }
  /** Runs a storage call; a StorageError becomes Dovecot's error text via `fail`. */
  const storage = <T>(SL: LuaThread, fn: () => T, fail: (err: string) => string): T => {
    try {
      return fn()
    } catch (err) {
      return dluaError(api, SL, fail(storageErrorText(err)))
    }
  }

  const compare = (op: '<' | '<=') => (SL: LuaThread): number => {
    requireArgs(api, SL, 2)
    const a = objects.get(SL, 1)?.vname ?? api.tostringmeta(SL, 1)
    const b = objects.get(SL, 2)?.vname ?? api.tostringmeta(SL, 2)
    crash(SL)(
      `comparing mailbox objects with ${op} crashes Dovecot 2.3.19 (its __lt/__le strcmp() NULL pointers); compare a.vname instead`,
    )
    const cmp = a < b ? -1 : a > b ? 1 : 0
    api.pushboolean(SL, op === '<' ? cmp <= 0 : cmp < 0) // swapped, as in mailbox-lua.c
    return 1
  }

  /** metadata_set / metadata_unset on the mailbox itself. */
  const setUnset = (SL: LuaThread, st: MailboxState, key: string, value: Uint8Array | undefined, what: 'set' | 'unset'): number => {
    storage(SL, () => {
      splitKey(key)
      if (!st.isOpen) {
        crash(SL)(`mailbox:metadata_${what}() on a mailbox that is not open aborts Dovecot 2.3.19 (i_assert(box->opened) in mailbox_transaction_begin); call mb:open() first`)
        st.open()
      }
      attributeSet(st, key, value)
    }, (e) => `Cannot ${what} attribute: ${e}`)
    return 0
  }

  const methods: LuaMethods = {
    __tostring: (SL) => {
      requireArgs(api, SL, 1)
      api.pushstring(SL, live(SL, '__tostring').vname)
      return 1
    },
    __eq: (SL) => {
      requireArgs(api, SL, 2)
      const a = live(SL, '__eq')
      const b = objects.get(SL, 2)
      // mailbox_equals: same namespace (there is one) and the same vname, INBOX in any case
      api.pushboolean(SL, b !== undefined && (a.vname === b.vname || (toUpperAscii(a.vname) === 'INBOX' && toUpperAscii(b.vname) === 'INBOX')))
      return 1
    },
    __lt: compare('<'),
    __le: compare('<='),
    free: (SL) => {
      requireArgs(api, SL, 1)
      const st = at(SL, 1)
      if (!st.freed) {
        st.close()
        st.freed = true
      }
      return 0
    },
    status: (SL) => {
      const st = live(SL, 'status')
      const top = api.gettop(SL)
      if (top < 2) return dluaError(api, SL, 'expecting at least 1 parameter')
      let items = 0
      for (let i = 2; i <= top; i++) items = (items | uint32(checkInteger(api, SL, i))) >>> 0
      const s = storage(SL, () => st.status(items, crash(SL)), (e) => `mailbox_get_status(${st.vname}, ${items}) failed: ${e}`)
      api.createtable(SL, 0, 20)
      api.pushstring(SL, st.vname)
      api.setfield(SL, -2, 'mailbox')
      for (const f of ['messages', 'recent', 'unseen', 'uidvalidity', 'uidnext', 'first_unseen_seq', 'first_recent_uid', 'highest_modseq', 'highest_pvt_modseq', 'permanent_flags', 'flags'] as const) {
        api.pushnumber(SL, s[f])
        api.setfield(SL, -2, f)
      }
      for (const f of ['permanent_keywords', 'allow_new_keywords', 'nonpermanent_modseqs', 'no_modseq_tracking', 'have_guids', 'have_save_guids', 'have_only_guid128'] as const) {
        api.pushboolean(SL, s[f])
        api.setfield(SL, -2, f)
      }
      if (s.keywords !== undefined) {
        api.createtable(SL, s.keywords.length, 0)
        s.keywords.forEach((k, i) => {
          api.pushstring(SL, k)
          api.rawseti(SL, -2, i + 1)
        })
        api.setfield(SL, -2, 'keywords')
      }
      return 1
    },
    open: (SL) => {
      requireArgs(api, SL, 1)
      const st = live(SL, 'open')
      storage(SL, () => st.open(), (e) => `mailbox_open(${st.vname}) failed: ${e}`)
      return 0
    },
    close: (SL) => {
      requireArgs(api, SL, 1)
      live(SL, 'close').close()
      return 0
    },
    sync: (SL) => {
      requireArgsIn(api, SL, 1, 2)
      const st = live(SL, 'sync')
      if (api.gettop(SL) >= 2) checkInteger(api, SL, 2) // MAILBOX_SYNC_FLAG_*: nothing to do with them here
      storage(SL, () => st.sync(), (e) => `mailbox_sync(${st.vname}) failed: ${e}`)
      return 0
    },
    metadata_get: (SL) => {
      const top = api.gettop(SL)
      if (top < 2) return dluaError(api, SL, 'expecting at least 1 parameter')
      const st = live(SL, 'metadata_get')
      for (let i = 2; i <= top; i++) {
        const key = api.tostring(SL, i)
        if (key === undefined) return dluaError(api, SL, `expected string at #${i}`)
        const v = storage(SL, () => attributeGet(st, cString(key)), (e) => e)
        if (v === undefined) api.pushnil(SL)
        else api.pushstring(SL, v)
      }
      return top - 1
    },
    metadata_set: (SL) => {
      requireArgs(api, SL, 3)
      const st = live(SL, 'metadata_set')
      const key = cString(checkString(api, SL, 2))
      return setUnset(SL, st, key, api.tobytes(SL, 3), 'set')
    },
    metadata_unset: (SL) => {
      requireArgs(api, SL, 2)
      const st = live(SL, 'metadata_unset')
      return setUnset(SL, st, cString(checkString(api, SL, 2)), undefined, 'unset')
    },
    metadata_list: (SL) => {
      const top = api.gettop(SL)
      if (top < 2) return dluaError(api, SL, 'expecting at least 1 parameter')
      const st = live(SL, 'metadata_list')
      const items: Array<[string, string]> = []
      for (let i = 2; i <= top; i++) {
        const prefix = api.tostring(SL, i)
        if (prefix === undefined) return dluaError(api, SL, `expected string at #${i}`)
        items.push(...storage(SL, () => attributeList(st, cString(prefix)), (e) => e))
      }
      pushItems(SL, items)
      return 1
    },
  }

  /** The metadata_list table: key → value. */
  const pushItems = (SL: LuaThread, items: ReadonlyArray<readonly [string, string]>): void => {
    api.createtable(SL, 0, items.length)
    for (const [k, v] of items) {
      api.pushstring(SL, v)
      api.setfield(SL, -2, k)
    }
  }

  pushMethodTable(env, MAILBOX, methods, 'mailbox:')
  const mtRef = api.ref(L)

  return {
    push(T, user, name, flags) {
      const st = new MailboxState(user, name, flags)
      api.createtable(T, 0, 3)
      api.pushref(T, mtRef)
      api.setmetatable(T, -2)
      objects.pushItem(T, st)
      api.setfield(T, -2, 'item')
      api.pushstring(T, st.vname)
      api.setfield(T, -2, 'vname')
      api.pushstring(T, st.name)
      api.setfield(T, -2, 'name')
    },
  }
}
