// dovecot.event() objects (spec §6) on both engines: shape, chaining,
// prefixes, levels, debug filtering, argument checks, passthrough objects.
// Expected strings are Dovecot 2.3.19.1's (out-session2-api.txt, probe:event
// lines of the oracle recording).

import { describe, expect, it } from 'vitest'
import type { Settings } from '../../../src/config/settings.js'
import type { DovecotVersion } from '../../../src/lua/env.js'
import { inBeginTxn } from '../../helpers/begin-txn.js'
import { LEVEL, type LogLine } from '../../helpers/run-script.js'
import { KEYS_AND_R, traceScripts } from '../../helpers/trace.js'

/** Lua prelude: `trace(s)` appends a line to a file; `keys(t)` lists sorted keys; `r(ok, ...)` renders a pcall result. */
const withTrace = traceScripts('dovepush-event-', KEYS_AND_R)

/** Runs `body` inside begin_txn of one transaction; `mine()` adds the log lines the script itself produced. */
async function inTxn(body: string, engine: 'wasmoon' | 'fengari', o: { dovecot?: DovecotVersion; settings?: Settings } = {}) {
  const t = await inBeginTxn(withTrace, body, engine, o)
  /** Log lines the script produced (the driver's own lines end in "dovecot_lua_notify_…" texts). */
  const mine = (): LogLine[] => t.run.logs.filter((l) => typeof l.source === 'string' && l.source.startsWith('script.lua:'))
  return { ...t, mine }
}

// probe:event in oracle/recordings/dovecot-2.3.19.ndjson and "emt=" in out-session2-api.txt
const EVENT_MT = '__index,__name,add_int,add_str,add_timeval,append_log_prefix,inc_int,log_debug,log_error,log_info,log_warning,passthrough_event,replace_log_prefix,set_always_log_source,set_name'
// out-session2-api.txt "T2 passthrough keys=item mt=…": no passthrough_event
const PASSTHROUGH_MT = '__index,__name,add_int,add_str,add_timeval,append_log_prefix,inc_int,log_debug,log_error,log_info,log_warning,replace_log_prefix,set_always_log_source,set_name'

