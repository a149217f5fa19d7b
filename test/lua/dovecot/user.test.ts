// The mail_user object passed to dovecot_lua_notify_begin_txn (spec §3) on
// both engines: fields and their Lua types, the metatable, plugin_getenv,
// var_expand (2.3 syntax), the comparison metamethods that crash Dovecot;
// mailbox() and metadata_* in short (mailbox.test.ts, user-metadata.test.ts).

import { describe, expect, it } from 'vitest'
import { type BeginTxnOptions, inBeginTxn } from '../../helpers/begin-txn.js'
import { LEVEL, txn } from '../../helpers/run-script.js'
import { KEYS_AND_R, traceScripts } from '../../helpers/trace.js'

/** Lua prelude: `trace(s)` appends a line to a file; `keys(t)` lists sorted keys; `r(ok, ...)` renders a pcall result. */
const withTrace = traceScripts('dovepush-user-', KEYS_AND_R)

const NEW = { name: 'MessageNew', mailbox: 'INBOX', uid: 1 }

/** Runs `body` inside begin_txn of one transaction (or of `o.units`). */
const inTxn = (body: string, engine: 'wasmoon' | 'fengari', o: BeginTxnOptions = {}) => inBeginTxn(withTrace, body, engine, o)

// out-session2-api.txt "T2 begin_txn args user type=table keys=… mt=…"
const USER_KEYS_23 = 'admin,anonymous,autocreated,dsyncing,fuzzy_search,gid,home,item,mail_debug,nonexistent,service,session_create_time,session_id,session_restored,uid,username'
const USER_MT_23 = '__eq,__index,__le,__lt,__name,__tostring,mailbox,metadata_get,metadata_list,metadata_set,metadata_unset,plugin_getenv,var_expand'

