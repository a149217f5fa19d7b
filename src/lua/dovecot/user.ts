// The mail_user object (src/lib-storage/mail-user-lua.c, spec §3).
//
// Dovecot pushes a fresh table per begin_txn: `lua_createtable(L, 0, 20)`,
// metatable "struct mail_user" (`__index` = itself, holding the methods),
// then the fields in this order: item, home, username, uid, gid, service,
// session_id, session_create_time (numbers as floats) and the state booleans.
//
// Comparing two user objects crashes Dovecot: its __eq/__lt/__le strcmp()
// lua_tostring() of two tables, i.e. NULL (spec §3, recorded SIGSEGV).
// dovepush logs an error saying so and answers as the code intended (by
// username, with __lt/__le swapped as in Dovecot), so the run goes on.
//
// mailbox() and metadata_* work on the user's simulated mail (mailbox.ts has
// the storage and attribute rules). metadata_* are server metadata: the key
// "/private/k" is INBOX's attribute "/private/vendor/vendor.dovecot/pvt/server/k",
// read through INBOX opened read-only (get) or read-write (set, unset, list),
// each call with its own INBOX (mail-user-lua.c). Error texts are Dovecot's,
// including set/unset's "Cannot get attribute: …" (sic). mail_namespace_find
// cannot fail with the one prefix-"" namespace imitated, so "No namespace
// found for mailbox" never happens.

import { hostname } from 'node:os'
import type { LuaThread } from '../engine.js'
import { type LuaEnv, type LuaMethods, pushMethodTable, runOwnChunk } from '../env.js'
import { LuaObjects } from '../objects.js'
import type { UserStore } from '../../mailstore/store.js'
import { checkInteger, checkObject, checkString, dluaError, requireArgs, requireArgsIn } from './args.js'
import {
  attributeGet, attributeList, attributeSet, cString, MAILBOX_FLAG_READONLY, MailboxState, PVT_SERVER, registerMailbox,
  storageErrorText, uint32, userMetadataKey,
} from './mailbox.js'
import { type VarExpandUser, varExpand23, varExpand24 } from './var-expand.js'

const USER = 'struct mail_user'

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })
const isUtf8 = (b: Uint8Array): boolean => {
  try {
    strictUtf8.decode(b)
    return true
  } catch {
    return false
  }
}

/** What Dovecot knows about the mail user of a session. */
export interface MailUser {
  readonly username: string
  readonly home: string | undefined
  readonly uid: number
  readonly gid: number
  readonly service: string
  readonly sessionId: string
  /** Unix seconds. */
  readonly sessionCreateTime: number
  readonly mailDebug: boolean
  /** plugin {} settings and userdb fields, already expanded (mail_user_plugin_getenv). */
  readonly setting: (key: string) => string | undefined
  /** The user's simulated mail (user:mailbox, user:metadata_*). */
  readonly mail: UserStore
  /** mail_attribute_dict is set: metadata works (else Dovecot's `Mailbox attributes not enabled`). */
  readonly attributesEnabled: boolean
}

const STATE_BOOLEANS_23 = ['nonexistent', 'anonymous', 'autocreated', 'mail_debug', 'fuzzy_search', 'dsyncing', 'admin', 'session_restored'] as const

export interface UserBinding {
  /** Pushes a new user object for `user` onto T (the hot path of begin_txn). */
  pushUser(T: LuaThread, user: MailUser): void
  /** Registry ref of the "struct mail_user" metatable (scripts reach it as user.__index). */
  readonly metatableRef: number
}

