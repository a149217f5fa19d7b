// Acceptance (issue 4, 3): after a known sequence of mail actions,
// mailbox:status() in a script returns the counts Dovecot would: messages,
// unseen, recent and uidnext, read from end_txn, after the commit. \Recent
// belongs to the mailbox instance that synced with DROP_RECENT (IMAP SELECT);
// the script's own mailbox object is another instance, so it counts only the
// messages nobody has claimed yet (index-sync.c; the recorded status probe
// ran in the IMAP session and saw recent=2 before the SELECT claimed them).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createTestHost } from '../../src/testing/index.js'

const dir = mkdtempSync(join(tmpdir(), 'dovepush-status-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const SCRIPT = join(dir, 'status.lua')
writeFileSync(
  SCRIPT,
  `function dovecot_lua_notify_begin_txn(user) return { user = user } end
function dovecot_lua_notify_event_message_new(ctx, e) end
function dovecot_lua_notify_end_txn(ctx, success)
  local S = dovecot.storage
  local box = ctx.user:mailbox("INBOX")
  local st = box:status(S.STATUS_MESSAGES, S.STATUS_UNSEEN, S.STATUS_RECENT, S.STATUS_UIDNEXT)
  dovecot.i_info(string.format("%s messages=%s unseen=%s recent=%s uidnext=%s", ctx.user.service, st.messages, st.unseen, st.recent, st.uidnext))
  box:free()
end
`,
)

const ALICE = 'alice@example.test'
const msg = (n: number) => ({ from: 'Bob <bob@example.test>', to: ALICE, subject: `m${n}`, body: `body ${n}` })

describe('mailbox:status after mail actions', () => {
  for (const engine of ['wasmoon', 'fengari'] as const) {
    it(`counts messages, unseen, recent and uidnext as Dovecot (${engine})`, async () => {
      const t = await createTestHost({ script: SCRIPT, engine })
      try {
        for (const n of [1, 2, 3]) await t.deliver({ to: ALICE, message: msg(n) })
        await t.select({ user: ALICE, mailbox: 'INBOX' })
        await t.addFlags({ user: ALICE, mailbox: 'INBOX', uids: 1, flags: ['\\Seen'] })
        await t.deliver({ to: ALICE, message: msg(4) })
        await t.addFlags({ user: ALICE, mailbox: 'INBOX', uids: '2:3', flags: ['\\Deleted'] })
        await t.expunge({ user: ALICE, mailbox: 'INBOX' })
        const lines = t.logs.filter((l) => l.msg.includes('messages=')).map((l) => l.msg)
        expect(lines).toEqual([
          // the first delivery's MailboxCreate transaction, then its MessageNew
          'lmtp messages=0.0 unseen=0.0 recent=0.0 uidnext=1.0',
          'lmtp messages=1.0 unseen=1.0 recent=1.0 uidnext=2.0',
          'lmtp messages=2.0 unseen=2.0 recent=2.0 uidnext=3.0',
          'lmtp messages=3.0 unseen=3.0 recent=3.0 uidnext=4.0',
          // the IMAP SELECT claimed \\Recent of 1-3: no longer recent to any other mailbox instance
          'imap messages=3.0 unseen=2.0 recent=0.0 uidnext=4.0',
          // 4 arrived after the SELECT: recent to everyone until a SELECT claims it
          'lmtp messages=4.0 unseen=3.0 recent=1.0 uidnext=5.0',
          'imap messages=4.0 unseen=3.0 recent=1.0 uidnext=5.0',
          // 2 and 3 expunged
          'imap messages=2.0 unseen=1.0 recent=1.0 uidnext=5.0',
        ])
      } finally {
        await t.close()
      }
    })
  }
})
