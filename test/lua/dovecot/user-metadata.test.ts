// user:metadata_get/set/unset/list (spec §3, src/lib-storage/mail-user-lua.c,
// mailbox-attribute-lua.c) over the simulated store, on both engines: server
// metadata kept as INBOX's vendor/vendor.dovecot/pvt/server/ attributes, the
// disabled error without mail_attribute_dict, key rules, nil unsets, list keys
// in user form, and the recorded observations (out-session2-api.txt,
// out-session5-metadata.txt in shared/spec/dovecot-lua-observed).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import pino from 'pino'
import { createLuaHost } from '../../../src/drivers/lua.js'
import { createEnvironment, type LuaEnvironment } from '../../../src/lua/environment.js'
import type { MailUser } from '../../../src/lua/dovecot/user.js'
import { MailStore, type UserStore } from '../../../src/mailstore/store.js'
import { beginTxnScript } from '../../helpers/begin-txn.js'
import { engine, txn } from '../../helpers/run-script.js'
import { runChunk } from '../../helpers/lua-env.js'
import { KEYS_AND_R, traceScripts } from '../../helpers/trace.js'
import { createLogger } from '../../../src/log/logger.js'

const PRELUDE = `
local function r(...) local t = table.pack(...) for i = 1, t.n do t[i] = tostring(t[i]) end return table.concat(t, " ") end
local function kv(t) local o = {} for k, v in pairs(t) do o[#o+1] = k .. "=" .. v end table.sort(o) return table.concat(o, " ; ") end
local function e(f, ...) local ok, err = pcall(f, ...) assert(not ok, "expected an error") return err end
`

interface Lua {
  env: LuaEnvironment
  user(mail: UserStore, o?: { attributes?: boolean; settings?: Record<string, string> }): MailUser
  run(src: string): string[]
}

function useLua(name: 'wasmoon' | 'fengari'): Lua {
  const lua = {} as Lua
  beforeAll(async () => {
    lua.env = createEnvironment({ engine: await engine(name), scriptPath: '/nonexistent/script.lua', dovecot: '2.3', log: pino({ level: 'silent' }), debug: false, callTimeoutMs: 0, memoryLimit: 0 })
  })
  afterAll(() => lua.env?.api.close())
  lua.user = (mail, o = {}) => {
    const settings = o.settings ?? {}
    const u: MailUser = {
      username: mail.username, home: undefined, uid: 1000, gid: 1000, service: 'imap', sessionId: 'S1', sessionCreateTime: 0,
      mailDebug: false, setting: (k) => settings[k], mail, attributesEnabled: o.attributes ?? true,
    }
    lua.env.user.pushUser(lua.env.L, u)
    lua.env.api.setglobal(lua.env.L, 'user')
    return u
  }
  lua.run = (src) => runChunk(lua.env, src, PRELUDE)
  return lua
}

const newUser = (): UserStore => new MailStore({ now: () => 1795634497 }).user('alice@example.test')

