// The `dovecot` global table (spec §5, §4.2) on both engines: its shape,
// the flag helpers, i_* logging, restrict_global_variables and
// dovecot.storage. Expected strings are what Dovecot 2.3.19.1 printed
// (spec/dovecot-lua-observed/out-session2-api.txt, oracle recordings).

import { describe, expect, it } from 'vitest'
import type { DovecotVersion } from '../../../src/lua/env.js'
import { inBeginTxn } from '../../helpers/begin-txn.js'
import { LEVEL, runScript, txn } from '../../helpers/run-script.js'
import { KEYS_AND_R, traceScripts } from '../../helpers/trace.js'
import { runChunk, useEnvironment } from '../../helpers/lua-env.js'
import type { LuaEnvironment } from '../../../src/lua/environment.js'

/** Lua prelude: `trace(s)` appends a line to a file; `keys(t)` lists sorted keys; `r(ok, ...)` renders a pcall result. */
const withTrace = traceScripts('dovepush-dovecot-', KEYS_AND_R)

/** Runs `body` inside begin_txn of one transaction. */
const inTxn = (body: string, engine: 'wasmoon' | 'fengari', dovecot: DovecotVersion = '2.3') => inBeginTxn(withTrace, body, engine, { dovecot })

const MT_KEYS = '__index,__name,clear_flag,event,has_flag,i_debug,i_error,i_info,i_warning,restrict_global_variables,set_flag'
// out-session2-api.txt "T2 storage keys=": the Debian 12 binary (no MAILBOX_FLAG_AUTO_*)
const STORAGE_23 = 'MAILBOX_ATTRIBUTE_PREFIX_DOVECOT,MAILBOX_ATTRIBUTE_PREFIX_DOVECOT_PVT,MAILBOX_ATTRIBUTE_PREFIX_DOVECOT_PVT_SERVER,MAILBOX_FLAG_DROP_RECENT,MAILBOX_FLAG_IGNORE_ACLS,MAILBOX_FLAG_KEEP_LOCKED,MAILBOX_FLAG_NO_INDEX_FILES,MAILBOX_FLAG_READONLY,MAILBOX_FLAG_SAVEONLY,MAILBOX_SYNC_FLAG_EXPUNGE,MAILBOX_SYNC_FLAG_FAST,MAILBOX_SYNC_FLAG_FIX_INCONSISTENT,MAILBOX_SYNC_FLAG_FORCE_RESYNC,MAILBOX_SYNC_FLAG_FULL_READ,MAILBOX_SYNC_FLAG_FULL_WRITE,MAILBOX_SYNC_FLAG_NO_EXPUNGES,STATUS_FIRST_RECENT_UID,STATUS_FIRST_UNSEEN_SEQ,STATUS_HIGHESTMODSEQ,STATUS_HIGHESTPVTMODSEQ,STATUS_KEYWORDS,STATUS_MESSAGES,STATUS_PERMANENT_FLAGS,STATUS_RECENT,STATUS_UIDNEXT,STATUS_UIDVALIDITY,STATUS_UNSEEN'
// out-session2-api.txt "T2 storage vals=" (same script line as the probe)
const STORAGE_23_VALS = 'MAILBOX_ATTRIBUTE_PREFIX_DOVECOT=vendor/vendor.dovecot/(string) MAILBOX_ATTRIBUTE_PREFIX_DOVECOT_PVT=vendor/vendor.dovecot/pvt/(string) MAILBOX_ATTRIBUTE_PREFIX_DOVECOT_PVT_SERVER=vendor/vendor.dovecot/pvt/server/(string) MAILBOX_FLAG_DROP_RECENT=4.0(float) MAILBOX_FLAG_IGNORE_ACLS=256.0(float) MAILBOX_FLAG_KEEP_LOCKED=32.0(float) MAILBOX_FLAG_NO_INDEX_FILES=16.0(float) MAILBOX_FLAG_READONLY=1.0(float) MAILBOX_FLAG_SAVEONLY=2.0(float) MAILBOX_SYNC_FLAG_EXPUNGE=128.0(float) MAILBOX_SYNC_FLAG_FAST=4.0(float) MAILBOX_SYNC_FLAG_FIX_INCONSISTENT=64.0(float) MAILBOX_SYNC_FLAG_FORCE_RESYNC=256.0(float) MAILBOX_SYNC_FLAG_FULL_READ=1.0(float) MAILBOX_SYNC_FLAG_FULL_WRITE=2.0(float) MAILBOX_SYNC_FLAG_NO_EXPUNGES=8.0(float) STATUS_FIRST_RECENT_UID=1024.0(float) STATUS_FIRST_UNSEEN_SEQ=32.0(float) STATUS_HIGHESTMODSEQ=128.0(float) STATUS_HIGHESTPVTMODSEQ=8192.0(float) STATUS_KEYWORDS=64.0(float) STATUS_MESSAGES=1.0(float) STATUS_PERMANENT_FLAGS=512.0(float) STATUS_RECENT=2.0(float) STATUS_UIDNEXT=4.0(float) STATUS_UIDVALIDITY=8.0(float) STATUS_UNSEEN=16.0(float)'
const STORAGE_VALS_LUA = `local s = {}
  for k, v in pairs(dovecot.storage) do s[#s+1] = k .. "=" .. tostring(v) .. "(" .. (math.type(v) or type(v)) .. ")" end
  table.sort(s)
  trace(table.concat(s, " "))`

