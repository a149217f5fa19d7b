// The mailbox object (user:mailbox, spec §4.1, src/lib-storage/mailbox-lua.c)
// over the simulated store, on both engines: fields and metatable, argument
// checks and error texts, open/close/free/sync, status() (every field, floats,
// items), \Recent claiming, mailbox metadata_*, and the status values a real
// Dovecot 2.3.19 recorded (fixtures/oracle, probe:mailbox_status).

import { beforeAll, afterAll, describe, expect, it } from 'vitest'
import pino from 'pino'
import { createEnvironment, type LuaEnvironment } from '../../../src/lua/environment.js'
import type { MailUser } from '../../../src/lua/dovecot/user.js'
import type { MessageFields } from '../../../src/mailstore/message.js'
import { MAIL_SEEN, MailStore, type UserStore } from '../../../src/mailstore/store.js'
import { engine, LEVEL, type LogLine } from '../../helpers/run-script.js'
import { runChunk } from '../../helpers/lua-env.js'
import { type Dump, readRecording } from '../../helpers/oracle.js'

const NOW = 1795634497 // the recorded INBOX's UIDVALIDITY
const FIELDS: MessageFields = {
  from: 'a@example.test', from_address: 'a@example.test', from_display_name: '', to: 'alice@example.test', to_address: 'alice@example.test',
  to_display_name: '', subject: 'hi', date: NOW, tz: 0, snippet: 'hi', message_id: '<1@example.test>',
}
const EML = 'From: a@example.test\r\nSubject: hi\r\n\r\nhi\r\n'

// Lua helpers: r(...) renders values space-separated; keys(t) sorted keys;
// st(t) a status (or any flat) table as sorted "k=<type>:<value>" with the number subtype;
// kv(t) a string table as sorted "k=v"; e(f, ...) the error of a failing pcall.
const PRELUDE = `
local S = dovecot.storage
local function r(...) local t = table.pack(...) for i = 1, t.n do t[i] = tostring(t[i]) end return table.concat(t, " ") end
local function keys(t) local o = {} for k in pairs(t) do o[#o+1] = tostring(k) end table.sort(o) return table.concat(o, ",") end
local function tv(v)
  if type(v) == "number" then return math.type(v) .. ":" .. string.format("%.17g", v) end
  if type(v) == "table" then local o = {} for i, x in ipairs(v) do o[i] = tv(x) end return "[" .. table.concat(o, ",") .. "]" end
  return type(v) .. ":" .. tostring(v)
end
local function st(t) local o = {} for k, v in pairs(t) do o[#o+1] = k .. "=" .. tv(v) end table.sort(o) return table.concat(o, " ") end
local function kv(t) local o = {} for k, v in pairs(t) do o[#o+1] = k .. "=" .. v end table.sort(o) return table.concat(o, " ; ") end
local function e(f, ...) local ok, err = pcall(f, ...) assert(not ok, "expected an error") return err end
`

/** The typed string of a recorded dump, as `st()` renders a Lua value. */
function typed(d: Dump): string {
  if (d.t === 'number') return `${d.n}:${String(d.v)}`
  if (d.t === 'table') {
    const v = d.v as Record<string, Dump>
    return `[${Object.keys(v).sort().map((k) => typed(v[k]!)).join(',')}]`
  }
  return `${d.t}:${String(d.v)}`
}
const typedTable = (d: Dump): string =>
  Object.entries(d.v as Record<string, Dump>).map(([k, v]) => `${k}=${typed(v)}`).sort().join(' ')

const RECORDING = readRecording('fixtures/oracle/dovecot-2.3.19.ndjson') as unknown as Array<{ call: string; service?: string; result?: Record<string, { ok: boolean; ret: Dump[] }> }>
const probe = (service: string) => RECORDING.find((l) => l.call === 'probe:mailbox_status' && l.service === service)!.result!

interface Lua {
  env: LuaEnvironment
  logs: LogLine[]
  /** A store with the clock at NOW. */
  store(): MailStore
  /** Makes `user` (global) the given user's object; settings feed user.setting(). */
  user(mail: UserStore, o?: { attributes?: boolean; session?: string; settings?: Record<string, string> }): MailUser
  /** Runs a chunk (after PRELUDE) and returns its results as strings. */
  run(src: string): string[]
}

