// The transaction rules of spec §1.4/§1.5 and checklist §12 items 1-3 and 6,
// on both engines. Each test runs a real script through the Host and checks
// what the script recorded (a global list read back via a file) and the log.

import { describe, expect, it } from 'vitest'
import type { TransactionUnit } from '../../src/events/types.js'
import { LEVEL, runScript } from '../helpers/run-script.js'
import { traceScripts } from '../helpers/trace.js'

/** Lua prelude: `trace(s)` appends a line to a file the test reads back. */
const withTrace = traceScripts('dovepush-rules-')

const NEW = { name: 'MessageNew', mailbox: 'INBOX', uid: 7, uid_validity: 1700000000, date: 1700000100, tz: 120, from: 'Alice <alice@example.test>', to: 'bob@example.test', from_address: 'alice@example.test', from_display_name: 'Alice', to_address: 'bob@example.test', to_display_name: '', subject: 'Hi', snippet: 'Hello', message_id: '<1@example.test>', flags: [], keywords: ['$Label1'] }
const txn = (events: object[], extra: object = {}): TransactionUnit => ({ user: 'alice@example.test', committed: true, events, ...extra }) as unknown as TransactionUnit

for (const engine of ['wasmoon', 'fengari'] as const) {
  describe(`transaction rules (${engine})`, () => {
    it('calls begin_txn(user), the event with (ctx, event), end_txn(ctx, true), in order, with the very ctx', async () => {
      const t = withTrace(`
        local CTX = {}
        function dovecot_lua_notify_begin_txn(user) trace("begin " .. type(user) .. " " .. user.username); return CTX end
        function dovecot_lua_notify_event_message_new(ctx, ev) trace("new " .. tostring(rawequal(ctx, CTX)) .. " " .. ev.name .. " " .. ev.mailbox .. " " .. math.type(ev.uid) .. " " .. tostring(ev.uid)) end
        function dovecot_lua_notify_end_txn(ctx, ok) trace("end " .. tostring(rawequal(ctx, CTX)) .. " " .. tostring(ok) .. " " .. type(ok)) end`)
      await runScript({ source: t.source }, [txn([NEW])], { engine })
      expect(t.read()).toEqual(['begin table alice@example.test', 'new true MessageNew INBOX float 7.0', 'end true true boolean'])
    })

    it('passes a nil ctx through to events and end_txn', async () => {
      const t = withTrace(`
        function dovecot_lua_notify_begin_txn(user) end
        function dovecot_lua_notify_event_message_new(ctx, ev) trace("new " .. type(ctx) .. " " .. select("#", ctx, ev)) end
        function dovecot_lua_notify_end_txn(...) trace("end " .. select("#", ...) .. " " .. type((...))) end`)
      await runScript({ source: t.source }, [txn([NEW])], { engine })
      expect(t.read()).toEqual(['new nil 2', 'end 2 nil'])
    })

    it('rolled back: begin_txn, then end_txn(ctx, false), no events', async () => {
      const t = withTrace(`
        function dovecot_lua_notify_begin_txn(user) trace("begin"); return 1 end
        function dovecot_lua_notify_event_message_append(ctx, ev) trace("append") end
        function dovecot_lua_notify_end_txn(ctx, ok) trace("end " .. tostring(ctx) .. " " .. tostring(ok)) end`)
      await runScript({ source: t.source }, [txn([{ ...NEW, name: 'MessageAppend' }], { committed: false })], { engine })
      expect(t.read()).toEqual(['begin', 'end 1 false'])
    })

    it('missing begin_txn: an error every transaction, nothing called, even without event handlers', async () => {
      const t = withTrace(`function dovecot_lua_notify_end_txn() trace("end") end`)
      const run = await runScript({ source: t.source }, [txn([NEW]), txn([NEW])], { engine })
      expect(t.read()).toEqual([])
      expect(run.messages(LEVEL.error)).toEqual(['lua: Missing function dovecot_lua_notify_begin_txn', 'lua: Missing function dovecot_lua_notify_begin_txn'])
      expect(run.host.stats.errors.missing_function).toBe(2)
    })

    it('no event functions: begin_txn and end_txn are never called', async () => {
      const t = withTrace(`
        function dovecot_lua_notify_begin_txn() trace("begin") end
        function dovecot_lua_notify_end_txn() trace("end") end`)
      const run = await runScript({ source: t.source }, [txn([NEW])], { engine })
      expect(t.read()).toEqual([])
      expect(run.messages(LEVEL.debug)).toContain('lua: No event handlers found in script')
      expect(run.messages(LEVEL.warn)).toEqual([])
    })

    it('a transaction none of whose events has a handler still gets begin_txn and end_txn(true)', async () => {
      const t = withTrace(`
        function dovecot_lua_notify_begin_txn() trace("begin") end
        function dovecot_lua_notify_event_message_new() trace("new") end
        function dovecot_lua_notify_end_txn(ctx, ok) trace("end " .. tostring(ok)) end`)
      await runScript({ source: t.source }, [txn([{ name: 'MailboxCreate', mailbox: 'INBOX' }])], { engine })
      expect(t.read()).toEqual(['begin', 'end true'])
    })

    it('missing end_txn: an error every transaction, events still run', async () => {
      const t = withTrace(`
        function dovecot_lua_notify_begin_txn() end
        function dovecot_lua_notify_event_message_new() trace("new") end`)
      const run = await runScript({ source: t.source }, [txn([NEW])], { engine })
      expect(t.read()).toEqual(['new'])
      expect(run.messages(LEVEL.error)).toEqual(['lua: Missing function dovecot_lua_notify_end_txn'])
    })

    it('an error in an event function is logged with a traceback; the other events and end_txn still run', async () => {
      const t = withTrace(`
        function dovecot_lua_notify_begin_txn() end
        function dovecot_lua_notify_event_message_new(ctx, ev)
          if ev.uid == 1 then error("boom") end
          trace("new " .. ev.uid)
        end
        function dovecot_lua_notify_end_txn(ctx, ok) trace("end " .. tostring(ok)) end`)
      const run = await runScript({ source: t.source }, [txn([{ ...NEW, uid: 1 }, { ...NEW, uid: 2 }])], { engine })
      expect(t.read()).toEqual(['new 2.0', 'end true'])
      const [err] = run.messages(LEVEL.error)
      const file = run.logs.find((l) => l.level === LEVEL.error)!
      // Dovecot's exact text (recorded); fengari exception: it names C functions [JS]
      const c = engine === 'fengari' ? 'JS' : 'C'
      expect(err).toBe(`lua: lua_pcall(dovecot_lua_notify_event_message_new, 2, 0) failed: ${run.scriptPath}:5: boom\nstack traceback:\n\t[${c}]: in function 'error'\n\t${run.scriptPath}:5: in function 'dovecot_lua_notify_event_message_new'`)
      expect(file).toMatchObject({ function_name: 'dovecot_lua_notify_event_message_new', event_name: 'MessageNew', mailbox: 'INBOX', uid: 1 })
      expect(run.host.stats.errors.script).toBe(1)
    })

    it('an error in begin_txn skips the transaction (no events, no end_txn) and the host keeps running', async () => {
      const t = withTrace(`
        local first = true
        function dovecot_lua_notify_begin_txn() if first then first = false; error("no begin") end; trace("begin") end
        function dovecot_lua_notify_event_message_new() trace("new") end
        function dovecot_lua_notify_end_txn() trace("end") end`)
      const run = await runScript({ source: t.source }, [txn([NEW]), txn([NEW])], { engine })
      expect(t.read()).toEqual(['begin', 'new', 'end'])
      expect(run.messages(LEVEL.error)[0]).toMatch(/^lua: lua_pcall\(dovecot_lua_notify_begin_txn, 1, 1\) failed: .*script\.lua:4: no begin\nstack traceback:/)
    })

    it('an error in end_txn is logged as (dovecot_lua_notify_end_txn, 2, 0)', async () => {
      const t = withTrace(`
        function dovecot_lua_notify_begin_txn() end
        function dovecot_lua_notify_event_message_new() end
        function dovecot_lua_notify_end_txn() error("no end") end`)
      const run = await runScript({ source: t.source }, [txn([NEW])], { engine })
      expect(run.messages(LEVEL.error)[0]).toMatch(/^lua: lua_pcall\(dovecot_lua_notify_end_txn, 2, 0\) failed: .*script\.lua:5: no end\n/)
    })

    it('error values that are not strings: a table gives (null), a number its text, nil a bare traceback', async () => {
      const t = withTrace(`
        function dovecot_lua_notify_begin_txn() end
        function dovecot_lua_notify_event_message_new(ctx, ev)
          if ev.uid == 1 then error({}) elseif ev.uid == 2 then error(42) else error() end
        end
        function dovecot_lua_notify_end_txn() end`)
      const run = await runScript({ source: t.source }, [txn([{ ...NEW, uid: 1 }, { ...NEW, uid: 2 }, { ...NEW, uid: 3 }])], { engine })
      const [a, b, c] = run.messages(LEVEL.error)
      expect(a).toBe('lua: lua_pcall(dovecot_lua_notify_event_message_new, 2, 0) failed: (null)')
      expect(b).toMatch(/^lua: lua_pcall\(dovecot_lua_notify_event_message_new, 2, 0\) failed: 42\nstack traceback:/)
      expect(c).toMatch(/^lua: lua_pcall\(dovecot_lua_notify_event_message_new, 2, 0\) failed: stack traceback:\n/)
    })

    it('runs a full garbage collection after each transaction', async () => {
      const t = withTrace(`
        local collected = 0
        function dovecot_lua_notify_begin_txn()
          trace("collected " .. collected)
          setmetatable({}, { __gc = function() collected = collected + 1 end })
        end
        function dovecot_lua_notify_event_message_new() end
        function dovecot_lua_notify_end_txn() end`)
      await runScript({ source: t.source }, [txn([NEW]), txn([NEW]), txn([NEW])], { engine })
      // fengari exception: it never runs __gc metamethods (objects live on the JS heap)
      expect(t.read()).toEqual(engine === 'fengari' ? ['collected 0', 'collected 0', 'collected 0'] : ['collected 0', 'collected 1', 'collected 2'])
    })

    it('keeps globals across the transactions of a session, not across sessions', async () => {
      const t = withTrace(`
        count = 0
        function dovecot_lua_notify_begin_txn(user) count = count + 1; trace(user.username .. " " .. count) end
        function dovecot_lua_notify_event_message_new() end
        function dovecot_lua_notify_end_txn() end`)
      await runScript({ source: t.source }, [txn([NEW]), txn([NEW]), txn([NEW], { user: 'bob@example.test' }), txn([NEW], { session: 's2' })], { engine })
      expect(t.read()).toEqual(['alice@example.test 1', 'alice@example.test 2', 'bob@example.test 1', 'alice@example.test 1'])
    })

    it('looks handlers up at every transaction, so a handler defined later takes effect', async () => {
      const t = withTrace(`
        function dovecot_lua_notify_begin_txn() end
        function dovecot_lua_notify_end_txn() end
        function dovecot_lua_notify_event_mailbox_create()
          function dovecot_lua_notify_event_message_new() trace("new") end
        end`)
      await runScript({ source: t.source }, [txn([NEW]), txn([{ name: 'MailboxCreate', mailbox: 'X' }]), txn([NEW])], { engine })
      expect(t.read()).toEqual(['new'])
    })

    it('overlapping transactions (IMAP MOVE): both begin first, then each commits in order', async () => {
      const t = withTrace(`
        local n = 0
        function dovecot_lua_notify_begin_txn() n = n + 1; trace("begin " .. n); return n end
        function dovecot_lua_notify_event_message_append(ctx) trace("append " .. ctx) end
        function dovecot_lua_notify_event_message_expunge(ctx) trace("expunge " .. ctx) end
        function dovecot_lua_notify_end_txn(ctx) trace("end " .. ctx) end`)
      const group = { user: 'alice@example.test', transactions: [
        { committed: true, events: [{ ...NEW, name: 'MessageAppend', mailbox: 'Projects' }] },
        { committed: true, events: [{ name: 'MessageExpunge', mailbox: 'INBOX', uid: 2, uid_validity: 1 }] },
      ] } as unknown as TransactionUnit
      await runScript({ source: t.source }, [group], { engine })
      expect(t.read()).toEqual(['begin 1', 'begin 2', 'append 1', 'end 1', 'expunge 2', 'end 2'])
    })
  })

  describe(`script_init and script_deinit (${engine})`, () => {
    const handlers = `
      function dovecot_lua_notify_begin_txn() trace("begin") end
      function dovecot_lua_notify_event_message_new() end
      function dovecot_lua_notify_end_txn() end`

    it('2.3: script_init gets no arguments and must return integer 0; script_deinit runs at session end', async () => {
      const t = withTrace(`
        trace("chunk " .. type(dovecot))
        function script_init(...) trace("init " .. select("#", ...)); return 0 end
        function script_deinit(...) trace("deinit " .. select("#", ...)) end
        ${handlers}`)
      await runScript({ source: t.source }, [txn([NEW])], { engine })
      expect(t.read()).toEqual(['chunk table', 'init 0', 'begin', 'deinit 0'])
    })

    for (const [ret, message] of [
      ['', 'script_init() returned non-number'],
      ['return 0.0', 'script_init() returned non-number'],
      ['return "0"', 'script_init() returned non-number'],
      ['return 1', 'Script init failed'],
    ] as const) {
      it(`2.3: script_init with "${ret || 'no return'}" fails init: ${message}`, async () => {
        const t = withTrace(`function script_init() ${ret} end\n${handlers}`)
        const run = await runScript({ source: t.source }, [txn([NEW])], { engine })
        expect(run.messages(LEVEL.error)).toEqual([`lua: ${message}`])
        expect(t.read()).toEqual([]) // the driver is not installed for this user
        expect(run.host.stats.errors.init).toBe(1)
      })
    }

    it('2.3: an error in script_init is lua_pcall(script_init, 0, 1) failed', async () => {
      const t = withTrace(`function script_init() error("bad init") end\n${handlers}`)
      const run = await runScript({ source: t.source }, [txn([NEW])], { engine })
      expect(run.messages(LEVEL.error)[0]).toMatch(/^lua: lua_pcall\(script_init, 0, 1\) failed: .*script\.lua:2: bad init\nstack traceback:/)
    })

    it('an error in the main chunk is lua_pcall(<file>) failed', async () => {
      const t = withTrace(`error("top level")`)
      const run = await runScript({ source: t.source }, [txn([NEW])], { engine })
      expect(run.messages(LEVEL.error)[0]).toMatch(/^lua: lua_pcall\(.*script\.lua\) failed: .*script\.lua:2: top level\nstack traceback:/)
    })

    it('an error in script_deinit is logged', async () => {
      const t = withTrace(`function script_deinit() error("bye") end\n${handlers}`)
      const run = await runScript({ source: t.source }, [txn([NEW])], { engine })
      expect(run.messages(LEVEL.error)[0]).toMatch(/^lua: script_deinit\(\) failed: lua_pcall\(script_deinit, 0, 0\) failed: .*script\.lua:2: bye\n/)
    })

    it('2.4: script_init receives the settings as a table of strings and its result is ignored', async () => {
      const t = withTrace(`
        function script_init(settings) trace("init " .. type(settings) .. " " .. settings.push_url .. " " .. type(settings.n)) end
        ${handlers}`)
      const run = await runScript({ source: t.source }, [txn([NEW])], { engine, dovecot: '2.4', settings: { push_url: 'http://x/', n: '5' } })
      expect(t.read()).toEqual(['init table http://x/ string', 'begin'])
      expect(run.host.stats.errors.init).toBe(0)
    })
  })
}

