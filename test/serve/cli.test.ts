// `dovepush serve` as a command: flags validated once (listen address and
// auth rules, sizes, the token file read once), SIGTERM drains and exits 0,
// a script that does not load or a busy address exits 1, bad usage 2.

import { execFile, spawn } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { normalizeServeOptions, parseListen, parseSize, serveCommand } from '../../src/cli/serve.js'
import { createLogger } from '../../src/log/logger.js'
import { startServe } from '../../src/serve/server.js'
import { traceScripts } from '../helpers/trace.js'
import { call, post, tx, until } from './helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'dovepush-serve-cli-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let n = 0
function file(name: string, text: string, mode = 0o600): string {
  const p = join(dir, `${++n}-${name}`)
  writeFileSync(p, text, { mode })
  return p
}
const withTrace = traceScripts('dovepush-serve-cli-')
const quietLog = () => createLogger({ format: 'json', level: 'error', destination: { write: () => {} } })
const SCRIPT = file('noop.lua', 'function dovecot_lua_notify_begin_txn(u) return {} end\nfunction dovecot_lua_notify_event_message_new(c, e) end\nfunction dovecot_lua_notify_end_txn(c, ok) end\n')

describe('normalizeServeOptions', () => {
  it('fills the defaults', async () => {
    const o = await normalizeServeOptions(SCRIPT, {})
    expect(o.serve).toMatchObject({ host: '127.0.0.1', port: 8025, concurrency: 32, queueSize: 10000, maxBody: 1048576, sessionIdleSeconds: 0, user: 'user@example.test', service: 'imap', engine: 'wasmoon', dovecot: '2.3', http: 'real' })
    expect(o.serve.token).toBeUndefined()
  })

  it('refuses a non-loopback --listen without --token-file or --insecure-no-auth', async () => {
    await expect(normalizeServeOptions(SCRIPT, { listen: '0.0.0.0:8025' })).rejects.toThrow(
      '--listen 0.0.0.0:8025: not a loopback address, so anyone who reaches it could run transactions: give --token-file, or --insecure-no-auth to serve without authentication',
    )
    await expect(normalizeServeOptions(SCRIPT, { listen: '[::]:8025' })).rejects.toMatchObject({ code: 'DOVEPUSH_ERR_INVALID_ARG' })
    expect((await normalizeServeOptions(SCRIPT, { listen: '0.0.0.0:8025', insecureNoAuth: true })).serve.host).toBe('0.0.0.0')
    const token = file('token', 'abc\n')
    expect((await normalizeServeOptions(SCRIPT, { listen: '192.0.2.1:9000', tokenFile: token })).serve).toMatchObject({ host: '192.0.2.1', port: 9000, token: 'abc' })
    await expect(normalizeServeOptions(SCRIPT, { tokenFile: token, insecureNoAuth: true })).rejects.toThrow('--token-file and --insecure-no-auth: give one')
    // loopback forms need nothing
    for (const l of ['127.0.0.1:1', 'localhost:1', '[::1]:1', '127.1.2.3:1', 8025]) await expect(normalizeServeOptions(SCRIPT, { listen: l })).resolves.toBeDefined()
  })

  it('names what is wrong with a flag', async () => {
    expect(parseListen('8080')).toEqual({ host: '127.0.0.1', port: 8080 })
    expect(parseListen('[::1]:0')).toEqual({ host: '::1', port: 0 })
    expect(() => parseListen('localhost')).toThrow('--listen: expected HOST:PORT (127.0.0.1:8025, [::1]:8025, 0.0.0.0:8025), got "localhost"')
    expect(() => parseListen('1.2.3.4:70000')).toThrow('--listen: port 70000 out of range (0-65535)')
    expect(parseSize('--max-body', '512k')).toBe(524288)
    expect(parseSize('--max-body', 100)).toBe(100)
    expect(() => parseSize('--max-body', '1g')).toThrow('--max-body: expected a size in bytes (e.g. 1048576, 512k, 4m), got "1g"')
    await expect(normalizeServeOptions(SCRIPT, { concurrency: 0 })).rejects.toThrow('--concurrency: expected a positive integer, got "0"')
    await expect(normalizeServeOptions(SCRIPT, { queueSize: 'lots' })).rejects.toThrow('--queue-size: expected a positive integer, got "lots"')
    await expect(normalizeServeOptions(SCRIPT, { sessionIdle: '-1' })).rejects.toThrow('--session-idle: expected seconds, 0 to 2147483 (0 = never), got "-1"')
    expect((await normalizeServeOptions(SCRIPT, { sessionIdle: '1.5' })).serve.sessionIdleSeconds).toBe(1.5)
    await expect(normalizeServeOptions(SCRIPT, { engine: 'luajit' })).rejects.toThrow('--engine: expected one of wasmoon, fengari, got "luajit"')
    await expect(normalizeServeOptions(SCRIPT, { tokenFile: join(dir, 'nope') })).rejects.toThrow(`--token-file ${join(dir, 'nope')}: no such file`)
    const empty = file('empty', '\nsecret\n')
    await expect(normalizeServeOptions(SCRIPT, { tokenFile: empty })).rejects.toThrow(`--token-file ${empty}: empty first line (the token goes there)`)
    const warnings: string[] = []
    await normalizeServeOptions(SCRIPT, { tokenFile: file('open-token', 'abc', 0o644) }, (w) => warnings.push(w))
    expect(warnings).toEqual([expect.stringMatching(/readable by other users \(mode 644\); chmod 600 it$/)])
  })

  it('reads the token file once, at start', async () => {
    const path = file('token', 'first-token\n')
    const o = await normalizeServeOptions(SCRIPT, { tokenFile: path, listen: '127.0.0.1:0' })
    const handle = await startServe({ ...o.serve, log: quietLog() })
    try {
      writeFileSync(path, 'second-token\n')
      expect((await post(handle.url, tx('a@x', 1), { authorization: 'Bearer first-token' })).status).toBe(202)
      expect((await post(handle.url, tx('a@x', 2), { authorization: 'Bearer second-token' })).status).toBe(401)
    } finally {
      await handle.close()
    }
  })
})

