// `dovepush forwarder`: the generated Lua script runs in dovepush itself (2.3
// and 2.4 modes) against transactions, a lone one, an overlapping group (IMAP
// MOVE) and a rolled-back one, and a real HTTP server on 127.0.0.1 stands in
// for `dovepush serve`. Asserted: the exact lines received (numbers, floats,
// escapes, UTF-8, arrays), the headers, that failures (server down, slow,
// 401) are logged and never become script errors, and that --to-file lines
// are valid dovepush input that replays to the same event tables.

import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import type { IncomingHttpHeaders, Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { forwarderCommand } from '../../src/cli/forwarder.js'
import { main } from '../../src/cli/index.js'
import type { TransactionUnit } from '../../src/events/types.js'
import { parseTransaction } from '../../src/events/validate.js'
import { type ForwarderOptions, forwarderScript, luaString, resolveForwarderUrl } from '../../src/forwarder/script.js'
import type { DovecotVersion } from '../../src/lua/env.js'
import { closedPort, startServer, stopServer } from '../helpers/http-server.js'
import { LEVEL, runScript, type ScriptRun } from '../helpers/run-script.js'

const dir = mkdtempSync(join(tmpdir(), 'dovepush-forwarder-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let n = 0
const tmp = (name: string): string => join(dir, `${++n}-${name}`)

const TOKEN = 's3cr3t-0123_token'

interface Received {
  method: string
  url: string
  headers: IncomingHttpHeaders
  body: Buffer
}

let server: Server
let base: string
const received: Received[] = []
let respond: (r: Received, res: import('node:http').ServerResponse) => void = (_r, res) => res.end('{"ok":true}')

beforeAll(async () => {
  const s = await startServer((req, body, res) => {
    const r = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body }
    received.push(r)
    respond(r, res)
  })
  server = s.server
  base = s.base
})
afterAll(() => stopServer(server))
afterEach(() => {
  received.length = 0
  respond = (_r, res) => res.end('{"ok":true}')
})

/** Writes a generated script (plus optional Lua appended after it) and returns its path. */
function script(o: Partial<ForwarderOptions>, extraLua = ''): string {
  const p = tmp('forwarder.lua')
  writeFileSync(p, forwarderScript({ dovecot: 'auto', timeoutMs: 2000, version: '0.0.0-test', ...o }) + extraLua)
  return p
}

// ---------------------------------------------------------------------------
// Transactions and the lines they must become

const NEW = {
  name: 'MessageNew',
  mailbox: 'INBOX',
  uid: 7,
  uid_validity: 4294967295,
  date: 1700000100.25,
  tz: -300,
  from: '"Bob \\"B\\" O\'Brien" <bob@example.test>',
  from_address: 'bob@example.test',
  from_display_name: 'Bob "B" O\'Brien',
  to: 'alice@example.test',
  to_address: 'alice@example.test',
  to_display_name: '',
  subject: 'Grüße\n\tzweite Zeile \\ back\\slash \u0001\b\f\r end',
  snippet: 'Hello €, 😀 — 日本語',
  message_id: '<1@example.test>',
  flags: ['\\Seen', '\\Flagged'],
  keywords: [],
}
const APPEND = { name: 'MessageAppend', mailbox: 'Archive', uid: 1, uid_validity: 1.5, date: 0, tz: 0, from: '', from_address: '', from_display_name: '', to: '', to_address: '', to_display_name: '', snippet: '', flags: [], keywords: ['$Forwarded'] }
const EXPUNGE = { name: 'MessageExpunge', mailbox: 'INBOX', uid: 7, uid_validity: 0.1 }
const FLAGS_CLEAR = { name: 'FlagsClear', mailbox: 'INBOX', uid: 9007199254740994, uid_validity: 2 ** 70, flags: [], flags_old: ['\\Seen', '\\Recent'], keywords: ['$Junk'], keywords_old: [] }
const RENAME = { name: 'MailboxRename', mailbox: 'New/Ünïcode', mailbox_old: 'Old' }
const CREATE = { name: 'MailboxCreate', mailbox: 'INBOX' }

const UNITS: TransactionUnit[] = [
  { user: 'alice@example.test', service: 'lmtp', session: 'lmtp-1', committed: true, events: [NEW] },
  // IMAP MOVE: destination and source open together
  { user: 'alice@example.test', service: 'imap', session: 'imap-1', transactions: [
    { user: 'alice@example.test', committed: true, events: [APPEND] },
    { user: 'alice@example.test', committed: true, events: [EXPUNGE] },
  ] },
  { user: 'alice@example.test', service: 'imap', session: 'imap-1', committed: false, events: [] },
  { user: 'alice@example.test', service: 'imap', session: 'imap-1', committed: true, events: [FLAGS_CLEAR, RENAME, CREATE] },
  { user: 'bob@example.test', service: 'doveadm', session: 'doveadm-1', committed: true, events: [] },
] as unknown as TransactionUnit[]

/** The JSON text the forwarder must write for an event: name, mailbox, then the other keys sorted. */
function eventJson(e: Record<string, unknown>): string {
  const keys = ['name', 'mailbox', ...Object.keys(e).filter((k) => k !== 'name' && k !== 'mailbox').sort()]
  const value = (v: unknown): string => (typeof v === 'number' && Number.isInteger(v) ? BigInt(v).toString() : JSON.stringify(v))
  return '{' + keys.map((k) => `${JSON.stringify(k)}:${value(e[k])}`).join(',') + '}'
}
const head = (u: { user: string; service: string; session: string }): string => `"user":${JSON.stringify(u.user)},"service":${JSON.stringify(u.service)},"session":${JSON.stringify(u.session)}`
const part = (committed: boolean, events: Array<Record<string, unknown>>): string => `"committed":${committed},"events":[${events.map(eventJson).join(',')}]`

const LINES = [
  `{${head({ user: 'alice@example.test', service: 'lmtp', session: 'lmtp-1' })},${part(true, [NEW])}}`,
  `{${head({ user: 'alice@example.test', service: 'imap', session: 'imap-1' })},"transactions":[{${part(true, [APPEND])}},{${part(true, [EXPUNGE])}}]}`,
  `{${head({ user: 'alice@example.test', service: 'imap', session: 'imap-1' })},"committed":false,"events":[]}`,
  `{${head({ user: 'alice@example.test', service: 'imap', session: 'imap-1' })},${part(true, [FLAGS_CLEAR, RENAME, CREATE])}}`,
  `{${head({ user: 'bob@example.test', service: 'doveadm', session: 'doveadm-1' })},"committed":true,"events":[]}`,
]

const scriptErrors = (r: ScriptRun): number => r.host.stats.errorCount
const errorsLogged = (r: ScriptRun): string[] => r.messages(LEVEL.warn)

it('the expected lines are what the issue asks for (a sanity check of the test itself)', () => {
  expect(LINES[0]).toContain('"uid":7,"uid_validity":4294967295')
  expect(LINES[0]).toContain('"date":1700000100.25')
  expect(LINES[0]).toContain('"flags":["\\\\Seen","\\\\Flagged"]')
  expect(LINES[0]).toContain('"keywords":[]')
  expect(LINES[0]).toContain('\\n\\tzweite Zeile \\\\ back\\\\slash \\u0001\\b\\f\\r end')
  expect(LINES[1]).toContain('"uid_validity":1.5')
  expect(LINES[1]).toContain('"uid_validity":0.1}')
  expect(LINES[3]).toContain('"uid":9007199254740994,"uid_validity":1180591620717411303424') // 2^70: integral, all digits
  expect(LINES[3]).not.toContain('subject')
})

describe.each(['2.3', '2.4'] as DovecotVersion[])('Dovecot %s mode', (dovecot) => {
  it('POSTs one exact line per transaction, one per overlapping group, with the token', async () => {
    const r = await runScript({ path: script({ url: resolveForwarderUrl(base), token: TOKEN }) }, UNITS, { dovecot })
    expect(errorsLogged(r)).toEqual([])
    expect(scriptErrors(r)).toBe(0)
    expect(received.map((q) => q.body.toString('utf8'))).toEqual(LINES)
    for (const q of received) {
      expect(q.method).toBe('POST')
      expect(q.url).toBe('/v1/transactions')
      expect(q.headers.authorization).toBe(`Bearer ${TOKEN}`)
      expect(q.headers['content-type']).toBe('application/json')
      expect(q.headers['user-agent']).toBe('dovepush-forwarder/0.0.0-test')
    }
    // every body is a transaction dovepush accepts, as sent
    for (const q of received) expect(() => parseTransaction(JSON.parse(q.body.toString('utf8')), { user: 'x' })).not.toThrow()
  })

  it('keeps a URL with a path as given, and sends no Authorization without a token', async () => {
    const r = await runScript({ path: script({ url: resolveForwarderUrl(`${base}/custom/ingest?src=dovecot`) }) }, UNITS.slice(0, 1), { dovecot })
    expect(errorsLogged(r)).toEqual([])
    expect(received).toHaveLength(1)
    expect(received[0]!.url).toBe('/custom/ingest?src=dovecot')
    expect(received[0]!.headers.authorization).toBeUndefined()
  })

  it('writes invalid UTF-8 bytes as \\u00XX, DEL escaped, Lua integers and nested tables generically', async () => {
    // Lua appended after the generated script changes the event table before the forwarder sees it
    const extra = String.raw`
local forward = dovecot_lua_notify_event_message_new
function dovecot_lua_notify_event_message_new(ctx, ev)
  ev.subject = "\255a\195\169b\237\160\128c\192\175d\244\144\128\128e\127\240\159\152\128"
  ev.snippet = "\226\130" -- truncated sequence at the end
  ev.count = math.tointeger and math.tointeger(5) or 5
  ev.map = { b = { 1.0, 2.5 }, a = "x", [1.5] = "dropped key", f = print }
  ev.empty = {}
  return forward(ctx, ev)
end
`
    const r = await runScript({ path: script({ url: resolveForwarderUrl(base) }, extra) }, [{ user: 'u@example.test', session: 's', committed: true, events: [{ name: 'MessageNew', mailbox: 'INBOX', uid: 1 }] }] as unknown as TransactionUnit[], { dovecot })
    expect(errorsLogged(r)).toEqual([])
    expect(received).toHaveLength(1)
    const text = received[0]!.body.toString('latin1') // the raw bytes
    expect(text).toContain(String.raw`"subject":"\u00ffaÃ©b\u00ed\u00a0\u0080c\u00c0\u00afd\u00f4\u0090\u0080\u0080e\u007fð` + '\x9f\x98\x80"')
    expect(text).toContain(String.raw`"snippet":"\u00e2\u0082"`)
    expect(text).toContain('"count":5,"empty":[],"map":{"a":"x","b":[1,2.5]}')
    // and the body is valid UTF-8 JSON
    const json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(received[0]!.body)) as { events: Array<Record<string, unknown>> }
    expect(json.events[0]!.subject).toBe('ÿaéb\u00ed\u00a0\u0080c\u00c0\u00afd\u00f4\u0090\u0080\u0080e\u007f😀')
  })

  it('every double comes back exactly (edge cases and 300 pseudo-random bit patterns)', async () => {
    const numbers = [0, -0, 1, -1, 0.1, 0.1 + 0.2, 1.5, -2.5e-7, 5e-324, 2.2250738585072014e-308, Number.MAX_VALUE, -Number.MAX_VALUE, 2 ** 53, 2 ** 53 + 2, 2 ** 63, 2 ** 63 - 1024, -(2 ** 63), 2 ** 64, 1e21, 1e22, 123456789.12345679, 4294967296.5]
    let seed = 0x2545f4914f6cdd1dn
    const view = new DataView(new ArrayBuffer(8))
    while (numbers.length < 322) {
      seed ^= seed << 13n; seed &= (1n << 64n) - 1n; seed ^= seed >> 7n; seed ^= seed << 17n; seed &= (1n << 64n) - 1n
      view.setBigUint64(0, seed)
      const d = view.getFloat64(0)
      if (Number.isFinite(d)) numbers.push(d)
    }
    const file = tmp('numbers.ndjson')
    const units = [{ user: 'n@example.test', session: 'n', committed: true, events: numbers.map((uid) => ({ name: 'MessageExpunge', mailbox: 'INBOX', uid, uid_validity: 1 })) }] as unknown as TransactionUnit[]
    const r = await runScript({ path: script({ toFile: file }) }, units, { dovecot })
    expect(errorsLogged(r)).toEqual([])
    const line = readFileSync(file, 'utf8').trim()
    const back = (JSON.parse(line) as { events: Array<{ uid: number }> }).events.map((e) => e.uid)
    expect(back).toHaveLength(numbers.length)
    for (let i = 0; i < numbers.length; i++) expect(Object.is(back[i], numbers[i]), `${numbers[i]} came back as ${back[i]}`).toBe(true)
    expect(line).toContain('"uid":9007199254740994,')
    expect(line).toContain('"uid":9223372036854775808,') // 2^63: integral, so digits, beyond int64 too
    expect(line).toContain(`"uid":${BigInt(Number.MAX_VALUE)},`)
    expect(line).toContain('"uid":5e-324,') // the shortest text that reads back
    expect(line).toContain('"uid":0.30000000000000004,')
  })

  it('a server that is down: one logged error per kind, no script error, the mail goes on', async () => {
    const port = await closedPort()
    const url = resolveForwarderUrl(`http://127.0.0.1:${port}`)
    const r = await runScript({ path: script({ url, token: TOKEN }) }, UNITS, { dovecot })
    expect(scriptErrors(r)).toBe(0)
    expect(r.host.stats.calls.get('dovecot_lua_notify_end_txn')).toBe(6)
    const errors = r.messages(LEVEL.error)
    // one session per (user, session): lmtp-1, imap-1, doveadm-1 → one line each (throttled within a session)
    expect(errors).toEqual([
      `dovepush forwarder: POST ${url} failed: 9003 connect(127.0.0.1:${port}) failed: Connection refused`,
      `dovepush forwarder: POST ${url} failed: 9003 connect(127.0.0.1:${port}) failed: Connection refused`,
      `dovepush forwarder: POST ${url} failed: 9003 connect(127.0.0.1:${port}) failed: Connection refused`,
    ])
    expect(r.messages().join('\n')).not.toContain(TOKEN)
  })

  it('a slow server: the one attempt times out, logged, no script error', async () => {
    respond = () => {} // never answers; stopServer drops the connection at the end
    const url = resolveForwarderUrl(base)
    const started = Date.now()
    const r = await runScript({ path: script({ url, timeoutMs: 300 }) }, UNITS.slice(0, 1), { dovecot })
    expect(Date.now() - started).toBeLessThan(4000)
    expect(received).toHaveLength(1) // one attempt, no retry
    expect(scriptErrors(r)).toBe(0)
    const errors = r.messages(LEVEL.error)
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatch(new RegExp(`^dovepush forwarder: POST ${url.replace(/[.?]/g, '\\$&')} failed: 9008 `))
    server.closeAllConnections()
  })

  it('a refusing server (401): logged with status, reason and a piece of the body, never the token', async () => {
    respond = (_r, res) => {
      res.statusCode = 401
      res.end('bad token\nfor you')
    }
    const url = resolveForwarderUrl(`http://user:pa55word@127.0.0.1:${new URL(base).port}`)
    const r = await runScript({ path: script({ url, token: TOKEN }) }, UNITS.slice(0, 1), { dovecot })
    expect(scriptErrors(r)).toBe(0)
    expect(r.messages(LEVEL.error)).toEqual([`dovepush forwarder: POST ${base}/v1/transactions failed: 401 Unauthorized: bad token for you`])
    expect(received[0]!.headers.authorization).toBe(`Bearer ${TOKEN}`) // the script's header wins over user:pass@
    expect(r.messages().join('\n')).not.toContain(TOKEN)
    expect(r.messages().join('\n')).not.toContain('pa55word')
  })

  it('--to-file: lines dovepush accepts, that replay to the same event tables (round trip through recorder.lua)', async () => {
    const file = tmp('record.ndjson')
    const r = await runScript({ path: script({ toFile: file }) }, UNITS, { dovecot })
    expect(errorsLogged(r)).toEqual([])
    const lines = readFileSync(file, 'utf8').split('\n')
    expect(lines.pop()).toBe('')
    expect(lines).toEqual(LINES)
    const replayed = lines.map((l) => parseTransaction(JSON.parse(l), { user: 'default@example.test' }))

    const direct = await record(UNITS, dovecot)
    const again = await record(replayed, dovecot)
    const keep = (c: { call: string }) => c.call.startsWith('dovecot_lua_notify_event_') || c.call === 'dovecot_lua_notify_end_txn'
    expect(direct.filter(keep)).toHaveLength(12) // 6 end_txn + 6 events
    expect(again.filter(keep)).toEqual(direct.filter(keep))
    // the user objects too, but for what differs per run
    const users = (calls: Array<{ call: string; args: unknown[] }>) => calls.filter((c) => c.call === 'dovecot_lua_notify_begin_txn').map((c) => {
      const v = (c.args[0] as { v: Record<string, { v?: unknown }> }).v
      return [v.username!.v, v.service!.v, v.session_id!.v]
    })
    expect(users(again)).toEqual(users(direct))
  })

  it('sends and appends when given both; a file that cannot be written is logged and the POST still goes', async () => {
    const file = join(dir, 'no-such-dir', 'record.ndjson')
    const r = await runScript({ path: script({ url: resolveForwarderUrl(base), toFile: file }) }, UNITS.slice(0, 2), { dovecot })
    expect(scriptErrors(r)).toBe(0)
    expect(received.map((q) => q.body.toString('utf8'))).toEqual(LINES.slice(0, 2))
    expect(r.messages(LEVEL.error)).toEqual([
      `dovepush forwarder: cannot append to ${file}: ${file}: No such file or directory`,
      `dovepush forwarder: cannot append to ${file}: ${file}: No such file or directory`,
    ])
  })

  it(`a script generated for the other version only logs that its HTTP client options are refused (or runs, 2.3 ignoring 2.4's names)`, async () => {
    const other = dovecot === '2.3' ? '2.4' : '2.3'
    const r = await runScript({ path: script({ url: resolveForwarderUrl(base), dovecot: other }) }, UNITS.slice(0, 1), { dovecot })
    expect(scriptErrors(r)).toBe(0)
    if (dovecot === '2.4') {
      expect(r.messages(LEVEL.error)).toEqual([expect.stringMatching(/^dovepush forwarder: cannot create the HTTP client: Invalid HTTP client setting: \w+ is unknown setting$/)])
      expect(received).toHaveLength(0)
    } else {
      expect(r.messages(LEVEL.warn)).toEqual([])
      expect(received.map((q) => q.body.toString('utf8'))).toEqual(LINES.slice(0, 1))
    }
    const same = await runScript({ path: script({ url: resolveForwarderUrl(base), dovecot }) }, UNITS.slice(0, 1), { dovecot })
    expect(same.messages(LEVEL.warn)).toEqual([])
    expect(received.at(-1)!.body.toString('utf8')).toBe(LINES[0])
  })

  it('never raises into Dovecot: foreign contexts, events after end, a broken event table, and script_init returns 0', async () => {
    // Lua appended after the script calls the handlers the wrong way round
    const extra = String.raw`
local begin, ev_new, fin = dovecot_lua_notify_begin_txn, dovecot_lua_notify_event_message_new, dovecot_lua_notify_end_txn
function dovecot_lua_notify_begin_txn(user)
  ev_new(nil, {})                 -- no context
  ev_new({}, {})                  -- someone else's table
  fin("nope", true)
  local dead = begin(nil)         -- no user: begin fails, a context that is ignored
  ev_new(dead, { name = "x" })
  fin(dead, true)
  return begin(user)
end
function dovecot_lua_notify_event_message_new(ctx, ev)
  local deep = {} local t = deep for i = 1, 40 do t.x = {} t = t.x end
  ev_new(ctx, { name = "Deep", mailbox = "X", deep = deep }) -- too deep: this event is dropped
  ev_new(ctx, "not a table")
  return ev_new(ctx, ev)
end
function dovecot_lua_notify_end_txn(ctx, ok)
  fin(ctx, ok)
  fin(ctx, ok)                    -- twice
  ev_new(ctx, { name = "Late", mailbox = "INBOX" })
end
`
    const r = await runScript({ path: script({ url: resolveForwarderUrl(base) }, extra) }, UNITS.slice(0, 1), { dovecot })
    expect(scriptErrors(r)).toBe(0)
    expect(r.host.stats.errors.init).toBe(0)
    expect(received.map((q) => q.body.toString('utf8'))).toEqual(LINES.slice(0, 1))
    const errors = r.messages(LEVEL.error)
    expect(errors.every((m) => m.startsWith('dovepush forwarder: '))).toBe(true)
    // throttled per kind: the first of each kind
    expect(errors).toEqual([
      'dovepush forwarder: event with a context this script did not make (nil)',
      'dovepush forwarder: end_txn with a context this script did not make (string)',
      expect.stringContaining('dovepush forwarder: '), // begin_txn failed: indexing nil
    ])
  })
})

describe('generation', () => {
  it('resolves the URL: no path → /v1/transactions, a path → as given', () => {
    expect(resolveForwarderUrl('http://127.0.0.1:8025')).toBe('http://127.0.0.1:8025/v1/transactions')
    expect(resolveForwarderUrl('http://127.0.0.1:8025/')).toBe('http://127.0.0.1:8025/v1/transactions')
    expect(resolveForwarderUrl('https://push.example.test/')).toBe('https://push.example.test/v1/transactions')
    expect(resolveForwarderUrl('http://127.0.0.1:8025/hook')).toBe('http://127.0.0.1:8025/hook')
    expect(resolveForwarderUrl('http://127.0.0.1:8025/v1/transactions')).toBe('http://127.0.0.1:8025/v1/transactions')
    expect(() => resolveForwarderUrl('ftp://x/')).toThrow(/only http and https/)
    expect(() => resolveForwarderUrl('/relative')).toThrow(/absolute URL/)
    expect(() => resolveForwarderUrl('http://x/#frag')).toThrow(/fragment/)
  })

  it('embeds any text safely in Lua', () => {
    expect(luaString('a"b\\c\nd\u0000é]]')).toBe('"a\\"b\\\\c\\010d\\000\\195\\169]]"')
  })

  it('the header explains the install for 2.3 and 2.4 and warns about the token; the token never appears elsewhere', () => {
    const s = forwarderScript({ url: 'http://127.0.0.1:8025/v1/transactions', token: TOKEN, toFile: '/var/vmail/rec.ndjson', dovecot: 'auto', timeoutMs: 1500, version: '9.9.9' })
    expect(s).toContain('push_notification_driver2 = lua:file=/etc/dovecot/dovepush-forwarder.lua')
    expect(s).toContain('mail_plugins = $mail_plugins notify push_notification mail_lua push_notification_lua')
    expect(s).toContain('push_notification dovepush_forwarder {')
    expect(s).toContain('contains the bearer token')
    expect(s).toContain('writable by that user')
    expect(s).toContain('1500 ms timeout')
    expect(s.split(TOKEN)).toHaveLength(2) // once: local TOKEN = "…"
    expect(s).toContain(`local TOKEN = "${TOKEN}"`)
    expect(() => forwarderScript({ token: 'a b', url: 'http://127.0.0.1/x', dovecot: 'auto', timeoutMs: 1, version: '1' })).toThrow(/visible ASCII/)
    expect(() => forwarderScript({ dovecot: 'auto', timeoutMs: 1, version: '1' })).toThrow(/--url and\/or --to-file/)
  })

  it('`dovepush forwarder` writes the script (0600), keeps flag values exactly as typed', async () => {
    const out = tmp('fwd.lua')
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
    try {
      await main(['node', 'dovepush', 'forwarder', '--url', 'http://127.0.0.1:8025', '--token', '00123', '--to-file', '/var/vmail/rec.ndjson', '--dovecot', '2.4', '--timeout', '750', '--output', out])
    } finally {
      stderr.mockRestore()
    }
    expect(process.exitCode ?? 0).toBe(0)
    const s = readFileSync(out, 'utf8')
    expect(statSync(out).mode & 0o777).toBe(0o600)
    expect(s).toContain('local URL = "http://127.0.0.1:8025/v1/transactions"')
    expect(s).toContain('local TOKEN = "00123"')
    expect(s).toContain('local TO_FILE = "/var/vmail/rec.ndjson"')
    expect(s).toContain('local DOVECOT = "2.4"')
    expect(s).toContain('local TIMEOUT_MS = 750')
  })

  it('--token-file; bad usage is an InvalidArgumentError', async () => {
    const tokenFile = tmp('token')
    writeFileSync(tokenFile, `${TOKEN}\n`)
    let text = ''
    const sink = { write: (s: string) => (text += s) }
    expect(await forwarderCommand({ url: 'http://127.0.0.1:1', tokenFile, dovecot: 'auto', timeout: 2000 }, ['forwarder', '--token-file', tokenFile], sink, sink)).toBe(0)
    expect(text).toContain(`local TOKEN = "${TOKEN}"`)
    const fails = (flags: Record<string, unknown>) => expect(forwarderCommand(flags, [], sink, sink)).rejects.toMatchObject({ code: 'DOVEPUSH_ERR_INVALID_ARG' })
    await fails({})
    await fails({ toFile: 'relative.ndjson' })
    await fails({ url: 'http://127.0.0.1:1', dovecot: '2.5' })
    await fails({ url: 'http://127.0.0.1:1', timeout: 0 })
    await fails({ toFile: '/x.ndjson', token: 'abc' })
    await fails({ url: 'gopher://x' })
  })
})

// ---------------------------------------------------------------------------

type RecordedCall = { call: string; txn: number; args: unknown[] }

/** Runs lua-scripts/recorder.lua over units and returns its calls. */
async function record(units: readonly TransactionUnit[], dovecot: DovecotVersion): Promise<RecordedCall[]> {
  const out = tmp('recorder.ndjson')
  const saved = process.env.DOVEPUSH_RECORD
  process.env.DOVEPUSH_RECORD = out
  try {
    await runScript({ path: resolve('lua-scripts/recorder.lua') }, [...units], { dovecot })
  } finally {
    if (saved === undefined) delete process.env.DOVEPUSH_RECORD
    else process.env.DOVEPUSH_RECORD = saved
  }
  return readFileSync(out, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as RecordedCall)
}