for (const engine of ['wasmoon', 'fengari'] as const) {
  describe(`dovecot table (${engine})`, () => {
    it('pairs(dovecot) shows only http and storage; the functions live on the metatable "dovecot" whose __index is itself', async () => {
      const { lines } = await inTxn(`
        local mt = getmetatable(dovecot)
        trace(keys(dovecot))
        trace(keys(mt))
        trace(r(mt.__name, rawequal(mt.__index, mt), type(dovecot.http), type(dovecot.storage), keys(dovecot.http)))
        trace(r(rawget(dovecot, "i_info"), rawequal(dovecot.i_info, mt.i_info), type(dovecot.event)))`, engine)
      expect(lines).toEqual(['http,storage', MT_KEYS, 'dovecot true table table client', 'nil true function'])
    })

    it('has_flag / set_flag / clear_flag: boolean and integers (recorded: has_flag=true set_flag=5 clear_flag=5)', async () => {
      const { lines } = await inTxn(`
        trace(r(dovecot.has_flag(6, 2), dovecot.has_flag(6, 1), dovecot.has_flag(6, 6), dovecot.has_flag(6, 7)))
        local s, c = dovecot.set_flag(1, 4), dovecot.clear_flag(7, 2)
        trace(r(s, math.type(s), c, math.type(c)))
        -- integral floats (the storage constants) are accepted; the result is still an integer
        local f = dovecot.set_flag(dovecot.storage.STATUS_MESSAGES, dovecot.storage.STATUS_UNSEEN)
        trace(r(f, math.type(f), dovecot.has_flag(17.0, dovecot.storage.STATUS_UNSEEN)))`, engine)
      expect(lines).toEqual(['true false true false', '5 integer 5 integer', '17 integer true'])
    })

    it('has_flag(1.5, 1) raises the luaL_checkinteger error with the caller position', async () => {
      const { lines, at } = await inTxn(`
        trace(r(pcall(function() return dovecot.has_flag(1.5, 1) end)))
        trace(r(pcall(function() return dovecot.set_flag(1, "x") end)))
        trace(r(pcall(function() return dovecot.clear_flag(1) end)))`, engine)
      expect(lines).toEqual([
        `false ${at('has_flag(1.5')}: bad argument #1 to 'has_flag' (number has no integer representation)`,
        `false ${at('set_flag(1, "x")')}: bad argument #2 to 'set_flag' (number expected, got string)`,
        // DLUA_REQUIRE_ARGS goes through dluaL_error: no position (see the i_* test)
        'false expected 2 arguments, got 1',
      ])
    })

    it('i_* arity errors are exactly what Dovecot printed (dluaL_error adds no position)', async () => {
      // probe-api.lua lines 28/30 → out-session2-api.txt:
      //   "T2 i_info noarg: ok=false err=expected 1 arguments, got 0"
      //   "T2 i_info 2args: ok=false err=expected 1 arguments, got 2"
      const { lines } = await inTxn(`
        local ok, err = pcall(function() return dovecot.i_info() end)
        trace("T2 i_info noarg: ok=" .. tostring(ok) .. " err=" .. tostring(err))
        ok, err = pcall(function() return dovecot.i_info("a", "b") end)
        trace("T2 i_info 2args: ok=" .. tostring(ok) .. " err=" .. tostring(err))
        ok, err = pcall(function() dovecot.i_error() end)
        trace("not a tail call: " .. tostring(err))
        ok, err = pcall(function() return dovecot.i_info(5) end)
        trace("T2 i_info number: ok=" .. tostring(ok) .. " err=" .. tostring(err))`, engine)
      expect(lines).toEqual([
        'T2 i_info noarg: ok=false err=expected 1 arguments, got 0',
        'T2 i_info 2args: ok=false err=expected 1 arguments, got 2',
        'not a tail call: expected 1 arguments, got 0',
        'T2 i_info number: ok=true err=nil',
      ])
    })

    it('i_info(5) logs "5"; numbers are converted as lua_tostring does; a table is a luaL_checkstring error', async () => {
      const { lines, run, at } = await inTxn(`
        dovecot.i_info(5)
        dovecot.i_info(1.5)
        dovecot.i_info(2.0)
        trace(r(select("#", dovecot.i_info("x"))))
        trace(r(pcall(function() return dovecot.i_warning({}) end)))`, engine)
      expect(run.messages(LEVEL.info)).toEqual(['5', '1.5', '2.0', 'x'])
      expect(lines).toEqual(['0', `false ${at('i_warning({})')}: bad argument #1 to 'i_warning' (string expected, got table)`])
    })

    it('i_debug/i_info/i_warning/i_error log at levels 20/30/40/50, verbatim, with no "lua: " prefix (i_debug even without mail_debug)', async () => {
      const { run } = await inTxn(`
        dovecot.i_debug("dbg %s msg")
        dovecot.i_info("info msg")
        dovecot.i_warning("warn msg")
        dovecot.i_error("err\\nmsg")`, engine)
      const mine = run.logs.filter((l) => /msg$/.test(l.msg)).map((l) => [l.level, l.msg])
      expect(mine).toEqual([[20, 'dbg %s msg'], [30, 'info msg'], [40, 'warn msg'], [50, 'err\nmsg']])
    })

    it('restrict_global_variables(true): reads of undeclared globals and new non-function globals raise; functions may be defined; (false) lifts it', async () => {
      // recorded (out-session2-api.txt): the texts, sic, and no position prefix
      const { lines } = await inTxn(`
        existing = 1
        trace(r(select("#", dovecot.restrict_global_variables(true))))
        local ok, err = pcall(function() newglobal = 1 end)
        trace("T2 restrict write: ok=" .. tostring(ok) .. " err=" .. tostring(err))
        ok, err = pcall(function() return undefined_global_x end)
        trace("T2 restrict read: ok=" .. tostring(ok) .. " err=" .. tostring(err))
        ok, err = pcall(function() function newfn() end end)
        trace("T2 restrict fn: ok=" .. tostring(ok) .. " err=" .. tostring(err))
        trace(r(type(newfn), pcall(function() existing = 2 end), existing))
        trace(r(pcall(function() newnil = nil end)))
        trace(r(pcall(function() if maybe == nil then return "nil" end end)))
        dovecot.restrict_global_variables(false)
        local mt = getmetatable(_G)
        trace(r(type(mt), mt and next(mt)))
        newglobal = 3
        trace(r(newglobal, undefined_global_x))
        newglobal = nil`, engine)
      expect(lines).toEqual([
        '0',
        'T2 restrict write: ok=false err=attempt to write to undeclared global variable newglobal',
        'T2 restrict read: ok=false err=attempt to write to read undeclared global variable undefined_global_x',
        'T2 restrict fn: ok=true err=nil',
        'function true 2',
        'false attempt to write to undeclared global variable newnil',
        'false attempt to write to read undeclared global variable maybe',
        'table nil',
        '3 nil',
      ])
    })

    it('restrict_global_variables stays on across transactions until turned off (and still allows the handlers)', async () => {
      const t = withTrace(`
        dovecot.restrict_global_variables(true)
        function dovecot_lua_notify_begin_txn(user) trace(r(pcall(function() return later end))) end
        function dovecot_lua_notify_event_message_new() end
        function dovecot_lua_notify_end_txn() end`)
      const run = await runScript({ source: t.source }, [txn([{ name: 'MessageNew', mailbox: 'INBOX', uid: 1 }]), txn([{ name: 'MessageNew', mailbox: 'INBOX', uid: 2 }])], { engine })
      expect(t.read()).toEqual(['false attempt to write to read undeclared global variable later', 'false attempt to write to read undeclared global variable later'])
      expect(run.messages(LEVEL.warn)).toEqual([])
    })

    it('dovecot.storage: the Debian 12 key set, float values, exact prefixes, metatable "storage"', async () => {
      const { lines } = await inTxn(`
        trace(keys(dovecot.storage))
        ${STORAGE_VALS_LUA}
        local st = dovecot.storage
        trace(r(math.type(st.STATUS_MESSAGES), tostring(st.STATUS_MESSAGES), st.MAILBOX_FLAG_AUTO_CREATE, st.MAILBOX_FLAG_AUTO_SUBSCRIBE))
        local mt = getmetatable(st)
        trace(r(mt.__name, rawequal(mt.__index, mt), keys(mt)))`, engine)
      expect(lines).toEqual([STORAGE_23, STORAGE_23_VALS, 'float 1.0 nil nil', 'storage true __index,__name'])
    })

    it('dovecot.storage in 2.4 mode: MAILBOX_FLAG_AUTO_CREATE/AUTO_SUBSCRIBE exist, MAILBOX_SYNC_FLAG_FULL_WRITE does not', async () => {
      const { lines } = await inTxn(`
        local st = dovecot.storage
        trace(r(st.MAILBOX_FLAG_AUTO_CREATE, math.type(st.MAILBOX_FLAG_AUTO_CREATE), st.MAILBOX_FLAG_AUTO_SUBSCRIBE, st.MAILBOX_SYNC_FLAG_FULL_WRITE))
        trace(keys(st))`, engine, '2.4')
      const expected = STORAGE_23.split(',').filter((k) => k !== 'MAILBOX_SYNC_FLAG_FULL_WRITE').concat('MAILBOX_FLAG_AUTO_CREATE', 'MAILBOX_FLAG_AUTO_SUBSCRIBE').sort().join(',')
      expect(lines).toEqual(['4096.0 float 8192.0 nil', expected])
    })

    it('the dovecot table is usable from the main chunk', async () => {
      const t = withTrace(`
        trace(r(keys(dovecot), dovecot.set_flag(2, 1), dovecot.storage.STATUS_UNSEEN))
        dovecot.i_info("from chunk")
        function dovecot_lua_notify_begin_txn() end
        function dovecot_lua_notify_event_message_new() end
        function dovecot_lua_notify_end_txn() end`)
      const run = await runScript({ source: t.source }, [txn([{ name: 'MessageNew', mailbox: 'INBOX', uid: 1 }])], { engine })
      expect(t.read()).toEqual(['http,storage 3 16.0'])
      expect(run.messages(LEVEL.info)).toContain('from chunk')
    })
  })
}

describe('restrict_global_variables and host functions', () => {
  for (const engineName of ['wasmoon', 'fengari'] as const) {
    let env: LuaEnvironment
    useEnvironment(engineName, 'dovepush-restrict-', (e) => {
      env = e
    })
    it(`toggling it many times makes no new host functions (${engineName})`, () => {
      runChunk(env, 'dovecot.restrict_global_variables(true) dovecot.restrict_global_variables(false)')
      const before = env.api.hostFunctions
      expect(runChunk(env, 'for i = 1, 20 do dovecot.restrict_global_variables(true) dovecot.restrict_global_variables(false) end return "ok"')).toEqual(['ok'])
      expect(env.api.hostFunctions).toBe(before)
    })
  }
})