describe('serveCommand', () => {
  it('serves until SIGTERM, then drains, runs script_deinit and returns 0', async () => {
    const t = withTrace('function dovecot_lua_notify_begin_txn(u) return {} end\nfunction dovecot_lua_notify_event_message_new(c, e) trace("uid " .. string.format("%d", e.uid)) end\nfunction dovecot_lua_notify_end_txn(c, ok) end\nfunction script_deinit() trace("deinit") end')
    const script = file('traced.lua', t.source)
    const signals = new EventEmitter()
    let err = ''
    let url = ''
    const done = serveCommand(script, { listen: '127.0.0.1:0' }, { signals, log: quietLog(), stderr: { write: (s: string) => (err += s) }, onListening: (u) => (url = u) })
    await until(() => url !== '')
    expect(err).toMatch(/^dovepush: serving .*traced\.lua on http:\/\/127\.0\.0\.1:\d+ \(POST \/v1\/transactions, GET \/healthz, GET \/metrics\)\n$/)
    expect((await post(url, [tx('a@x', 1), tx('b@x', 2)].join('\n'))).status).toBe(202)
    signals.emit('SIGTERM')
    expect(await done).toBe(0)
    expect(t.read().sort()).toEqual(['deinit', 'deinit', 'uid 1', 'uid 2'])
    expect(err).toContain('dovepush: SIGTERM: draining')
    expect(err).toContain('dovepush: 2 transactions (2 committed, 0 rolled back), 2 events, 2 sessions')
    expect(err).toContain('serve: 2 accepted, 0 refused (503/413), 0 bad requests (4xx)')
    expect(signals.listenerCount('SIGTERM')).toBe(0)
  })

  it('returns 1 when the script does not load or the address is taken', async () => {
    let err = ''
    const stderr = { write: (s: string) => (err += s) }
    const broken = file('broken.lua', 'function (')
    expect(await serveCommand(broken, { listen: '127.0.0.1:0' }, { log: quietLog(), stderr })).toBe(1)
    expect(err).toMatch(/^dovepush: DOVEPUSH_ERR_SCRIPT_LOAD: lua_load\(.*broken\.lua\) failed: .*broken\.lua:1: /)
    const busy = await startServe({ script: SCRIPT, port: 0, log: quietLog() })
    try {
      err = ''
      expect(await serveCommand(SCRIPT, { listen: `127.0.0.1:${busy.port}` }, { log: quietLog(), stderr })).toBe(1)
      expect(err).toBe(`dovepush: listen 127.0.0.1:${busy.port}: address already in use\n`)
    } finally {
      await busy.close()
    }
  })
})

// The real CLI in a subprocess (bin/dovepush.js runs dist/, built by `npm test`'s tsc step).
describe('dovepush serve (subprocess)', () => {
  it('SIGTERM drains the queue, ends the sessions and exits 0', async () => {
    const t = withTrace('function dovecot_lua_notify_begin_txn(u) return {} end\nfunction dovecot_lua_notify_event_message_new(c, e) trace("uid " .. string.format("%d", e.uid)) end\nfunction dovecot_lua_notify_end_txn(c, ok) end\nfunction script_deinit() trace("deinit") end')
    const script = file('sub.lua', t.source)
    const child = spawn(process.execPath, ['bin/dovepush.js', 'serve', script, '--listen', '127.0.0.1:0', '--log-format', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    child.stdout.resume()
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    await until(() => /on (http:\/\/\S+)/.test(stderr), 20_000)
    const url = /on (http:\/\/\S+)/.exec(stderr)![1]!
    expect((await call(`${url}/healthz`)).status).toBe(200)
    expect((await post(url, Array.from({ length: 50 }, (_, i) => tx(`u${i % 5}@x`, i)).join('\n'))).status).toBe(202)
    child.kill('SIGTERM')
    expect(await exited).toBe(0)
    expect(t.read().filter((l) => l.startsWith('uid'))).toHaveLength(50)
    expect(t.read().filter((l) => l === 'deinit')).toHaveLength(5)
    expect(stderr).toContain('serve: 50 accepted')
  })

  it('exits 2 on a non-loopback --listen without a token', async () => {
    const r = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile(process.execPath, ['bin/dovepush.js', 'serve', SCRIPT, '--listen', '0.0.0.0:0'], (err, _out, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr })),
    )
    expect(r.code).toBe(2)
    expect(r.stderr).toBe('dovepush: DOVEPUSH_ERR_INVALID_ARG: --listen 0.0.0.0:0: not a loopback address, so anyone who reaches it could run transactions: give --token-file, or --insecure-no-auth to serve without authentication\n')
  })
})