for (const engine of ['wasmoon', 'fengari'] as const) {
  describe(`mail_user object (${engine})`, () => {
    it('2.3: exactly the recorded field names and metatable keys; metatable "struct mail_user" with __index = itself', async () => {
      const { lines } = await inTxn(`
        local mt = getmetatable(user)
        trace("T2 begin_txn args user type=" .. type(user) .. " keys=" .. keys(user) .. " mt=" .. keys(mt))
        trace(r(mt.__name, rawequal(mt.__index, mt), type(rawget(user, "item")), keys(getmetatable(rawget(user, "item")))))`, engine, { settings: { mail_home: '/home/%n' } })
      expect(lines).toEqual([`T2 begin_txn args user type=table keys=${USER_KEYS_23} mt=${USER_MT_23}`, 'struct mail_user true userdata __gc'])
    })

    it('2.4: no mail_debug field and no plugin_getenv method', async () => {
      const { lines } = await inTxn(`
        trace(keys(user))
        trace(keys(getmetatable(user)))
        trace(r(user.plugin_getenv, user.mail_debug))
        trace(r(pcall(function() return user:plugin_getenv("x") end)))`, engine, { dovecot: '2.4', settings: { mail_home: '/home/%n' } })
      expect(lines[0]).toBe(USER_KEYS_23.replace('mail_debug,', ''))
      expect(lines[1]).toBe(USER_MT_23.replace('plugin_getenv,', ''))
      expect(lines[2]).toBe('nil nil')
      expect(lines[3]).toMatch(/^false .*script\.lua:\d+: attempt to call a nil value \(method 'plugin_getenv'\)$/)
    })

    it('field types: numbers are floats, state bits booleans, strings; there is no session_created', async () => {
      const { lines } = await inTxn(`
        trace(r(user.username, math.type(user.uid), math.type(user.gid), math.type(user.session_create_time), type(user.session_id), type(user.service)))
        trace(r(user.uid == math.floor(user.uid), user.session_create_time > 1.6e9, user.session_created))
        trace(r(user.nonexistent, user.anonymous, user.autocreated, user.fuzzy_search, user.dsyncing, user.admin, user.session_restored, user.mail_debug))
        trace(r(#user.session_id))`, engine)
      expect(lines).toEqual([
        'alice@example.test float float float string string',
        'true true nil',
        'false false false false false false false false',
        '22',
      ])
    })

    it('mail_uid / mail_gid / mail_debug settings fill uid, gid (floats) and mail_debug', async () => {
      const { lines } = await inTxn(`trace(r(user.uid, user.gid, user.mail_debug))`, engine, { settings: { mail_uid: '1000', mail_gid: '8', mail_debug: 'yes' } })
      expect(lines).toEqual(['1000.0 8.0 true'])
    })

    it('home is nil without mail_home, and the expanded mail_home with it', async () => {
      const none = await inTxn(`trace(r(user.home, type(user.home)))`, engine)
      expect(none.lines).toEqual(['nil nil'])
      const set = await inTxn(`trace(r(user.home))`, engine, { settings: { mail_home: '/var/vmail/%d/%n' } })
      expect(set.lines).toEqual(['/var/vmail/example.test/alice'])
    })

    it('tostring(user) is the username', async () => {
      const { lines } = await inTxn(`trace(r(tostring(user), "[" .. tostring(user) .. "]" == "[alice@example.test]"))`, engine)
      expect(lines).toEqual(['alice@example.test true'])
    })

    it('the service field follows the transaction (default imap)', async () => {
      const { lines } = await inTxn(`trace(user.service)`, engine, {
        units: [txn([NEW]), txn([NEW], { service: 'lmtp' }), txn([NEW], { service: 'pop3', user: 'bob@example.test' })],
      })
      expect(lines).toEqual(['imap', 'lmtp', 'pop3'])
    })

    it('plugin_getenv: the setting, nil when missing, settings are var-expanded; exact arity', async () => {
      const { lines } = await inTxn(`
        trace(r(user:plugin_getenv("push_test_key"), user:plugin_getenv("nonexistent_key"), select("#", user:plugin_getenv("nonexistent_key"))))
        trace(r(user:plugin_getenv("push_url")))
        trace(r(pcall(function() return user:plugin_getenv() end)))
        trace(r(pcall(function() return user:plugin_getenv("a", "b") end)))`, engine, { settings: { push_test_key: 'push test value', push_url: 'https://push.example/%n' } })
      expect(lines).toEqual([
        'push test value nil 1',
        'https://push.example/alice',
        // DLUA_REQUIRE_ARGS(L, 2) through dluaL_error: no position
        'false expected 2 arguments, got 1',
        'false expected 2 arguments, got 3',
      ])
    })

    it('var_expand: the 2.3 variables, modifiers, width, %% and unknown variables', async () => {
      const { lines } = await inTxn(`
        local function x(tpl) trace(tpl .. " => " .. user:var_expand(tpl)) end
        x("%u %d %n")
        x("%h")
        x("%s")
        x("%Lu")
        x("%Uu")
        x("%{user}")
        x("%{username}@%{domain} %{home} %{service}")
        x("%Q")
        x("%{foo}")
        x("%X")
        x("%%")
        x("100%% %3n")
        x("%-4.n")
        x("%1.3n")
        x("%{userdb:nokey:dflt}")`, engine, { settings: { mail_home: '/var/vmail/%d/%n' } })
      expect(lines).toEqual([
        '%u %d %n => alice@example.test example.test alice',
        '%h => /var/vmail/example.test/alice',
        '%s => imap',
        '%Lu => alice@example.test',
        '%Uu => ALICE@EXAMPLE.TEST',
        '%{user} => alice@example.test',
        '%{username}@%{domain} %{home} %{service} => alice@example.test /var/vmail/example.test/alice imap',
        '%Q => UNSUPPORTED_VARIABLE_Q',
        '%{foo} => UNSUPPORTED_VARIABLE_foo',
        // X is a modifier (hex); the string ends before a key, so var-expand.c breaks out: nothing
        '%X => ',
        '%% => %',
        '100%% %3n => 100% ali',
        '%-4.n => lice',
        '%1.3n => lic',
        '%{userdb:nokey:dflt} => dflt',
      ])
    })

    it('var_expand: %h is empty without a home; arity errors; numbers accepted as templates', async () => {
      const { lines } = await inTxn(`
        trace("[" .. user:var_expand("%h") .. "]")
        trace(r(user:var_expand(5), math.type(5)))
        trace(r(pcall(function() return user:var_expand() end)))
        trace(r(pcall(function() return user.var_expand("%u", "%n") end)))`, engine)
      expect(lines).toEqual([
        '[]',
        '5 integer',
        'false expected 2 arguments, got 1',
        'false Bad argument #1, expected struct mail_user got string',
      ])
    })

    it('comparing user objects (which crashes Dovecot) returns a boolean and logs an error saying so; rawequal works', async () => {
      const { lines, run } = await inTxn(`
        if KEPT == nil then KEPT = user; trace(r(rawequal(user, user), user == user)); return end
        local eq, lt = KEPT == user, KEPT < user
        trace(r(type(eq), type(lt), rawequal(KEPT, user), KEPT.username == user.username))`, engine, { units: [txn([NEW]), txn([NEW])] })
      expect(lines).toEqual(['true true', 'boolean boolean false true'])
      const errors = run.messages(LEVEL.error)
      expect(errors).toHaveLength(2)
      for (const e of errors) expect(e).toContain('crashes Dovecot')
      expect(errors[0]).toContain('==')
      expect(errors[1]).toContain('<')
    })

    it('user:mailbox returns a "struct mailbox" object; metadata_* need mail_attribute_dict (details: mailbox.test.ts, user-metadata.test.ts)', async () => {
      const { lines } = await inTxn(`
        local mb = user:mailbox("INBOX")
        trace(r(getmetatable(mb).__name, mb.vname, mb.name))
        trace(r(pcall(function() return user:metadata_get("/private/x") end)))
        trace(r(pcall(function() return user:metadata_set("/private/x", "v") end)))
        trace(r(pcall(function() return user:mailbox() end)))`, engine)
      expect(lines).toEqual([
        'struct mailbox INBOX INBOX',
        // out-session2-api.txt "T2 metadata_get" / "T2 metadata_set" (no mail_attribute_dict)
        'false Mailbox attributes not enabled',
        'false Cannot get attribute: Mailbox attributes not enabled',
        // DLUA_REQUIRE_ARGS_IN(L, 2, 3)
        'false expected 2 to 3 arguments, got 1',
      ])
    })
  })
}