export function registerUser(env: LuaEnv): UserBinding {
  const { api, L } = env
  const objects = new LuaObjects<MailUser>(api, L, 'mail_user', { persistent: true })

  const mailboxes = registerMailbox(env)

  /** lua_check_storage_mail_user(L, 1). */
  const userAt = (SL: LuaThread): MailUser => {
    checkObject(api, SL, 1, USER)
    const u = objects.get(SL, 1)
    if (u === undefined) return dluaError(api, SL, `Bad argument #1, expected ${USER} got table`)
    return u
  }
  const self = (SL: LuaThread, n: number): MailUser => {
    requireArgs(api, SL, n)
    return userAt(SL)
  }

  /** The INBOX user metadata lives in, opened: "Cannot open INBOX: …" otherwise. */
  const openInbox = (SL: LuaThread, u: MailUser, flags: number): MailboxState => {
    const inbox = new MailboxState(u, 'INBOX', flags)
    try {
      inbox.open()
    } catch (err) {
      return dluaError(api, SL, `Cannot open INBOX: ${storageErrorText(err)}`)
    }
    return inbox
  }
  /** A user key mapped under vendor/vendor.dovecot/pvt/server/, or Dovecot's prefix error. */
  const serverKey = (SL: LuaThread, key: string): string => {
    try {
      return userMetadataKey(key)
    } catch (err) {
      return dluaError(api, SL, storageErrorText(err))
    }
  }
  /** metadata_set and metadata_unset (lua_storage_mail_user_set_metadata_unset). */
  const setUnset = (SL: LuaThread, u: MailUser, key: string, value: Uint8Array | undefined): number => {
    const mapped = serverKey(SL, key)
    const inbox = openInbox(SL, u, 0)
    try {
      attributeSet(inbox, mapped, value)
    } catch (err) {
      return dluaError(api, SL, `Cannot get attribute: ${storageErrorText(err)}`)
    }
    return 0
  }

  const expandContext = (u: MailUser): VarExpandUser => ({
    username: u.username,
    home: u.home,
    service: u.service,
    sessionId: u.sessionId,
    uid: u.uid,
    gid: u.gid,
    pid: process.pid,
    hostname: hostname(),
    userdb: (field) => u.setting(field),
    env: (name) => process.env[name],
  })

  const compare = (op: '==' | '<' | '<=') => (SL: LuaThread): number => {
    requireArgs(api, SL, 2)
    const a = objects.get(SL, 1)?.username ?? api.tostringmeta(SL, 1)
    const b = objects.get(SL, 2)?.username ?? api.tostringmeta(SL, 2)
    env.log.error(
      { source: api.where(SL, 1).replace(/:\s*$/, '') },
      `lua: comparing mail_user objects with ${op} crashes Dovecot 2.3.19 (its __eq/__lt/__le strcmp() NULL pointers); ` +
        'use rawequal(a, b) or compare a.username',
    )
    const cmp = a < b ? -1 : a > b ? 1 : 0
    // mail-user-lua.c: __eq is cmp == 0; __lt is cmp <= 0 and __le is cmp < 0 (swapped)
    api.pushboolean(SL, op === '==' ? cmp === 0 : op === '<' ? cmp <= 0 : cmp < 0)
    return 1
  }

  const userMethods: LuaMethods = {
    __tostring: (SL) => {
      api.pushstring(SL, self(SL, 1).username)
      return 1
    },
    __eq: compare('=='),
    __lt: compare('<'),
    __le: compare('<='),
    ...(env.dovecot === '2.3'
      ? {
          plugin_getenv: (SL: LuaThread) => {
            const u = self(SL, 2)
            const key = api.tostring(SL, 2)
            const v = key === undefined ? undefined : u.setting(key)
            if (v === undefined) api.pushnil(SL)
            else api.pushstring(SL, v)
            return 1
          },
        }
      : {}),
    var_expand: (SL) => {
      const u = self(SL, 2)
      const template = checkString(api, SL, 2)
      let out: string
      try {
        out = env.dovecot === '2.3' ? varExpand23(template, expandContext(u)) : varExpand24(template, expandContext(u))
      } catch (err) {
        return dluaError(api, SL, `var_expand(${template}) failed: ${(err as Error).message}`)
      }
      api.pushstring(SL, out)
      return 1
    },
    mailbox: (SL) => {
      requireArgsIn(api, SL, 2, 3)
      const u = userAt(SL)
      const name = cString(checkString(api, SL, 2))
      const flags = api.gettop(SL) >= 3 ? uint32(checkInteger(api, SL, 3)) : 0
      const bytes = api.tobytes(SL, 2)!
      const nul = bytes.indexOf(0)
      if (!isUtf8(nul < 0 ? bytes : bytes.subarray(0, nul))) {
        return dluaError(api, SL, `user:mailbox(): the name is not valid UTF-8, which aborts Dovecot 2.3.19 (i_assert(uni_utf8_str_is_valid(vname)) in mailbox_alloc)`)
      }
      mailboxes.push(SL, u, name, flags)
      return 1
    },
    metadata_get: (SL) => {
      const top = api.gettop(SL)
      if (top < 2) return dluaError(api, SL, 'expecting at least 1 parameter')
      const u = userAt(SL)
      const inbox = openInbox(SL, u, MAILBOX_FLAG_READONLY)
      for (let i = 2; i <= top; i++) {
        const key = api.tostring(SL, i)
        if (key === undefined) return dluaError(api, SL, `expected string at #${i}`)
        const mapped = serverKey(SL, cString(key))
        let v: string | undefined
        try {
          v = attributeGet(inbox, mapped)
        } catch (err) {
          return dluaError(api, SL, storageErrorText(err))
        }
        if (v === undefined) api.pushnil(SL)
        else api.pushstring(SL, v)
      }
      return top - 1
    },
    metadata_set: (SL) => {
      requireArgs(api, SL, 3)
      const u = userAt(SL)
      const key = cString(checkString(api, SL, 2))
      return setUnset(SL, u, key, api.tobytes(SL, 3))
    },
    metadata_unset: (SL) => {
      requireArgs(api, SL, 2)
      const u = userAt(SL)
      return setUnset(SL, u, cString(checkString(api, SL, 2)), undefined)
    },
    metadata_list: (SL) => {
      const top = api.gettop(SL)
      if (top < 2) return dluaError(api, SL, 'expecting at least 1 parameter')
      const u = userAt(SL)
      const inbox = openInbox(SL, u, 0)
      const items: Array<[string, string]> = []
      for (let i = 2; i <= top; i++) {
        const prefix = api.tostring(SL, i)
        if (prefix === undefined) return dluaError(api, SL, `expected string at #${i}`)
        const mapped = serverKey(SL, cString(prefix))
        try {
          items.push(...attributeList(inbox, mapped))
        } catch (err) {
          return dluaError(api, SL, storageErrorText(err))
        }
      }
      api.createtable(SL, 0, items.length)
      for (const [k, v] of items) {
        api.pushstring(SL, v)
        // the first vendor/vendor.dovecot/pvt/server/ in the key is cut out (strstr + memmove)
        api.setfield(SL, -2, k.replace(PVT_SERVER, ''))
      }
      return 1
    },
  }

  pushMethodTable(env, USER, userMethods, 'mail_user:')
  const mtRef = api.ref(L)
  const booleans = env.dovecot === '2.3' ? STATE_BOOLEANS_23 : STATE_BOOLEANS_23.filter((b) => b !== 'mail_debug')
  // The fields come from a Lua constructor in a closure made once per mail
  // user (its values do not change within a session): pushing them one by
  // one through the C API cost a crossing and a rehash per field. The table
  // holds the same keys, values and types, with the metatable set as
  // Dovecot does; each push is a fresh table with a fresh `item`.
  const fields = ['item', 'home', 'username', 'uid', 'gid', 'service', 'session_id', 'session_create_time']
  const source =
    'local setmetatable = setmetatable\n' +
    `return function(mt, ${fields.slice(1).join(', ')}, mail_debug)\n` +
    '  return function(item)\n' +
    `    return setmetatable({ ${[...fields, ...booleans].map((f) => `${f} = ${f === 'mail_debug' ? 'mail_debug' : booleans.includes(f as never) ? 'false' : f}`).join(', ')} }, mt)\n` +
    '  end\nend'
  runOwnChunk(api, L, 'mail_user', source)
  const factoryRef = api.ref(L)
  const builders = new Map<MailUser, number>()
  const builderOf = (u: MailUser): number => {
    let ref = builders.get(u)
    if (ref !== undefined) return ref
    api.pushref(L, factoryRef)
    api.pushref(L, mtRef)
    if (u.home === undefined) api.pushnil(L)
    else api.pushstring(L, u.home)
    api.pushstring(L, u.username)
    api.pushnumber(L, u.uid)
    api.pushnumber(L, u.gid)
    api.pushstring(L, u.service)
    api.pushstring(L, u.sessionId)
    api.pushnumber(L, u.sessionCreateTime)
    api.pushboolean(L, u.mailDebug)
    api.call(L, 9, 1)
    ref = api.ref(L)
    builders.set(u, ref)
    return ref
  }

  return {
    metatableRef: mtRef,
    pushUser(T, u) {
      api.pushref(T, builderOf(u))
      objects.pushItem(T, u)
      api.call(T, 1, 1)
    },
  }
}
