// Records what a real Dovecot puts in the MessageNew event for each message of
// fixtures/messages/dovecot-2.3.19-fields.json, and writes it back as the cases' `fields`
// (test/mailstore/message.dovecot.test.ts checks parseMessage against them).
//
// Each case's eml is delivered with dovecot-lda into a throwaway maildir. A push-notification
// Lua script (RECORDER below) dumps the event's fields, hex-encoded so that raw bytes survive
// Lua and JSON; they are stored as text when valid UTF-8, else as { base64 }. No Dovecot
// daemon is needed: dovecot-lda runs alone, as `nobody`, without -d.
//
// Re-run (Debian 12; needs root for dovecot-lda to run as nobody, and the dovecot-core
// package, which has Dovecot 2.3.19.1 with the mail_lua and push_notification_lua plugins):
//   apt-get install dovecot-core
//   node test/mailstore/tools/record-dovecot-fields.mjs [fixture.json [output.json]]
// To add a case, append { "name", "eml" } to the fixture and re-run.

import { execFileSync, spawnSync } from 'node:child_process'
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const LDA = '/usr/lib/dovecot/dovecot-lda'
const FIELDS = ['from', 'from_address', 'from_display_name', 'to', 'to_address', 'to_display_name', 'subject', 'date', 'tz', 'snippet', 'message_id']
const STRINGS = FIELDS.filter((f) => f !== 'date' && f !== 'tz')

const RECORDER = (out) => `
local function hex(s) return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end)) end
function dovecot_lua_notify_begin_txn(user) return {} end
function dovecot_lua_notify_event_message_new(ctx, e)
  local parts = {}
  for _, k in ipairs({${STRINGS.map((f) => `"${f}"`).join(', ')}}) do
    parts[#parts + 1] = '"' .. k .. '":' .. (e[k] == nil and 'null' or '"' .. hex(e[k]) .. '"')
  end
  parts[#parts + 1] = '"date":' .. string.format('%d', e.date)
  parts[#parts + 1] = '"tz":' .. string.format('%d', e.tz)
  local f = io.open("${out}", "a")
  f:write('{' .. table.concat(parts, ',') .. '}\\n')
  f:close()
end
function dovecot_lua_notify_end_txn(ctx, ok) end
`

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** Text when valid UTF-8, else { base64 } (the fixture's form for raw bytes). */
function bytesValue(buf) {
  try {
    return UTF8.decode(buf)
  } catch {
    return { base64: buf.toString('base64') }
  }
}

const emlBytes = (eml) => (typeof eml === 'string' ? Buffer.from(eml, 'utf8') : Buffer.from(eml.base64, 'base64'))

const here = fileURLToPath(new URL('.', import.meta.url))
const fixturePath = process.argv[2] ?? join(here, '../../../fixtures/messages/dovecot-2.3.19-fields.json')
const outputPath = process.argv[3] ?? fixturePath
const cases = JSON.parse(readFileSync(fixturePath, 'utf8'))

const uid = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }))
const gid = Number(execFileSync('id', ['-g', 'nobody'], { encoding: 'utf8' }))
const dir = mkdtempSync(join(tmpdir(), 'dovecot-fields-'))
chmodSync(dir, 0o755)
const home = join(dir, 'home')
mkdirSync(home)
chownSync(home, uid, gid)
const out = join(home, 'fields.ndjson')
writeFileSync(join(dir, 'recorder.lua'), RECORDER(out))
writeFileSync(
  join(dir, 'dovecot.conf'),
  `ssl = no
base_dir = ${home}/run
log_path = /dev/stderr
mail_location = maildir:${home}/Maildir
mail_plugins = notify push_notification push_notification_lua mail_lua
plugin {
  push_notification_driver = lua:file=${dir}/recorder.lua
}
`,
)

try {
  for (const c of cases) {
    rmSync(out, { force: true })
    const lda = spawnSync(LDA, ['-c', join(dir, 'dovecot.conf'), '-f', 'sender@example.test'], {
      input: emlBytes(c.eml),
      uid,
      gid,
      env: { HOME: home, USER: 'nobody', PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
    })
    const lines = existsSync(out) ? readFileSync(out, 'utf8').trim().split('\n') : []
    if (lda.status !== 0 || lines.length !== 1) throw new Error(`${c.name}: dovecot-lda exit ${lda.status}, ${lines.length} events\n${lda.stderr}`)
    const recorded = JSON.parse(lines[0])
    c.fields = Object.fromEntries(FIELDS.map((f) => [f, typeof recorded[f] === 'string' ? bytesValue(Buffer.from(recorded[f], 'hex')) : recorded[f]]))
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
writeFileSync(outputPath, JSON.stringify(cases.map(({ name, eml, fields }) => ({ name, eml, fields })), null, 2) + '\n')
const version = execFileSync('/usr/sbin/dovecot', ['--version'], { encoding: 'utf8' }).trim()
console.log(`${cases.length} cases recorded from Dovecot ${version} into ${outputPath}`)