describe('debug lines', () => {
  it("logs Dovecot's e_debug texts for each call when debug is on", async () => {
    const run = await runScript({ source: `
      function dovecot_lua_notify_begin_txn() end
      function dovecot_lua_notify_event_message_new() end
      function dovecot_lua_notify_event_mailbox_create() end
      function dovecot_lua_notify_end_txn() end` }, [txn([{ name: 'MailboxCreate', mailbox: 'INBOX' }, { ...NEW, uid: 3 }])])
    const debug = run.logs.filter((l) => l.level === LEVEL.debug).map((l) => l.msg)
    expect(debug.slice(1)).toEqual([
      'lua: Calling dovecot_lua_notify_begin_txn(alice@example.test)',
      'lua: Called dovecot_lua_notify_begin_txn',
      'lua: Calling dovecot_lua_notify_event_mailbox_create(ctx, event[name=MailboxCreate,mailbox=INBOX])',
      'lua: Called dovecot_lua_notify_event_mailbox_create',
      'lua: Calling dovecot_lua_notify_event_message_new(ctx, event[name=MessageNew,mailbox=INBOX,uid=3])',
      'lua: Called dovecot_lua_notify_event_message_new',
      'lua: Calling dovecot_lua_notify_end_txn',
      'lua: Called dovecot_lua_notify_end_txn',
    ])
    expect(debug[0]).toMatch(/^lua: Loading .*script\.lua$/)
  })
})
