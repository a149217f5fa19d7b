// The session environment: print goes to the log, require looks in the
// script's own folder first, then Debian's Lua 5.4 paths (spec §8).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { TransactionUnit } from '../../src/events/types.js'
import { DEBIAN_LUA_PATH, defaultPackagePath } from '../../src/lua/environment.js'
import { LEVEL, runScript } from '../helpers/run-script.js'

const TXN = { user: 'alice@example.test', committed: true, events: [{ name: 'MailboxCreate', mailbox: 'INBOX' }] } as unknown as TransactionUnit

describe('environment', () => {
  it('package.path is the script folder, then the Debian Lua 5.4 paths', () => {
    expect(defaultPackagePath('/etc/dovecot/push.lua')).toBe(`/etc/dovecot/?.lua;/etc/dovecot/?/init.lua;${DEBIAN_LUA_PATH}`)
    expect(DEBIAN_LUA_PATH).toBe('/usr/local/share/lua/5.4/?.lua;/usr/local/share/lua/5.4/?/init.lua;/usr/local/lib/lua/5.4/?.lua;/usr/local/lib/lua/5.4/?/init.lua;/usr/share/lua/5.4/?.lua;/usr/share/lua/5.4/?/init.lua;./?.lua;./?/init.lua')
  })

  for (const engine of ['wasmoon', 'fengari'] as const) {
    it(`print goes to the log at info, tab-separated, tostring applied (${engine})`, async () => {
      const run = await runScript({ source: 'print("a", 1.5, nil, true)\nfunction dovecot_lua_notify_begin_txn() end\nfunction dovecot_lua_notify_event_mailbox_create() end' }, [TXN], { engine })
      const line = run.logs.find((l) => l.source === 'print')!
      expect([line.level, line.msg]).toEqual([LEVEL.info, 'a\t1.5\tnil\ttrue'])
    })

    it(`require finds a module beside the script (${engine})`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'dovepush-env-'))
      try {
        writeFileSync(join(dir, 'helper.lua'), 'return { greet = function(n) return "hi " .. n end }')
        writeFileSync(join(dir, 'main.lua'), 'local h = require("helper")\nfunction dovecot_lua_notify_begin_txn(u) dovecot.i_info(h.greet(u.username)) end\nfunction dovecot_lua_notify_event_mailbox_create() end\nfunction dovecot_lua_notify_end_txn() end')
        const run = await runScript({ path: join(dir, 'main.lua') }, [TXN], { engine })
        expect(run.messages(LEVEL.info)).toEqual(['hi alice@example.test'])
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    })
  }
})