function useLua(name: 'wasmoon' | 'fengari'): Lua {
  const logs: LogLine[] = []
  const lua = {} as Lua
  beforeAll(async () => {
    const log = pino({ level: 'debug' }, { write: (s: string) => void logs.push(JSON.parse(s) as LogLine) })
    lua.env = createEnvironment({ engine: await engine(name), scriptPath: '/nonexistent/script.lua', dovecot: '2.3', log, debug: false, callTimeoutMs: 0, memoryLimit: 0 })
  })
  afterAll(() => lua.env?.api.close())
  lua.logs = logs
  lua.store = () => new MailStore({ now: () => NOW })
  lua.user = (mail, o = {}) => {
    const settings = o.settings ?? {}
    const u: MailUser = {
      username: mail.username, home: undefined, uid: 1000, gid: 1000, service: 'imap', sessionId: o.session ?? 'lua-session',
      sessionCreateTime: NOW, mailDebug: false, setting: (k) => settings[k], mail, attributesEnabled: o.attributes ?? true,
    }
    lua.env.user.pushUser(lua.env.L, u)
    lua.env.api.setglobal(lua.env.L, 'user')
    return u
  }
  lua.run = (src) => runChunk(lua.env, src, PRELUDE)
  return lua
}

// recorded: probe:mailbox_status → alloc → mt.keys
const MAILBOX_MT = '__eq,__index,__le,__lt,__name,__tostring,close,free,metadata_get,metadata_list,metadata_set,metadata_unset,open,status,sync'

