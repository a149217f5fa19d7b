// `dovepush run` end to end: the real CLI in a subprocess (built by `npm
// test`'s tsc step), its exit code, its JSON log on stdout and its summary on
// stderr. Bad input of every kind is reported with what and where, and the
// run goes on.

import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

const dir = mkdtempSync(join(tmpdir(), 'dovepush-cli-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let n = 0

interface CliResult {
  code: number
  stdout: string
  stderr: string
  logs: Array<{ level: number; msg: string; [k: string]: unknown }>
}

function dovepush(args: string[], input?: string): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, ['bin/dovepush.js', ...args], { env: { ...process.env, FORCE_COLOR: '0' } }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? 1) : 0
      const logs = stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))
      resolve({ code, stdout, stderr, logs })
    })
    if (input !== undefined) child.stdin!.end(input)
  })
}

function file(name: string, text: string): string {
  const p = join(dir, `${++n}-${name}`)
  writeFileSync(p, text)
  return p
}

const COUNTER = file('counter.lua', `
function dovecot_lua_notify_begin_txn(user) return {} end
function dovecot_lua_notify_event_message_new(ctx, ev)
  if ev.uid == 666 then while true do end end
  if ev.uid == 777 then local t = {} for i = 1, 1e8 do t[i] = ("x"):rep(64) .. i end end
  dovecot.i_info("new " .. ev.uid)
end
function dovecot_lua_notify_end_txn(ctx, ok) end
`)
const ev = (uid: number | string) => JSON.stringify({ user: 'alice@example.test', events: [{ name: 'MessageNew', mailbox: 'INBOX', uid }] })
const infos = (r: CliResult) => r.logs.filter((l) => l.level === 30).map((l) => l.msg)

