// The full GC after each transaction runs from the moment a script could see
// it (src/lua/stdlib/gc.ts). These scripts report through print (the log),
// since the usual trace helper opens a file, which switches the collection on.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { afterAll, describe, expect, it } from 'vitest'
import { createEnvironment } from '../../../src/lua/environment.js'
import { engine, LEVEL, runScript, type ScriptRun, txn } from '../../helpers/run-script.js'

const NEW = { name: 'MessageNew', mailbox: 'INBOX', uid: 7, uid_validity: 1700000000 }
const SWITCH = /^lua: full garbage collection after each transaction from now on \((.*)\)$/
const dir = mkdtempSync(join(tmpdir(), 'dovepush-gc-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** The switch's reason(s) logged (mail_debug on), and the script's print lines. */
function observed(run: ScriptRun): { reasons: string[]; printed: string[] } {
  const reasons: string[] = []
  const printed: string[] = []
  for (const l of run.logs) {
    const m = SWITCH.exec(l.msg)
    if (m) reasons.push(m[1]!)
    else if (l.source === 'print') printed.push(l.msg)
  }
  return { reasons, printed }
}

const script = (begin: string, prelude = ''): string => `${prelude}
  function dovecot_lua_notify_begin_txn(user) ${begin} end
  function dovecot_lua_notify_event_message_new() end
  function dovecot_lua_notify_end_txn() end`

const DEBUG = { settings: { mail_debug: 'yes' } }

describe('the full GC after each transaction (wasmoon)', () => {
  it('a script that cannot see collections never switches it on (dovecot.http objects included)', async () => {
    const run = await runScript({ source: script('local t = { user.username, {}, {} } local c = dovecot.http.client({}) c:request({ url = "http://127.0.0.1:9/" }) return t') }, [txn([NEW]), txn([NEW]), txn([NEW])], DEBUG)
    expect(observed(run).reasons).toEqual([])
    expect(run.messages(LEVEL.error)).toEqual([])
  })

  const triggers: Array<[string, string, string?]> = [
    ['setmetatable({}, {})', 'setmetatable'],
    ['getmetatable("")', 'getmetatable'],
    ['collectgarbage("count")', 'collectgarbage'],
    ['debug.getregistry()', 'debug.getregistry'],
    ['debug.getmetatable(1)', 'debug.getmetatable'],
    ['debug.setmetatable({}, nil)', 'debug.setmetatable'],
    [`io.open(${JSON.stringify(join(dir, 'f'))}, "w"):close()`, 'io: an open file'],
    ['dovecot.event()', 'a dovecot.event'],
    ['user:mailbox("INBOX")', 'a mailbox object'],
    ['require("cjson").decode_array_with_array_mt(true)', 'cjson.decode_array_with_array_mt'],
    ['user.__index.__gc = function() end', 'a metatable reached through __index gained __gc or __mode'],
    ['dovecot.__index.__mode = "k"', 'a metatable reached through __index gained __gc or __mode'],
  ]
  for (const [code, why] of triggers) {
    it(`switches on, once, when the script does ${code}`, async () => {
      const run = await runScript({ source: script(`if not done then done = true ${code} end`) }, [txn([NEW]), txn([NEW]), txn([NEW])], DEBUG)
      expect(observed(run).reasons).toEqual([why])
      expect(run.messages(LEVEL.error)).toEqual([])
    })
  }

  it('a __gc given to the user metatable through user.__index finalizes the next users at their transaction end, as in Dovecot', async () => {
    // txn 1 adds __gc (its own user object was made before: not finalized);
    // txn 2's user is collected at the end of txn 2; txn 3 sees one call
    const run = await runScript({
      source: script(`print("finalized " .. n) if not added then added = true user.__index.__gc = function() n = n + 1 end end`, 'n = 0'),
    }, [txn([NEW]), txn([NEW]), txn([NEW])])
    expect(observed(run).printed).toEqual(['finalized 0', 'finalized 0', 'finalized 1'])
  })

  it('a weak table loses its dead keys at each transaction end', async () => {
    const run = await runScript({
      source: script('local n = 0 for _ in pairs(weak) do n = n + 1 end print("entries " .. n) weak[{}] = true', 'weak = setmetatable({}, { __mode = "k" })'),
    }, [txn([NEW]), txn([NEW]), txn([NEW])])
    expect(observed(run).printed).toEqual(['entries 0', 'entries 0', 'entries 0'])
  })

  it("the replaced functions answer and fail as Lua 5.4's own (texts from lua5.4)", async () => {
    const run = await runScript({
      source: script('', `
        local function p(...) print((table.concat(table.pack(...), " ", 1, select("#", ...)))) end
        local function e(f, ...) local ok, err = pcall(f, ...) p(tostring(ok), tostring(err)) end
        local smt = setmetatable
        local t = {}
        p(tostring(setmetatable(t, nil) == t), tostring(getmetatable(setmetatable({}, { __metatable = "no" }))))
        p(math.type(collectgarbage("count")), tostring(collectgarbage()), tostring(collectgarbage("isrunning")), type(collectgarbage("step")))
        p(tostring(debug.getregistry()[2] == _G), tostring(debug.getmetatable("").__index == string), tostring(debug.setmetatable(5, nil)))
        e(setmetatable, 1)
        e(setmetatable, {}, 1)
        e(setmetatable, setmetatable({}, { __metatable = 1 }), {})
        e(getmetatable)
        e(collectgarbage, "x")
        e(collectgarbage, "step", "a")
        e(collectgarbage, "step", 1.5)
        e(collectgarbage, {})
        e(debug.setmetatable, 1, 2)
        e(debug.getmetatable)
        e(function() smt(1) end)`),
    }, [txn([NEW])])
    expect(observed(run).printed).toEqual([
      'true no',
      'float 0 true boolean',
      'true true 5',
      "false bad argument #1 to 'setmetatable' (table expected, got number)",
      "false bad argument #2 to 'setmetatable' (nil or table expected, got number)",
      'false cannot change a protected metatable',
      "false bad argument #1 to 'getmetatable' (value expected)",
      "false bad argument #1 to 'collectgarbage' (invalid option 'x')",
      "false bad argument #2 to 'collectgarbage' (number expected, got string)",
      "false bad argument #2 to 'collectgarbage' (number has no integer representation)",
      "false bad argument #1 to 'collectgarbage' (string expected, got table)",
      "false bad argument #2 to 'debug.setmetatable' (nil or table expected, got number)",
      "false bad argument #1 to 'debug.getmetatable' (value expected)",
      `false ${run.scriptPath}:19: bad argument #1 to 'smt' (table expected, got number)`,
    ])
  })

  it('--full-gc always: on from the start', async () => {
    const options = { scriptPath: join(dir, 'x.lua'), dovecot: '2.3' as const, log: pino({ level: 'silent' }), debug: false, callTimeoutMs: 0, memoryLimit: 0 }
    const always = createEnvironment({ ...options, engine: await engine('wasmoon'), fullGc: 'always' })
    const observable = createEnvironment({ ...options, engine: await engine('wasmoon') })
    try {
      expect([always.gc.observable, always.gc.why]).toEqual([true, '--full-gc always'])
      expect([observable.gc.observable, observable.gc.why]).toEqual([false, undefined])
    } finally {
      always.api.close()
      observable.api.close()
    }
  })
})