for (const engineName of ['wasmoon', 'fengari'] as const) {
  describe(`mailbox object (${engineName})`, () => {
    const lua = useLua(engineName)

    it('fields item, vname, name; metatable "struct mailbox" (__index = itself) with the recorded keys; item has only __gc; tostring is the vname', () => {
      lua.user(lua.store().user('alice@example.test'))
      expect(lua.run(`
        local mb = user:mailbox("INBOX")
        local mt = getmetatable(mb)
        return keys(mb), keys(mt), mt.__name, rawequal(mt.__index, mt), type(rawget(mb, "item")), keys(getmetatable(rawget(mb, "item"))),
          r(mb.vname, mb.name, tostring(mb))`)).toEqual(['item,name,vname', MAILBOX_MT, 'struct mailbox', 'true', 'userdata', '__gc', 'INBOX INBOX INBOX'])
    })

    it('vname: INBOX in any case is "INBOX"; name: the Maildir++ storage name ("/" → ".", modified UTF-7)', () => {
      lua.user(lua.store().user('alice@example.test'))
      expect(lua.run(`
        local function n(x) local mb = user:mailbox(x) return mb.vname .. "|" .. mb.name .. "|" .. tostring(mb) end
        return n("inbox"), n("iNbOx/Sub"), n("Inboxes"), n("Archive/2024"), n("Ärger/&Co"), n("日本語"), n(5)`)).toEqual([
        'INBOX|INBOX|INBOX',
        'INBOX/Sub|INBOX.Sub|INBOX/Sub',
        'Inboxes|Inboxes|Inboxes',
        'Archive/2024|Archive.2024|Archive/2024',
        'Ärger/&Co|&AMQ-rger.&-Co|Ärger/&Co',
        '日本語|&ZeVnLIqe-|日本語',
        '5|5|5',
      ])
    })

    it('user:mailbox only allocates: nothing is opened or created, a missing mailbox is no error yet', () => {
      const mail = lua.store().user('alice@example.test')
      lua.user(mail)
      expect(lua.run(`local a, b = user:mailbox("Nope"), user:mailbox("INBOX") return a.vname, b.vname`)).toEqual(['Nope', 'INBOX'])
      expect(mail.names()).toEqual([])
    })

    it('user:mailbox: arity, name and flags checks with Dovecot\'s and Lua\'s texts', () => {
      lua.user(lua.store().user('alice@example.test'))
      const out = lua.run(`return
        e(function() return user:mailbox() end),
        e(function() return user:mailbox("a", 1, 2) end),
        e(function() return user:mailbox({}) end),
        e(function() return user:mailbox("INBOX", "ro") end),
        e(function() return user:mailbox("INBOX", 1.5) end),
        e(function() return user.mailbox("INBOX", 1) end),
        e(function() return user:mailbox("\\xff") end),
        user:mailbox("INBOX", S.MAILBOX_FLAG_READONLY).vname, user:mailbox("INBOX", "4").vname`)
      expect(out.slice(0, 2)).toEqual(['expected 2 to 3 arguments, got 1', 'expected 2 to 3 arguments, got 4'])
      // luaL_checkstring / luaL_checkinteger keep their position
      expect(out[2]).toMatch(/^t:\d+: bad argument #1 to 'mailbox' \(string expected, got table\)$/)
      expect(out[3]).toMatch(/^t:\d+: bad argument #2 to 'mailbox' \(number expected, got string\)$/)
      expect(out[4]).toMatch(/^t:\d+: bad argument #2 to 'mailbox' \(number has no integer representation\)$/)
      expect(out[5]).toBe('Bad argument #1, expected struct mail_user got string')
      expect(out[6]).toContain('not valid UTF-8')
      expect(out.slice(7)).toEqual(['INBOX', 'INBOX'])
    })

    it('open: the missing mailbox error is Dovecot\'s exact text; INBOX is auto-created; open twice is fine', () => {
      const mail = lua.store().user('alice@example.test')
      lua.user(mail)
      expect(lua.run(`
        local mb = user:mailbox("INBOX")
        mb:open(); mb:open()
        return e(function() local m = user:mailbox("Nope"); m:open() end), select("#", mb:open())`)).toEqual([
        // out-session5-metadata.txt "T5 open missing: …"
        "mailbox_open(Nope) failed: Mailbox doesn't exist: Nope",
        '0',
      ])
      expect(mail.names()).toEqual(['INBOX'])
    })

    it('open: invalid names fail with mailbox_verify_name\'s texts', () => {
      lua.user(lua.store().user('alice@example.test'))
      expect(lua.run(`
        local o = {}
        for _, n in ipairs({ "a.b", "/etc", "a//b", "a/", "", "~x" }) do o[#o+1] = e(function() user:mailbox(n):open() end) end
        return table.unpack(o)`)).toEqual([
        "mailbox_open(a.b) failed: Character not allowed in mailbox name: '.'",
        'mailbox_open(/etc) failed: Invalid mailbox name: Begins with hierarchy separator',
        'mailbox_open(a//b) failed: Invalid mailbox name: Has adjacent hierarchy separators',
        'mailbox_open(a/) failed: Invalid mailbox name: Ends with hierarchy separator',
        'mailbox_open() failed: Invalid mailbox name: Name is empty',
        "mailbox_open(~x) failed: Invalid mailbox name: Begins with '~'",
      ])
    })

    it('open/close/sync/free: arity, sync flags, errors, and a freed mailbox', () => {
      const mail = lua.store().user('alice@example.test')
      mail.create('Work')
      lua.user(mail)
      const out = lua.run(`
        local mb = user:mailbox("Work")
        local a = { select("#", mb:sync()), select("#", mb:sync(S.MAILBOX_SYNC_FLAG_FULL_READ)), select("#", mb:close()), select("#", mb:close()) }
        local missing = user:mailbox("Nope")
        local errs = {
          e(mb.open, mb, 1), e(mb.close), e(mb.sync, mb, 1, 2), e(function() return mb:sync("fast") end), e(missing.sync, missing),
          e(mb.open, "Work"), e(mb.open, {}),
        }
        mb:free(); mb:free()
        return table.concat(a, ","), table.concat(errs, "\\n"), e(mb.status, mb, S.STATUS_MESSAGES), e(tostring, mb)`)
      expect(out[0]).toBe('0,0,0,0')
      const errs = out[1]!.split('\n')
      expect(errs[0]).toBe('expected 1 arguments, got 2')
      expect(errs[1]).toBe('expected 1 arguments, got 0')
      expect(errs[2]).toBe('expected 1 to 2 arguments, got 3')
      expect(errs[3]).toMatch(/^t:\d+: bad argument #1 to 'sync' \(number expected, got string\)$/)
      expect(errs[4]).toBe("mailbox_sync(Nope) failed: Mailbox doesn't exist: Nope")
      expect(errs[5]).toBe('Bad argument #1, expected struct mailbox got string')
      expect(errs[6]).toBe('Bad argument #1, expected struct mailbox got table')
      // Dovecot would dereference the NULL pointer free() left
      expect(out[2]).toContain('mailbox:status() after mailbox:free() crashes Dovecot')
      expect(out[3]).toContain('mailbox:__tostring() after mailbox:free()')
    })

    it('status: every field present, numbers floats, unrequested ones 0/false, keywords only with STATUS_KEYWORDS', () => {
      const mail = lua.store().user('alice@example.test')
      mail.create('INBOX') // first, so Work's UIDVALIDITY is NOW + 1
      const box = mail.create('Work')
      box.save(EML, FIELDS, 0, ['$Label1'], NOW)
      lua.user(mail)
      const out = lua.run(`
        local mb = user:mailbox("Work")
        local one = mb:status(S.STATUS_UNSEEN)
        local types = {}
        for k, v in pairs(one) do if type(v) == "number" then types[#types+1] = math.type(v) end end
        return st(one), table.concat(types, ","), st(mb:status(S.STATUS_KEYWORDS, S.STATUS_RECENT)), one.keywords`)
      expect(out[0]).toBe(
        'allow_new_keywords=boolean:false first_recent_uid=float:1 first_unseen_seq=float:0 flags=float:0 have_guids=boolean:true ' +
          'have_only_guid128=boolean:false have_save_guids=boolean:true highest_modseq=float:0 highest_pvt_modseq=float:0 mailbox=string:Work ' +
          'messages=float:1 no_modseq_tracking=boolean:false nonpermanent_modseqs=boolean:false permanent_flags=float:0 ' +
          'permanent_keywords=boolean:false recent=float:0 uidnext=float:2 uidvalidity=float:1795634498 unseen=float:1',
      )
      expect(out[1]).toBe(Array(11).fill('float').join(','))
      expect(out[2]).toContain('keywords=[string:$Label1]')
      expect(out[2]).toContain('recent=float:1')
      expect(out[2]).toContain('unseen=float:0')
      expect(out[3]).toBe('nil')
    })

    it('status: item checks, the error text with the OR-ed items, and items 0 (no open at all)', () => {
      const mail = lua.store().user('alice@example.test')
      lua.user(mail)
      const out = lua.run(`
        local mb, nope = user:mailbox("INBOX"), user:mailbox("Nope")
        return e(mb.status, mb), e(function() return mb:status("messages") end), e(function() return mb:status(1, 2.5) end), e(mb.status, "x", 1),
          e(nope.status, nope, S.STATUS_MESSAGES, S.STATUS_UNSEEN), e(nope.status, nope, -1),
          e(user:mailbox("a.b").status, user:mailbox("a.b"), 0), st(nope:status(0)), tostring(nope:status(0).keywords)`)
      expect(out[0]).toBe('expecting at least 1 parameter')
      // out-session2-api.txt "T2 status string arg": bad argument #1 to 'status' (number expected, got string)
      expect(out[1]).toMatch(/^t:\d+: bad argument #1 to 'status' \(number expected, got string\)$/)
      expect(out[2]).toMatch(/^t:\d+: bad argument #2 to 'status' \(number has no integer representation\)$/)
      expect(out[3]).toBe('Bad argument #1, expected struct mailbox got string')
      expect(out[4]).toBe("mailbox_get_status(Nope, 17) failed: Mailbox doesn't exist: Nope")
      expect(out[5]).toBe("mailbox_get_status(Nope, 4294967295) failed: Mailbox doesn't exist: Nope")
      expect(out[6]).toBe("mailbox_get_status(a.b, 0) failed: Character not allowed in mailbox name: '.'")
      expect(out[7]).toBe(
        'allow_new_keywords=boolean:false first_recent_uid=float:0 first_unseen_seq=float:0 flags=float:0 have_guids=boolean:true ' +
          'have_only_guid128=boolean:false have_save_guids=boolean:true highest_modseq=float:0 highest_pvt_modseq=float:0 mailbox=string:Nope ' +
          'messages=float:0 no_modseq_tracking=boolean:false nonpermanent_modseqs=boolean:false permanent_flags=float:0 ' +
          'permanent_keywords=boolean:false recent=float:0 uidnext=float:0 uidvalidity=float:0 unseen=float:0',
      )
      expect(out[8]).toBe('nil')
      expect(mail.names()).toEqual([])
    })

    it('status after store changes: 3 saved, one \\Seen, recent claimed by an IMAP SELECT, then a 4th delivered', () => {
      const mail = lua.store().user('alice@example.test')
      mail.create('INBOX') // first, so Work's UIDVALIDITY is NOW + 1
      const box = mail.create('Work')
      const [m1] = [box.save(EML, FIELDS, 0, [], NOW), box.save(EML, FIELDS, 0, ['$Label1'], NOW), box.save(EML, FIELDS, 0, [], NOW)]
      m1!.flags |= MAIL_SEEN
      box.claimRecent('imap-session') // IMAP SELECT (MAILBOX_FLAG_DROP_RECENT) in another session
      box.save(EML, FIELDS, 0, [], NOW)
      lua.user(mail)
      const [s] = lua.run(`return st(user:mailbox("Work"):status(S.STATUS_MESSAGES, S.STATUS_RECENT, S.STATUS_UIDNEXT, S.STATUS_UIDVALIDITY,
        S.STATUS_UNSEEN, S.STATUS_FIRST_UNSEEN_SEQ, S.STATUS_KEYWORDS, S.STATUS_HIGHESTMODSEQ, S.STATUS_PERMANENT_FLAGS,
        S.STATUS_FIRST_RECENT_UID, S.STATUS_HIGHESTPVTMODSEQ))`)
      expect(s).toBe(
        'allow_new_keywords=boolean:true first_recent_uid=float:4 first_unseen_seq=float:2 flags=float:31 have_guids=boolean:true ' +
          'have_only_guid128=boolean:false have_save_guids=boolean:true highest_modseq=float:5 highest_pvt_modseq=float:0 ' +
          'keywords=[string:$Label1] mailbox=string:Work messages=float:4 no_modseq_tracking=boolean:true nonpermanent_modseqs=boolean:false ' +
          'permanent_flags=float:31 permanent_keywords=boolean:true recent=float:1 uidnext=float:5 uidvalidity=float:1795634498 unseen=float:3',
      )
    })

    it('\\Recent: a plain open sees but does not claim; MAILBOX_FLAG_DROP_RECENT claims for the session; READONLY drops permanent flags', () => {
      const mail = lua.store().user('alice@example.test')
      const box = mail.create('Work')
      box.save(EML, FIELDS, 0, [], NOW)
      box.save(EML, FIELDS, 0, [], NOW)
      lua.user(mail, { session: 'S-lua' })
      const plain = lua.run(`local mb = user:mailbox("Work") mb:sync() return mb:status(S.STATUS_RECENT).recent`)
      expect(plain).toEqual(['2.0'])
      expect(box.firstRecentUid).toBe(1)
      const out = lua.run(`
        local d = user:mailbox("Work", S.MAILBOX_FLAG_DROP_RECENT)
        d:sync()
        local other = user:mailbox("Work")
        local ro = user:mailbox("Work", S.MAILBOX_FLAG_READONLY)
        return d:status(S.STATUS_RECENT).recent, other:status(S.STATUS_RECENT).recent,
          st(ro:status(S.STATUS_PERMANENT_FLAGS)):match("allow_new_keywords=%S+") .. " " .. ro:status(S.STATUS_PERMANENT_FLAGS).permanent_flags
            .. " " .. ro:status(S.STATUS_PERMANENT_FLAGS).flags .. " " .. tostring(ro:status(S.STATUS_PERMANENT_FLAGS).permanent_keywords)`)
      expect(out).toEqual(['2.0', '0.0', 'allow_new_keywords=boolean:false 0.0 31.0 false'])
      expect(box.firstRecentUid).toBe(3)
      expect([...box.recentOwner.values()]).toEqual(['S-lua', 'S-lua'])
      // a message delivered later is recent for everybody until claimed again
      box.save(EML, FIELDS, 0, [], NOW)
      expect(lua.run(`return user:mailbox("Work"):status(S.STATUS_RECENT, S.STATUS_FIRST_RECENT_UID).recent`)).toEqual(['1.0'])
    })

    it('status(STATUS_RECENT) on a DROP_RECENT mailbox opened but never synced (a Dovecot assert) logs an error and syncs', () => {
      const mail = lua.store().user('alice@example.test')
      mail.create('Work').save(EML, FIELDS, 0, [], NOW)
      lua.user(mail)
      lua.logs.length = 0
      expect(lua.run(`local d = user:mailbox("Work", S.MAILBOX_FLAG_DROP_RECENT) d:open() return d:status(S.STATUS_RECENT).recent`)).toEqual(['1.0'])
      const errors = lua.logs.filter((l) => l.level >= LEVEL.error).map((l) => l.msg)
      expect(errors).toHaveLength(1)
      expect(errors[0]).toMatch(/^lua: .*aborts Dovecot 2\.3\.19 \(i_assert\(box->synced\)\)/)
    })

    it('close drops what the object saw; status reopens (and syncs) a closed mailbox', () => {
      const mail = lua.store().user('alice@example.test')
      const box = mail.create('Work')
      box.save(EML, FIELDS, 0, [], NOW)
      lua.user(mail)
      const out = lua.run(`
        local mb = user:mailbox("Work")
        mb:open()
        local before = mb:status(S.STATUS_MESSAGES).messages
        mb:close()
        return before, mb:status(S.STATUS_MESSAGES, S.STATUS_RECENT).recent`)
      expect(out).toEqual(['1.0', '1.0'])
      // deleted under an open mailbox object: it reopens by name and fails
      const [err] = lua.run(`WORK = user:mailbox("Work") WORK:open() return true`) && (mail.delete('Work'), lua.run(`return e(WORK.status, WORK, S.STATUS_MESSAGES)`))
      expect(err).toBe("mailbox_get_status(Work, 1) failed: Mailbox doesn't exist: Work")
    })

    describe('recorded probe:mailbox_status (user:mailbox("INBOX"), sync, two status calls, free): same state, same tables', () => {
      const runProbe = (): string[] =>
        lua.run(`
          local mb = user:mailbox("INBOX")
          local sync = table.pack(pcall(mb.sync, mb))
          local s1 = mb:status(S.STATUS_MESSAGES, S.STATUS_UNSEEN, S.STATUS_RECENT, S.STATUS_UIDVALIDITY, S.STATUS_UIDNEXT)
          local s2 = mb:status(S.STATUS_HIGHESTMODSEQ, S.STATUS_KEYWORDS, S.STATUS_PERMANENT_FLAGS, S.STATUS_FIRST_UNSEEN_SEQ)
          local free = table.pack(mb:free())
          return r(sync[1], sync.n, free.n), st(s1), st(s2)`)
      const expected = (service: string): string[] => {
        const p = probe(service)
        return [`${p.sync!.ok} ${p.sync!.ret.length + 1} ${p.free!.ret.length}`, typedTable(p.status!.ret[0]!), typedTable(p.status_more!.ret[0]!)]
      }

      it('lmtp, first delivery: INBOX just created and empty', () => {
        const mail = lua.store().user('alice@example.test')
        mail.create('INBOX')
        lua.user(mail)
        expect(runProbe()).toEqual(expected('lmtp'))
      })

      it('imap APPEND: two LMTP deliveries nobody claimed, the appended keyword already in the index', () => {
        const mail = lua.store().user('alice@example.test')
        const inbox = mail.create('INBOX')
        inbox.save(EML, FIELDS, 0, [], NOW)
        inbox.save(EML, FIELDS, 0, [], NOW)
        inbox.addKeywords(['$Appended'])
        lua.user(mail, { session: 'imap-1' })
        expect(runProbe()).toEqual(expected('imap'))
      })

      it('doveadm: uid 1 seen and claimed by IMAP SELECT, 2 and 3 expunged, uid 4 delivered after', () => {
        const mail = lua.store().user('alice@example.test')
        const inbox = mail.create('INBOX')
        inbox.save(EML, FIELDS, 0, [], NOW)
        inbox.save(EML, FIELDS, 0, [], NOW)
        inbox.save(EML, FIELDS, 0x10, ['$Appended'], NOW)
        inbox.claimRecent('imap-1')
        inbox.messages.find((m) => m.uid === 1)!.flags |= MAIL_SEEN
        inbox.addKeywords(['$Label1'])
        inbox.expunge(2)
        inbox.expunge(3)
        inbox.save(EML, FIELDS, 0, [], NOW)
        // the flag, keyword, copy and move changes of the recorded IMAP session also moved the modseq
        // (what bumps it is actions.ts's business): take the recorded value
        inbox.highestModseq = 13
        lua.user(mail, { session: 'doveadm-1' })
        expect(runProbe()).toEqual(expected('doveadm'))
      })
    })

    it('__eq is mailbox identity (vname, INBOX in any case); __lt/__le crash Dovecot: logged, answered by vname', () => {
      lua.user(lua.store().user('alice@example.test'))
      lua.logs.length = 0
      expect(lua.run(`
        local a, b, c = user:mailbox("INBOX"), user:mailbox("inbox"), user:mailbox("Work")
        return r(a == b, a == c, c == user:mailbox("Work"), a == user, rawequal(a, b)), r(a < c, c < a)`)).toEqual(['true false true false false', 'true false'])
      const errors = lua.logs.filter((l) => l.level >= LEVEL.error).map((l) => l.msg)
      expect(errors).toHaveLength(2)
      for (const m of errors) expect(m).toContain('crashes Dovecot')
    })

    describe('mailbox metadata_* (keys as given)', () => {
      it('INBOX: own keys, server metadata under the long key, internal attributes (recorded session 5 list)', () => {
        const mail = lua.store().user('alice@example.test')
        lua.user(mail)
        const out = lua.run(`
          user:metadata_set("/private/foo/sub", "baz")
          local mb = user:mailbox("INBOX")
          mb:open()
          mb:metadata_set("/private/mbkey", "mbval")
          return mb:metadata_get("/private/mbkey"), kv(mb:metadata_list("/private/")), kv(mb:metadata_list("/shared/")),
            mb:metadata_get("/private/vendor/vendor.dovecot/pvt/server/foo/sub")`)
        expect(out).toEqual([
          'mbval',
          // out-session5-metadata.txt "T5 mbox get=mbval list=…"
          '/private/comment= ; /private/mbkey=mbval ; /private/specialuse= ; /private/vendor/vendor.dovecot/pvt/server/foo/sub=baz',
          '/shared/comment= ; /shared/vendor/vendor.dovecot/pvt/server/admin= ; /shared/vendor/vendor.dovecot/pvt/server/comment=',
          'baz',
        ])
        expect(mail.get('INBOX')!.metadata).toEqual(new Map([['/private/mbkey', 'mbval']]))
        // the server subtree of INBOX is the user's metadata
        lua.run(`local mb = user:mailbox("INBOX") mb:open() mb:metadata_set("/shared/vendor/vendor.dovecot/pvt/server/x", "y")`)
        expect(lua.run(`return user:metadata_get("/shared/x")`)).toEqual(['y'])
      })

      it('another mailbox: several keys round trip; nil unsets; the vendor server keys are ordinary there', () => {
        const mail = lua.store().user('alice@example.test')
        const box = mail.create('Work')
        lua.user(mail)
        const out = lua.run(`
          local mb = user:mailbox("Work")
          mb:open()
          mb:metadata_set("/private/a", "1")
          mb:metadata_set("/private/a/b", 2)
          mb:metadata_set("/shared/c", "three")
          mb:metadata_set("/private/vendor/vendor.dovecot/pvt/server/s", "v")
          local got = table.pack(mb:metadata_get("/private/a", "/private/a/b", "/private/none", "/shared/c"))
          local l1 = kv(mb:metadata_list("/private/", "/shared/"))
          mb:metadata_set("/private/a", nil)
          mb:metadata_unset("/shared/c")
          return r(table.unpack(got, 1, got.n)), got.n, l1, kv(mb:metadata_list("/private/a")), kv(mb:metadata_list("/shared/"))`)
        expect(out).toEqual([
          '1 2 nil three',
          '4',
          '/private/a/b=2 ; /private/a=1 ; /private/comment= ; /private/specialuse= ; /private/vendor/vendor.dovecot/pvt/server/s=v ; /shared/c=three ; /shared/comment=',
          '/private/a/b=2',
          '/shared/comment=',
        ])
        expect([...box.metadata.keys()].sort()).toEqual(['/private/a/b', '/private/vendor/vendor.dovecot/pvt/server/s'])
        expect(mail.serverMetadata.size).toBe(0)
      })

      it('errors: arity, key types, the prefix rule, NULs, read-only internal attributes, and the wrapped texts', () => {
        const mail = lua.store().user('alice@example.test')
        mail.create('Work')
        lua.user(mail)
        const out = lua.run(`
          local mb = user:mailbox("Work")
          mb:open()
          return e(mb.metadata_get, mb), e(mb.metadata_get, mb, "/private/a", {}), e(mb.metadata_get, mb, "private/a"),
            e(mb.metadata_set, mb, "/private/a"), e(mb.metadata_set, mb, "a", "v"), e(mb.metadata_set, mb, "/private/a", "x\\0y"),
            e(mb.metadata_set, mb, "/private/specialuse", "\\\\Junk"), e(mb.metadata_unset, mb, "shared/x"), e(mb.metadata_unset, mb, "x"),
            e(mb.metadata_list, mb), e(mb.metadata_list, mb, "/private/", true), e(mb.metadata_list, mb, "private"),
            e(function() return mb:metadata_set({}, "v") end), select("#", mb:metadata_unset("/shared/"))`)
        expect(out.slice(0, 12)).toEqual([
          'expecting at least 1 parameter',
          'expected string at #3',
          'Invalid key prefix, must be /private/ or /shared/',
          'expected 3 arguments, got 2',
          'Cannot set attribute: Invalid key prefix, must be /private/ or /shared/',
          'Cannot set attribute: Attribute string value has NULs',
          'Cannot set attribute: The /private/specialuse attribute cannot be changed',
          'Cannot unset attribute: Invalid key prefix, must be /private/ or /shared/',
          'Cannot unset attribute: Invalid key prefix, must be /private/ or /shared/',
          'expecting at least 1 parameter',
          'expected string at #3',
          'Invalid key prefix, must be /private/ or /shared/',
        ])
        expect(out[12]).toMatch(/^t:\d+: bad argument #1 to 'metadata_set' \(string expected, got table\)$/)
        // the key "" after the prefix is a key like any other
        expect(out[13]).toBe('0')
      })

      it('without mail_attribute_dict: get/set fail, read-only internal attributes still answer, list shows only them', () => {
        const mail = lua.store().user('alice@example.test')
        mail.create('Work')
        lua.user(mail, { attributes: false })
        expect(lua.run(`
          local mb = user:mailbox("Work")
          mb:open()
          return e(mb.metadata_get, mb, "/private/a"), e(mb.metadata_set, mb, "/private/a", "v"), e(mb.metadata_unset, mb, "/shared/a"),
            tostring(mb:metadata_get("/private/specialuse")), kv(mb:metadata_list("/private/")), kv(mb:metadata_list("/shared/")),
            e(mb.metadata_get, mb, "/private/comment")`)).toEqual([
          'Mailbox attributes not enabled',
          'Cannot set attribute: Mailbox attributes not enabled',
          'Cannot unset attribute: Mailbox attributes not enabled',
          'nil',
          '/private/specialuse=',
          '',
          'Mailbox attributes not enabled',
        ])
      })

      it('a missing mailbox: get and list fail with the open error; get opens the mailbox like Dovecot', () => {
        const mail = lua.store().user('alice@example.test')
        mail.create('Work')
        lua.user(mail)
        expect(lua.run(`
          local nope, w = user:mailbox("Nope"), user:mailbox("Work")
          local v = w:metadata_get("/private/x")
          return e(nope.metadata_get, nope, "/private/x"), e(nope.metadata_list, nope, "/private/"), tostring(v), tostring(nope:metadata_get("/private/specialuse"))`)).toEqual([
          "Mailbox doesn't exist: Nope",
          "Mailbox doesn't exist: Nope",
          'nil',
          'nil',
        ])
      })

      it('set/unset on a mailbox not opened (a Dovecot assert) log an error and open it; each change grows the modseq', () => {
        const mail = lua.store().user('alice@example.test')
        const box = mail.create('Work')
        lua.user(mail)
        lua.logs.length = 0
        const before = box.highestModseq
        expect(lua.run(`
          local mb = user:mailbox("Work")
          mb:metadata_set("/private/a", "1")
          mb:metadata_unset("/private/a")
          mb:metadata_set("/private/b", "2")
          local nope = user:mailbox("Nope")
          return mb:metadata_get("/private/b"), e(nope.metadata_set, nope, "/private/a", "1")`)).toEqual(['2', "Cannot set attribute: Mailbox doesn't exist: Nope"])
        expect(box.highestModseq).toBe(before + 3)
        const errors = lua.logs.filter((l) => l.level >= LEVEL.error).map((l) => l.msg)
        // once for Work (then open), once for Nope
        expect(errors).toHaveLength(2)
        expect(errors[0]).toMatch(/^lua: mailbox:metadata_set\(\) on a mailbox that is not open aborts Dovecot 2\.3\.19/)
      })
    })

    it('host functions are made once per state: many mailbox objects and calls add none', () => {
      const mail = lua.store().user('alice@example.test')
      mail.create('Work')
      lua.user(mail)
      lua.run(`local mb = user:mailbox("Work") mb:status(1) mb:metadata_list("/private/")`)
      const before = lua.env.api.hostFunctions
      lua.run(`for i = 1, 50 do local mb = user:mailbox("Work") mb:open() mb:sync() mb:status(S.STATUS_MESSAGES, S.STATUS_KEYWORDS) mb:metadata_set("/private/k", "v") mb:metadata_list("/private/") mb:free() end`)
      expect(lua.env.api.hostFunctions).toBe(before)
    })
  })
}
