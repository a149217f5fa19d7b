// dovecot.storage: the constants table (src/lib-storage/mail-storage-lua.c).
//
// Values come from mail-storage.h and mailbox-attribute.h; Dovecot pushes them
// with lua_pushnumber, so they are floats (`STATUS_MESSAGES` is 1.0, spec §4.2).
// Debian 12's 2.3.19.1 binary lacks MAILBOX_FLAG_AUTO_CREATE/AUTO_SUBSCRIBE
// although its source has them; 2.4 has them and drops
// MAILBOX_SYNC_FLAG_FULL_WRITE (spec §4.2, §9).

import type { LuaEnv } from '../env.js'

/** The constants both versions have; also what dovepush's own mailbox code uses. */
export const STORAGE = {
  STATUS_MESSAGES: 0x01,
  STATUS_RECENT: 0x02,
  STATUS_UIDNEXT: 0x04,
  STATUS_UIDVALIDITY: 0x08,
  STATUS_UNSEEN: 0x10,
  STATUS_FIRST_UNSEEN_SEQ: 0x20,
  STATUS_KEYWORDS: 0x40,
  STATUS_HIGHESTMODSEQ: 0x80,
  STATUS_PERMANENT_FLAGS: 0x200,
  STATUS_FIRST_RECENT_UID: 0x400,
  STATUS_HIGHESTPVTMODSEQ: 0x2000,
  MAILBOX_FLAG_READONLY: 0x01,
  MAILBOX_FLAG_SAVEONLY: 0x02,
  MAILBOX_FLAG_DROP_RECENT: 0x04,
  MAILBOX_FLAG_NO_INDEX_FILES: 0x10,
  MAILBOX_FLAG_KEEP_LOCKED: 0x20,
  MAILBOX_FLAG_IGNORE_ACLS: 0x100,
  MAILBOX_SYNC_FLAG_FULL_READ: 0x01,
  MAILBOX_SYNC_FLAG_FAST: 0x04,
  MAILBOX_SYNC_FLAG_NO_EXPUNGES: 0x08,
  MAILBOX_SYNC_FLAG_FIX_INCONSISTENT: 0x40,
  MAILBOX_SYNC_FLAG_EXPUNGE: 0x80,
  MAILBOX_SYNC_FLAG_FORCE_RESYNC: 0x100,
  MAILBOX_ATTRIBUTE_PREFIX_DOVECOT: 'vendor/vendor.dovecot/',
  MAILBOX_ATTRIBUTE_PREFIX_DOVECOT_PVT: 'vendor/vendor.dovecot/pvt/',
  MAILBOX_ATTRIBUTE_PREFIX_DOVECOT_PVT_SERVER: 'vendor/vendor.dovecot/pvt/server/',
} as const satisfies Readonly<Record<string, number | string>>

/** The constants of each imitated version. */
export const STORAGE_CONSTANTS = {
  '2.3': { ...STORAGE, MAILBOX_SYNC_FLAG_FULL_WRITE: 0x02 },
  '2.4': { ...STORAGE, MAILBOX_FLAG_AUTO_CREATE: 0x1000, MAILBOX_FLAG_AUTO_SUBSCRIBE: 0x2000 },
} as const

/** Pushes the `dovecot.storage` table (metatable named "storage" with __index = itself, as recorded). */
export function pushStorage(env: LuaEnv): void {
  const { api, L } = env
  const constants: Readonly<Record<string, number | string>> = STORAGE_CONSTANTS[env.dovecot]
  api.createtable(L, 0, Object.keys(constants).length)
  for (const [name, value] of Object.entries(constants)) {
    if (typeof value === 'number') api.pushnumber(L, value)
    else api.pushstring(L, value)
    api.setfield(L, -2, name)
  }
  api.createtable(L, 0, 2)
  api.pushstring(L, 'storage')
  api.setfield(L, -2, '__name')
  api.pushvalue(L, -1)
  api.setfield(L, -2, '__index')
  api.setmetatable(L, -2)
}