describe('dovepush run', () => {
  it('runs a bundled example and prints a summary', async () => {
    const r = await dovepush(['run', 'lua-scripts/log-events.lua', '--events', 'fixtures/events/sample.ndjson', '--log-format', 'json'])
    expect(r.code).toBe(0)
    expect(infos(r)).toContain('alice@example.test: MessageNew mailbox=INBOX uid=1 subject=Hi Bob')
    expect(r.stderr).toContain('dovepush: 5 transactions (4 committed, 1 rolled back), 6 events, 3 sessions')
    expect(r.stderr).toMatch(/dovecot_lua_notify_begin_txn\s+5\n/)
    expect(r.stderr).toContain('script errors: none')
  })

  it('reads standard input', async () => {
    const r = await dovepush(['run', COUNTER, '--log-format', 'json'], `${ev(1)}\n${ev(2)}\n`)
    expect(r.code).toBe(0)
    expect(infos(r)).toEqual(['new 1.0', 'new 2.0'])
  })

  it('reports a malformed line with its number, skips it, runs the rest, exits 2', async () => {
    const events = file('bad.ndjson', `${ev(1)}\n{"user": "alice@example.test", "events": [\n${ev(3)}\n`)
    const r = await dovepush(['run', COUNTER, '--events', events, '--log-format', 'json'])
    expect(r.code).toBe(2)
    expect(infos(r)).toEqual(['new 1.0', 'new 3.0'])
    const bad = r.logs.find((l) => l.level === 50)!
    expect(bad.msg).toMatch(/^input: line 2: malformed JSON: /)
    expect(bad).toMatchObject({ line: 2, code: 'DOVEPUSH_ERR_INPUT' })
    expect(r.stderr).toContain('input: 1 bad line skipped:')
  })

  it('reports an unknown event and a wrong field type with line and field', async () => {
    const events = file('types.ndjson', [
      JSON.stringify({ name: 'MessageNu', mailbox: 'INBOX' }),
      ev('seven'),
      JSON.stringify({ user: 'alice@example.test', events: [{ name: 'MessageNew', mailbox: 'INBOX', uid: 4, flags: ['\\Seen', 5] }] }),
      ev(5),
    ].join('\n'))
    const r = await dovepush(['run', COUNTER, '--events', events, '--log-format', 'json'])
    expect(r.code).toBe(2)
    expect(infos(r)).toEqual(['new 5.0'])
    const errors = r.logs.filter((l) => l.level === 50).map((l) => l.msg)
    expect(errors).toEqual([
      'input: line 1: event.name: unknown event "MessageNu" (known: FlagsClear, FlagsSet, MailboxCreate, MailboxDelete, MailboxRename, MailboxSubscribe, MailboxUnsubscribe, MessageAppend, MessageExpunge, MessageNew, MessageRead, MessageTrash)',
      'input: line 2: events[0].uid: expected a number, got string',
      'input: line 3: events[0].flags[1]: expected a string, got number',
    ])
    expect(r.stderr).toContain('input: 3 bad lines skipped:')
  })

  it('--strict stops at the first bad line', async () => {
    const events = file('strict.ndjson', `${ev(1)}\nnot json\n${ev(3)}\n`)
    const r = await dovepush(['run', COUNTER, '--events', events, '--strict', '--log-format', 'json'])
    expect(r.code).toBe(2)
    expect(infos(r)).toEqual(['new 1.0'])
    expect(r.stderr).toContain('input: 1 bad line stopped the run (--strict):')
  })

  it('reports a syntax error with file:line and exits 1', async () => {
    const script = file('syntax.lua', 'function dovecot_lua_notify_begin_txn(user)\n  return {\nend\n')
    const r = await dovepush(['run', script, '--events', 'fixtures/events/sample.ndjson'])
    expect(r.code).toBe(1)
    // the text native lua5.4's loadfile gives for this file
    expect(r.stderr).toBe(`dovepush: DOVEPUSH_ERR_SCRIPT_LOAD: lua_load(${script}) failed: ${script}:3: unexpected symbol near 'end'\n`)
  })

  it('exits 1 when script_init fails, with Dovecot\'s message', async () => {
    const script = file('init.lua', 'function script_init() end\nfunction dovecot_lua_notify_begin_txn() end\nfunction dovecot_lua_notify_event_message_new() end\n')
    const r = await dovepush(['run', script, '--log-format', 'json'], `${ev(1)}\n`)
    expect(r.code).toBe(1)
    expect(r.logs.find((l) => l.level === 50)?.msg).toBe('lua: script_init() returned non-number')
    expect(r.stderr).toContain('script errors: 1 (init 1)')
  })

  it('stops a runaway handler after --call-timeout, logs it and goes on', async () => {
    const r = await dovepush(['run', COUNTER, '--call-timeout', '100', '--log-format', 'json'], `${ev(666)}\n${ev(2)}\n`)
    expect(r.code).toBe(0)
    expect(infos(r)).toEqual(['new 2.0'])
    const err = r.logs.find((l) => l.level === 50)!
    expect(err.msg).toMatch(/^lua: lua_pcall\(dovecot_lua_notify_event_message_new, 2, 0\) failed: dovepush: script call exceeded the call timeout of 100 ms\nstack traceback:/)
    expect(err).toMatchObject({ error_kind: 'timeout', uid: 666 })
    expect(r.stderr).toContain('script errors: 1 (timeout 1)')
  })

  it('caps memory per Lua state with --memory-limit, logs it and goes on', async () => {
    const r = await dovepush(['run', COUNTER, '--memory-limit', '16', '--log-format', 'json'], `${ev(777)}\n${ev(2)}\n`)
    expect(r.code).toBe(0)
    expect(infos(r)).toEqual(['new 2.0'])
    expect(r.logs.find((l) => l.level === 50)).toMatchObject({ msg: 'lua: lua_pcall(dovecot_lua_notify_event_message_new, 2, 0) failed: not enough memory', error_kind: 'memory' })
  })

  it('rejects bad usage with exit 2 and a message naming the option', async () => {
    const r = await dovepush(['run', COUNTER, '--engine', 'luajit'])
    expect(r.code).toBe(2)
    expect(r.stderr).toBe('dovepush: DOVEPUSH_ERR_INVALID_ARG: --engine: expected one of wasmoon, fengari, got "luajit"\n')
    const missing = await dovepush(['run', COUNTER, '--events', join(dir, 'nope.ndjson')])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain(`--events ${join(dir, 'nope.ndjson')}: no such file`)
    const noScript = await dovepush(['run'])
    expect(noScript.code).toBe(2)
    expect(noScript.stderr).toContain('missing required args')
  })

  it('--settings (YAML) and --set feed plugin_getenv and the user object; --set wins', async () => {
    const script = file('settings.lua', `
function dovecot_lua_notify_begin_txn(user)
  dovecot.i_info(table.concat({ user:plugin_getenv("push_lua_url"), user:plugin_getenv("token"), tostring(user.home), tostring(user.mail_debug), string.format("%d", user.uid) }, " "))
end
function dovecot_lua_notify_event_message_new() end
function dovecot_lua_notify_end_txn() end
`)
    const settings = file('settings.yaml', 'push_lua_url: http://127.0.0.1:9/%n\ntoken: from-file\nmail_home: /var/vmail/%d/%n\nmail_debug: yes\nmail_uid: 5000\n')
    const r = await dovepush(['run', script, '--settings', settings, '--set', 'token=from-flag', '--log-format', 'json'], `${ev(1)}\n`)
    expect(r.code).toBe(0)
    expect(infos(r)).toEqual(['http://127.0.0.1:9/alice from-flag /var/vmail/example.test/alice true 5000'])
  })

  it('--http capture sends every request to the built-in sink, lists them and writes --http-log', async () => {
    const script = file('http.lua', `
local http = require("socket.http")
function dovecot_lua_notify_begin_txn(user) return {} end
function dovecot_lua_notify_event_message_new(ctx, ev)
  local client = dovecot.http.client({ user_agent = "push/1" })
  local rq = client:request({ url = "http://alice:secret@push.example.test/hook", method = "POST" })
  rq:add_header("Content-Type", "application/json")
  rq:set_payload('{"uid":' .. string.format("%d", ev.uid) .. '}')
  local r = rq:submit()
  local b, c = http.request("https://ntfy.example.test/topic", "hello")
  dovecot.i_info(r:status() .. " " .. r:reason() .. " " .. tostring(c))
end
function dovecot_lua_notify_end_txn() end
`)
    const out = join(dir, `${++n}-http.ndjson`)
    const r = await dovepush(['run', script, '--http', 'capture', '--http-log', out, '--log-format', 'json'], `${ev(7)}\n`)
    expect(r.code).toBe(0)
    expect(infos(r)).toEqual(['200 OK 200'])
    expect(r.stderr).toContain('http (captured): 2 requests:\n  POST http://push.example.test/hook (9 bytes)\n  POST http://ntfy.example.test/topic (5 bytes)\n')
    const lines = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    expect(lines.map((l) => [l.method, l.url, l.body])).toEqual([['POST', 'http://push.example.test/hook', '{"uid":7}'], ['POST', 'http://ntfy.example.test/topic', 'hello']])
    const headers = Object.fromEntries(lines[0].headers)
    expect(headers).toMatchObject({ 'User-Agent': 'push/1', 'Content-Type': 'application/json', Authorization: '(redacted)' })
    expect(r.stdout + r.stderr + readFileSync(out, 'utf8')).not.toContain('secret')
    const bad = await dovepush(['run', script, '--http-log', out])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('--http-log: needs --http capture')
  })

  it('runs on fengari too', async () => {
    const r = await dovepush(['run', COUNTER, '--engine', 'fengari', '--log-format', 'json'], `${ev(1)}\n`)
    expect(r.code).toBe(0)
    expect(infos(r)).toEqual(['new 1.0'])
  })
})