for (const engineName of ['wasmoon', 'fengari'] as const) {
  describe(`user metadata (${engineName})`, () => {
    const lua = useLua(engineName)

    it('without mail_attribute_dict: get and set/unset fail with Dovecot\'s texts (recorded); list has only the read-only server entries', () => {
      const mail = newUser()
      lua.user(mail, { attributes: false })
      expect(lua.run(`return e(user.metadata_get, user, "/private/foo", "/private/nokey"), e(user.metadata_set, user, "/private/foo", "bar"),
        e(user.metadata_unset, user, "/private/foo"), kv(user:metadata_list("/private/")), kv(user:metadata_list("/shared/"))`)).toEqual([
        // out-session2-api.txt "T2 metadata_get" / "T2 metadata_set"
        'Mailbox attributes not enabled',
        'Cannot get attribute: Mailbox attributes not enabled',
        'Cannot get attribute: Mailbox attributes not enabled',
        '',
        '/shared/admin= ; /shared/comment=',
      ])
      expect(mail.serverMetadata.size).toBe(0)
    })

    it('the recorded session 5: set three keys, get, list private and shared, unset, bad key', () => {
      lua.user(newUser())
      expect(lua.run(`
        user:metadata_set("/private/foo", "bar")
        user:metadata_set("/private/foo/sub", "baz")
        user:metadata_set("/shared/sh", "s1")
        local get = "T5 get=" .. tostring(select(1, user:metadata_get("/private/foo"))) .. " n=" .. select('#', user:metadata_get("/private/foo", "/private/none"))
        local lp = "T5 list private: " .. kv(user:metadata_list("/private/"))
        local ls = "T5 list shared: " .. kv(user:metadata_list("/shared/"))
        user:metadata_unset("/private/foo")
        local after = "T5 after unset get=" .. tostring(user:metadata_get("/private/foo"))
        local ok, err = pcall(function() return user:metadata_get("foo") end)
        return get, lp, ls, after, "T5 bad key: " .. tostring(err)`)).toEqual([
        // out-session5-metadata.txt, with its "k=v ; k=v" lists sorted the same way
        'T5 get=bar n=2',
        'T5 list private: /private/foo/sub=baz ; /private/foo=bar',
        'T5 list shared: /shared/admin= ; /shared/comment= ; /shared/sh=s1',
        'T5 after unset get=nil',
        'T5 bad key: Invalid key prefix, must be /private/ or /shared/',
      ])
    })

    it('round trip of several keys: one value per key in order, nil unsets, numbers are stored as their string', () => {
      const mail = newUser()
      lua.user(mail)
      const out = lua.run(`
        user:metadata_set("/private/a", "1")
        user:metadata_set("/private/b", 2)
        user:metadata_set("/private/c", 2.5)
        user:metadata_set("/shared/d", "")
        local all = table.pack(user:metadata_get("/private/a", "/private/b", "/private/c", "/shared/d", "/shared/none"))
        user:metadata_set("/private/a", nil)
        user:metadata_set("/private/b", {})
        user:metadata_unset("/private/c")
        user:metadata_unset("/private/never-set")
        return r(table.unpack(all, 1, all.n)), all.n, math.type(all[2]), type(all[2]), kv(user:metadata_list("/private/", "/shared/")),
          select("#", user:metadata_set("/private/x", "y")), select("#", user:metadata_unset("/private/x"))`)
      expect(out).toEqual(['1 2 2.5  nil', '5', 'nil', 'string', '/shared/admin= ; /shared/comment= ; /shared/d=', '0', '0'])
      // the store keeps user metadata in user form; INBOX was auto-created to hold it
      expect([...mail.serverMetadata]).toEqual([['/shared/d', '']])
      expect(mail.names()).toEqual(['INBOX'])
    })

    it('values: a NUL is refused, other bytes pass (UTF-8)', () => {
      lua.user(newUser())
      expect(lua.run(`
        user:metadata_set("/private/u", "ä\\n\\t€")
        return e(user.metadata_set, user, "/private/n", "a\\0b"), user:metadata_get("/private/u") == "ä\\n\\t€", tostring(user:metadata_get("/private/n"))`)).toEqual([
        'Cannot get attribute: Attribute string value has NULs',
        'true',
        'nil',
      ])
    })

    it('key errors and arity: Dovecot\'s texts without position, luaL_checkstring\'s with it', () => {
      lua.user(newUser())
      const out = lua.run(`return
        e(user.metadata_get, user), e(user.metadata_get, user, "/private/a", {}), e(user.metadata_get, user, 5), e(user.metadata_get, user, "/private"),
        e(user.metadata_set, user, "/private/a"), e(user.metadata_set, user, "private/a", "v"), e(user.metadata_unset, user), e(user.metadata_unset, user, "/PRIVATE/a"),
        e(user.metadata_list, user), e(user.metadata_list, user, "/private/", false), e(user.metadata_list, user, "/"),
        e(user.metadata_get, "x", "/private/a"), e(function() return user:metadata_set({}, "v") end), e(function() return user:metadata_unset(nil) end)`)
      expect(out.slice(0, 12)).toEqual([
        'expecting at least 1 parameter',
        'expected string at #3',
        'Invalid key prefix, must be /private/ or /shared/',
        'Invalid key prefix, must be /private/ or /shared/',
        'expected 3 arguments, got 2',
        // the prefix check of set/unset raises before any "Cannot get attribute:"
        'Invalid key prefix, must be /private/ or /shared/',
        'expected 2 arguments, got 1',
        'Invalid key prefix, must be /private/ or /shared/',
        'expecting at least 1 parameter',
        'expected string at #3',
        'Invalid key prefix, must be /private/ or /shared/',
        'Bad argument #1, expected struct mail_user got string',
      ])
      expect(out[12]).toMatch(/^t:\d+: bad argument #1 to 'metadata_set' \(string expected, got table\)$/)
      expect(out[13]).toMatch(/^t:\d+: bad argument #1 to 'metadata_unset' \(string expected, got nil\)$/)
    })

    it('the server attributes admin and comment are read-only: nil (or mail_server_admin), and set fails', () => {
      lua.user(newUser(), { settings: { mail_server_admin: 'mailto:admin@example.test' } })
      expect(lua.run(`return tostring(user:metadata_get("/shared/admin")), tostring(user:metadata_get("/shared/comment")),
        e(user.metadata_set, user, "/shared/admin", "x"), e(user.metadata_unset, user, "/shared/comment"), kv(user:metadata_list("/shared/"))`)).toEqual([
        'mailto:admin@example.test',
        'nil',
        'Cannot get attribute: The /shared/vendor/vendor.dovecot/pvt/server/admin attribute cannot be changed',
        'Cannot get attribute: The /shared/vendor/vendor.dovecot/pvt/server/comment attribute cannot be changed',
        '/shared/admin=mailto:admin@example.test ; /shared/comment=',
      ])
    })

    it('metadata_list: recursive, a plain string prefix (file dict), several prefixes merged, keys in user form', () => {
      lua.user(newUser())
      expect(lua.run(`
        for _, k in ipairs({ "/private/foo", "/private/foo/sub", "/private/foo/sub/deep", "/private/foobar", "/private/other",
          "/private/x/vendor/vendor.dovecot/pvt/server/y" }) do user:metadata_set(k, "v") end
        user:metadata_set("/shared/foo", "s")
        return kv(user:metadata_list("/private/foo")), kv(user:metadata_list("/private/foo/")), kv(user:metadata_list("/private/foo/", "/shared/foo", "/private/other")),
          kv(user:metadata_list("/private/x/"))`)).toEqual([
        '/private/foo/sub/deep=v ; /private/foo/sub=v ; /private/foo=v ; /private/foobar=v',
        '/private/foo/sub/deep=v ; /private/foo/sub=v',
        '/private/foo/sub/deep=v ; /private/foo/sub=v ; /private/other=v ; /shared/foo=s',
        // only the first vendor/vendor.dovecot/pvt/server/ is cut from the key
        '/private/x/vendor/vendor.dovecot/pvt/server/y=v',
      ])
    })

    it('user metadata is INBOX\'s server subtree: the INBOX mailbox object sees and changes it under the long key', () => {
      const mail = newUser()
      lua.user(mail)
      const out = lua.run(`
        user:metadata_set("/private/k", "v1")
        local inbox = user:mailbox("INBOX")
        inbox:open()
        local seen = inbox:metadata_get("/private/vendor/vendor.dovecot/pvt/server/k")
        inbox:metadata_set("/private/vendor/vendor.dovecot/pvt/server/k", "v2")
        return seen, user:metadata_get("/private/k")`)
      expect(out).toEqual(['v1', 'v2'])
      // each committed change is an index transaction with an attribute update: INBOX's modseq grew twice
      expect(mail.get('INBOX')!.highestModseq).toBe(3)
      expect(mail.get('INBOX')!.metadata.size).toBe(0)
    })
  })

  describe(`user metadata through a session (${engineName})`, () => {
    const withTrace = traceScripts('dovepush-user-metadata-', KEYS_AND_R)

    const runIn = async (body: string, settings: Record<string, string>, store: MailStore) => {
      const t = withTrace(beginTxnScript(body))
      const dir = mkdtempSync(join(tmpdir(), 'dovepush-user-metadata-script-'))
      const scriptPath = join(dir, 'script.lua')
      writeFileSync(scriptPath, t.source)
      const host = createLuaHost({
        scriptPath, engine: await engine(engineName), dovecot: '2.3', settings, store,
        log: createLogger({ format: 'json', level: 'error', destination: { write: () => undefined } }),
        callTimeoutMs: 5000, memoryLimit: 64 * 1024 * 1024, defaultService: 'imap', maxSessions: 10,
      })
      try {
        await host.submit(txn([{ name: 'MessageNew', mailbox: 'INBOX', uid: 1 }]))
        await host.submit(txn([{ name: 'MessageNew', mailbox: 'INBOX', uid: 2 }]))
        await host.close()
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
      return t.read()
    }

    it('mail_attribute_dict set: metadata persists in the host\'s store across transactions', async () => {
      const store = new MailStore()
      const lines = await runIn(`
        trace(r(user:metadata_get("/private/count")))
        user:metadata_set("/private/count", tostring((tonumber(user:metadata_get("/private/count")) or 0) + 1))`, { mail_attribute_dict: 'file:%h/dovecot-attributes' }, store)
      expect(lines).toEqual(['nil', '1'])
      expect(store.user('alice@example.test').serverMetadata.get('/private/count')).toBe('2')
    })

    it('mail_attribute_dict unset: "Mailbox attributes not enabled"', async () => {
      const lines = await runIn(`trace(r(pcall(user.metadata_get, user, "/private/x")))`, {}, new MailStore())
      expect(lines).toEqual(['false Mailbox attributes not enabled', 'false Mailbox attributes not enabled'])
    })
  })
}
