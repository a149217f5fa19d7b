// Pure-Lua JSON libraries found on disk work as under Dovecot: Debian's
// lua-dkjson (/usr/share/lua/5.4/dkjson.lua, installed by .ci/run when it
// can). Debian's lua-json needs the lpeg C module, which dovepush cannot
// load: require says so plainly.

import { existsSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import type { TransactionUnit } from '../../../src/events/types.js'
import { LEVEL, runScript } from '../../helpers/run-script.js'

const TXN = { user: 'alice@example.test', committed: true, events: [{ name: 'MessageNew', mailbox: 'INBOX', uid: 7, uid_validity: 1, subject: 'Grüße', flags: ['\\Seen'] }] } as unknown as TransactionUnit

describe.skipIf(!existsSync('/usr/share/lua/5.4/dkjson.lua'))('dkjson from Debian\'s lua-dkjson', () => {
  for (const engine of ['wasmoon', 'fengari'] as const) {
    it(`encodes and decodes an event (${engine})`, async () => {
      const run = await runScript({ source: `
        local json = require("dkjson")
        function dovecot_lua_notify_begin_txn() end
        function dovecot_lua_notify_event_message_new(ctx, ev)
          local s = json.encode({ subject = ev.subject, uid = ev.uid, flags = ev.flags }, { keyorder = { "subject", "uid", "flags" } })
          local back = json.decode(s)
          dovecot.i_info(s .. " " .. back.flags[1] .. " " .. math.type(back.uid))
        end
        function dovecot_lua_notify_end_txn() end` }, [TXN], { engine })
      // what native lua5.4 + dkjson prints for the same table: Dovecot's floats come out as 7.0
      expect(run.messages(LEVEL.info)).toEqual(['{"subject":"Grüße","uid":7.0,"flags":["\\\\Seen"]} \\Seen float'])
    })
  }
})

describe.skipIf(!existsSync('/usr/share/lua/5.1/json.lua') && !existsSync('/usr/share/lua/5.4/json.lua'))('Debian\'s lua-json', () => {
  it('needs lpeg, a C module: require reports it instead of failing obscurely', async () => {
    const run = await runScript({ source: 'local ok, err = pcall(require, "json")\nfunction dovecot_lua_notify_begin_txn() dovecot.i_info(tostring(ok) .. " " .. err) end\nfunction dovecot_lua_notify_event_message_new() end\nfunction dovecot_lua_notify_end_txn() end' }, [TXN])
    expect(run.messages(LEVEL.info)[0]).toMatch(/^false .*module '(json|lpeg)' not found:/)
  })
})