for (const engine of ['wasmoon', 'fengari'] as const) {
  describe(`dovecot.event (${engine})`, () => {
    it('is a table with only `item` (a userdata whose metatable has only __gc), metatable "struct event" with __index = itself', async () => {
      const { lines } = await inTxn(`
        local e = dovecot.event()
        local mt = getmetatable(e)
        trace(r(type(e), keys(e), type(rawget(e, "item")), keys(getmetatable(rawget(e, "item")))))
        trace(keys(mt))
        trace(r(mt.__name, rawequal(mt.__index, mt), rawequal(getmetatable(dovecot.event()), mt)))`, engine)
      expect(lines).toEqual(['table item userdata __gc', EVENT_MT, 'struct event true true'])
    })

    it('every method but passthrough_event returns the very object (chainable)', async () => {
      const { lines } = await inTxn(`
        local e = dovecot.event()
        local c = e:set_name("t2_event"):add_str("k", "v"):add_int("n", 5):inc_int("n", 2):add_timeval("t", 1700000000)
          :append_log_prefix("a: "):replace_log_prefix("b: "):set_always_log_source()
        trace(r(rawequal(c, e), rawequal(e:log_debug("d"), e), rawequal(e:log_info("i"), e), rawequal(e:log_warning("w"), e), rawequal(e:log_error("x"), e)))
        local pt = e:passthrough_event()
        trace(r(rawequal(pt, e), rawequal(pt:add_str("a", "b"):add_int("c", 1):set_name("p"), pt), rawequal(pt:log_info("p"), pt)))`, engine)
      expect(lines).toEqual(['true true true true true', 'false true true'])
    })

    it('append_log_prefix(...):log_info logs "lua: pfx: msg" at info; log_warning at 40, log_error at 50 (recorded texts)', async () => {
      const { mine, line } = await inTxn(`
        local e = dovecot.event()
        e:append_log_prefix("pfx: "):log_info("T2 event log_info message")
        e:log_warning("T2 event log_warning message")
        e:log_error("err")`, engine)
      expect(mine().map((l) => [l.level, l.msg, l.source])).toEqual([
        [LEVEL.info, 'lua: pfx: T2 event log_info message', `script.lua:${line('log_info("T2')}`],
        [LEVEL.warn, 'lua: pfx: T2 event log_warning message', `script.lua:${line('log_warning("T2')}`],
        [LEVEL.error, 'lua: pfx: err', `script.lua:${line('log_error("err")')}`],
      ])
    })

    it('log_debug logs nothing without mail_debug, and logs at 20 with mail_debug: yes (still returning self)', async () => {
      const body = `
        local e = dovecot.event():append_log_prefix("d: ")
        trace(r(rawequal(e:log_debug("dbg msg"), e)))`
      const off = await inTxn(body, engine)
      expect(off.lines).toEqual(['true'])
      expect(off.run.logs.filter((l) => l.msg.includes('dbg msg'))).toEqual([])
      const on = await inTxn(body, engine, { settings: { mail_debug: 'yes' } })
      expect(on.lines).toEqual(['true'])
      expect(on.mine().map((l) => [l.level, l.msg, l.source])).toEqual([[LEVEL.debug, 'lua: d: dbg msg', `script.lua:${on.line('log_debug')}`]])
    })

    it('log messages accept numbers (lua_tostring) and are otherwise verbatim', async () => {
      const { mine } = await inTxn(`
        local e = dovecot.event()
        e:log_info(5)
        e:log_info(1.0)
        e:log_info("a %s\\tb")`, engine)
      expect(mine().map((l) => l.msg)).toEqual(['lua: 5', 'lua: 1.0', 'lua: a %s\tb'])
    })

    it('add_int with a non-integral number: the recorded luaL_checkinteger error, with position', async () => {
      // out-session2-api.txt: "T2 add_int float: ok=false err=/tmp/dvtest/push2.lua:26: bad argument #2 to 'add_int' (number has no integer representation)"
      const { lines, at } = await inTxn(`
        local e = dovecot.event()
        local ok, err = pcall(function() return e:add_int("x", 1.5) end)
        trace("T2 add_int float: ok=" .. tostring(ok) .. " err=" .. tostring(err))
        trace(r(pcall(function() return e:inc_int("x", "y") end)))
        trace(r(pcall(function() return e:add_str("x", {}) end)))`, engine)
      expect(lines).toEqual([
        `T2 add_int float: ok=false err=${at('e:add_int("x", 1.5)')}: bad argument #2 to 'add_int' (number has no integer representation)`,
        `false ${at('e:inc_int("x", "y")')}: bad argument #2 to 'inc_int' (number expected, got string)`,
        `false ${at('e:add_str("x", {})')}: bad argument #2 to 'add_str' (string expected, got table)`,
      ])
    })

    it('checks the exact argument count (self included), with no position (dluaL_error)', async () => {
      const { lines } = await inTxn(`
        local e = dovecot.event()
        trace(r(pcall(function() return e:append_log_prefix() end)))
        trace(r(pcall(function() return e:add_int("x") end)))
        trace(r(pcall(function() return e:log_info("a", "b") end)))
        trace(r(pcall(function() return e:set_always_log_source(1) end)))
        trace(r(pcall(function() return e.log_info() end)))
        trace(r(pcall(function() return dovecot.event(e, e) end)))`, engine)
      expect(lines).toEqual([
        'false expected 2 arguments, got 1',
        'false expected 3 arguments, got 2',
        'false expected 2 arguments, got 3',
        'false expected 1 arguments, got 2',
        'false expected 2 arguments, got 0',
        'false expected 0 to 1 arguments, got 2',
      ])
    })

    it('a non-event self or parent: "Bad argument #1, expected struct event got <type>"', async () => {
      const { lines } = await inTxn(`
        local e = dovecot.event()
        trace(r(pcall(function() return e.log_info(5, "x") end)))
        trace(r(pcall(function() return dovecot.event(1) end)))
        trace(r(pcall(function() return dovecot.event("x") end)))`, engine)
      expect(lines).toEqual([
        'false Bad argument #1, expected struct event got number',
        'false Bad argument #1, expected struct event got number',
        'false Bad argument #1, expected struct event got string',
      ])
    })

    it('passthrough: `item` only, metatable "struct event_passthrough" without passthrough_event; logs with the event\'s prefixes', async () => {
      const { lines, mine, line } = await inTxn(`
        local e = dovecot.event():append_log_prefix("pfx: ")
        local pt = e:passthrough_event()
        local mt = getmetatable(pt)
        trace("T2 passthrough keys=" .. keys(pt) .. " mt=" .. keys(mt))
        trace(r(mt.__name, rawequal(mt.__index, mt), pt.passthrough_event))
        pt:add_str("pk", "pv"):log_info("T2 passthrough log")
        dovecot.event():passthrough_event():log_info("x")`, engine)
      expect(lines).toEqual([`T2 passthrough keys=item mt=${PASSTHROUGH_MT}`, 'struct event_passthrough true nil'])
      expect(mine().map((l) => [l.level, l.msg, l.source])).toEqual([
        [LEVEL.info, 'lua: pfx: T2 passthrough log', `script.lua:${line('T2 passthrough log')}`],
        [LEVEL.info, 'lua: x', `script.lua:${line(':log_info("x")')}`],
      ])
    })

    it('a passthrough is finished by its log call, so the next one is allowed', async () => {
      const { lines } = await inTxn(`
        local e = dovecot.event()
        e:passthrough_event():log_info("one")
        trace(r(pcall(function() e:passthrough_event():log_info("two") end)))`, engine)
      expect(lines).toEqual(['true'])
    })

    it('2.3: a second passthrough while one is pending raises (Dovecot panics: "Can\'t create multiple passthrough events")', async () => {
      const { lines } = await inTxn(`
        local e = dovecot.event()
        local pt = e:passthrough_event()
        local ok, err = pcall(function() return e:passthrough_event() end)
        trace(r(ok, string.find(err, "Can't create multiple passthrough events", 1, true) ~= nil))`, engine)
      expect(lines).toEqual(['false true'])
    })

    it('a child event dovecot.event(parent) inherits the parent prefixes; replace_log_prefix drops the parents\'', async () => {
      const { mine } = await inTxn(`
        local p = dovecot.event():append_log_prefix("p: ")
        local c = dovecot.event(p):append_log_prefix("c: ")
        c:log_info("child")
        local g = dovecot.event(c)
        g:log_info("grandchild")
        dovecot.event(c):replace_log_prefix("r: "):log_info("replaced")
        dovecot.event(dovecot.event(p):replace_log_prefix("R: ")):append_log_prefix("x: "):log_info("under replaced")
        p:log_info("parent")`, engine)
      expect(mine().map((l) => l.msg)).toEqual(['lua: p: c: child', 'lua: p: c: grandchild', 'r: replaced', 'R: x: under replaced', 'lua: p: parent'])
    })

    it('log lines carry source "script.lua:<line>" of the calling line', async () => {
      const { mine, line } = await inTxn(`
        local e = dovecot.event()
        local function helper() e:log_warning("from helper") end
        helper()
        e:log_info("direct")`, engine)
      expect(mine().map((l) => [l.msg, l.source])).toEqual([
        ['lua: from helper', `script.lua:${line('from helper')}`],
        ['lua: direct', `script.lua:${line('"direct"')}`],
      ])
    })
  })
}
