// dovecot.http's plain-HTTP connections (src/lua/dovecot/http-connection.ts):
// the response parser on byte streams cut anywhere, and the framings a real
// server sends (raw TCP servers on 127.0.0.1, so each answer is exactly as written).

import { Buffer } from 'node:buffer'
import * as net from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { ResponseError, ResponseParser } from '../../../src/lua/dovecot/http-connection.js'
import { inBeginTxn } from '../../helpers/begin-txn.js'
import { makeHost, txn } from '../../helpers/run-script.js'
import { KEYS_AND_R, traceScripts } from '../../helpers/trace.js'

const withTrace = traceScripts('dovepush-conn-', KEYS_AND_R)

/** Feeds `text` in pieces of `step` bytes; returns the response and the 1xx statuses seen. */
function parse(text: string, o: { step?: number; head?: boolean; close?: boolean } = {}) {
  const interim: number[] = []
  const p = new ResponseParser(o.head === true, (s) => interim.push(s))
  const bytes = Buffer.from(text, 'latin1')
  const step = o.step ?? bytes.length
  for (let i = 0; i < bytes.length && p.done === undefined; i += step) p.push(bytes.subarray(i, i + step))
  const ended = o.close === true ? p.end() : undefined
  const r = p.done
  return { interim, ended, extra: p.extra, r: r && { ...r, body: Buffer.from(r.body).toString('latin1') } }
}

describe('ResponseParser', () => {
  for (const step of [1, 3, 1000]) {
    it(`Content-Length, chunked and 1xx answers, fed ${step} bytes at a time`, () => {
      expect(parse('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello', { step })).toEqual({
        interim: [100], ended: undefined, extra: 0,
        r: { status: 200, reason: 'OK', headers: [['Content-Type', 'text/plain'], ['Content-Length', '5']], body: 'hello', keepAlive: true, keepAliveHint: undefined },
      })
      expect(parse('HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5\r\n\r\n3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: 1\r\n\r\n', { step }).r).toEqual({
        status: 201, reason: 'Created', headers: [['Transfer-Encoding', 'chunked'], ['Keep-Alive', 'timeout=5']], body: 'abc0123456789abcdef', keepAlive: true, keepAliveHint: 5,
      })
      expect(parse('HTTP/1.1 102 Processing\n\nHTTP/1.1 204 No Content\nX: y\n\n', { step })).toMatchObject({ interim: [102], r: { status: 204, body: '', headers: [['X', 'y']] } })
    })
  }

  it('no body for HEAD, 204 and 304; a body until the end of the connection otherwise', () => {
    expect(parse('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n', { head: true }).r).toMatchObject({ status: 200, body: '', keepAlive: true })
    expect(parse('HTTP/1.1 304 Not Modified\r\n\r\n').r).toMatchObject({ status: 304, body: '' })
    const closed = parse('HTTP/1.0 200 OK\r\n\r\nall of it', { close: true })
    expect(closed).toMatchObject({ ended: true, r: { status: 200, body: 'all of it', keepAlive: false } })
  })

  it('keep-alive: HTTP/1.1 unless Connection: close, HTTP/1.0 only with keep-alive; not with bytes after the answer', () => {
    expect(parse('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n').r?.keepAlive).toBe(false)
    expect(parse('HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n').r?.keepAlive).toBe(true)
    expect(parse('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n').r?.keepAlive).toBe(false)
    expect(parse('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA')).toMatchObject({ extra: 5, r: { body: 'ok', keepAlive: false } })
  })

  it('an answer cut short is not complete; malformed ones are ResponseErrors', () => {
    expect(parse('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort', { close: true })).toMatchObject({ ended: false, r: undefined })
    expect(() => parse('HTTP/2 200 OK\r\n\r\n')).toThrow(ResponseError)
    expect(() => parse('HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n')).toThrow('Invalid Content-Length header: "ten"')
    expect(() => parse('HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n')).toThrow('Invalid header line')
    expect(() => parse('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n')).toThrow('Invalid chunk size')
  })
})

describe('dovecot.http over raw servers', () => {
  const servers: net.Server[] = []
  const sockets = new Set<net.Socket>()
  afterEach(async () => {
    for (const s of sockets) s.destroy() // the client keeps idle connections for seconds
    sockets.clear()
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))))
  })
  /** A server answering each request (after its head and Content-Length body) with `answers[i]`, then closing if asked. */
  let accepted = 0
  /** Request heads the raw servers received, in order. */
  const heads: string[] = []
  async function rawServer(answers: string[], closeAfter = false): Promise<number> {
    const server = net.createServer((sock) => {
      accepted++
      sockets.add(sock)
      let buf = ''
      sock.on('data', (d) => {
        buf += d.toString('latin1')
        for (;;) {
          const end = buf.indexOf('\r\n\r\n')
          if (end < 0) return
          const len = Number(/content-length: (\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0)
          if (/expect: 100-continue/i.test(buf.slice(0, end)) && buf.length < end + 4 + len && !buf.includes('\u0000sent100')) {
            sock.write('HTTP/1.1 100 Continue\r\n\r\n')
            buf += '\u0000sent100'
          }
          const have = buf.replace('\u0000sent100', '')
          if (have.length < end + 4 + len) return
          heads.push(have.slice(0, end))
          buf = have.slice(end + 4 + len)
          sock.write(answers.shift() ?? 'HTTP/1.1 500 Out of answers\r\nContent-Length: 0\r\n\r\n')
          if (closeAfter) sock.end()
        }
      })
    })
    servers.push(server)
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    return (server.address() as net.AddressInfo).port
  }

  it('reads chunked and close-delimited answers, and keeps one connection for keep-alive ones', async () => {
    const port = await rawServer([
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
      'HTTP/1.1 202 Accepted\r\nContent-Length: 3\r\n\r\nyes',
    ])
    accepted = 0
    const port2 = await rawServer(['HTTP/1.0 200 OK\r\nX-Kind: close-delimited\r\n\r\nuntil the end'], true)
    const { lines } = await inBeginTxn(withTrace, `
      local c = dovecot.http.client({})
      local r1 = c:request({ url = "http://127.0.0.1:${port}/a", method = "POST" })
      r1:set_payload("x=1")
      local a = r1:submit()
      local b = c:request({ url = "http://127.0.0.1:${port}/b" }):submit()
      trace(r(a:status(), a:payload(), b:status(), b:reason(), b:payload()))
      local d = dovecot.http.client({}):request({ url = "http://127.0.0.1:${port2}/" }):submit()
      trace(r(d:status(), d:header("x-kind"), d:payload()))`, 'wasmoon')
    expect(lines).toEqual(['200 ok 202 Accepted yes', '200 close-delimited until the end'])
    expect(accepted).toBe(2) // the first two requests shared one connection
  })

  it('a malformed answer is 9007; an answer cut short is 9005', async () => {
    const bad = await rawServer(['HTTP/1.1 abc nope\r\n\r\n'])
    const cut = await rawServer(['HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort'], true)
    const { lines } = await inBeginTxn(withTrace, `
      local c = dovecot.http.client({})
      local a = c:request({ url = "http://127.0.0.1:${bad}/" }):submit()
      local b = c:request({ url = "http://127.0.0.1:${cut}/" }):submit()
      trace(a:status()) trace(a:reason()) trace(b:status()) trace(b:reason())`, 'wasmoon')
    expect(lines.slice(0, 3)).toEqual(['9007', 'Invalid HTTP response: Invalid HTTP status line: "HTTP/1.1 abc nope"', '9005'])
    // the stream name of the state's second connection, as Dovecot words it: (conn:IP:PORT,id=N)
    expect(lines[3]).toMatch(/^Connection lost: read\(\(conn:127\.0\.0\.1:\d+,id=2\)\) failed: EOF \(Request queued/)
  })

  it('a client made per transaction reuses the idle connection of the one before, as in Dovecot (the connections outlive their clients)', async () => {
    const ok = 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'
    const port = await rawServer([ok, ok, ok])
    accepted = 0
    const h = await makeHost({ source: `
      function dovecot_lua_notify_begin_txn() end
      function dovecot_lua_notify_event_message_new()
        local r = dovecot.http.client({}):request({ url = "http://127.0.0.1:${port}/" }):submit()
        assert(r:status() == 200, r:reason())
      end
      function dovecot_lua_notify_end_txn() end` })
    try {
      for (let i = 0; i < 3; i++) await h.host.submit(txn([{ name: 'MessageNew', mailbox: 'INBOX', uid: i + 1 }]))
      expect(h.messages(50)).toEqual([])
      expect(accepted).toBe(1)
    } finally {
      await h.host.close()
      h.cleanup()
    }
  })

  // Both heads as a real Dovecot 2.3.19.1 sent them to a proxy (recorded
  // with a push script making these requests during an LMTP delivery), the
  // second client's request on the first one's connection.
  it('proxy_url: an http:// request goes to the proxy with the absolute URL, Proxy-Authorization from user:pass, no Connection header', async () => {
    const proxy = await rawServer(['HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nproxied', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'])
    heads.length = 0
    accepted = 0
    const { lines, run } = await inBeginTxn(withTrace, `
      local c = dovecot.http.client({ proxy_url = "http://pu:pw@127.0.0.1:${proxy}/", user_agent = "ua/1" })
      local rq = c:request({ url = "http://origin.example.test:8080/hook?a=1", method = "POST" })
      rq:add_header("Content-Type", "text/plain")
      rq:set_payload("hi")
      local res = rq:submit()
      trace(r(res:status(), res:payload()))
      trace(r(pcall(dovecot.http.client, { proxy_url = "/relative" })))
      local g = dovecot.http.client({ proxy_url = "http://127.0.0.1:${proxy}" }):request({ url = "http://origin.example.test/" }):submit()
      trace(r(g:status()))`, 'wasmoon')
    expect(lines[0]).toBe('200 proxied')
    expect(lines[1]).toMatch(/^false .*Invalid HTTP client setting: proxy_url is invalid: Relative HTTP URL not allowed$/)
    expect(lines[2]).toBe('200')
    expect(accepted).toBe(1)
    expect(heads).toHaveLength(2)
    expect(heads[1]!.replace(/Date: [^\r]*/, 'Date: (date)')).toBe('GET http://origin.example.test/ HTTP/1.1\r\nHost: origin.example.test\r\nDate: (date)')
    expect(heads[0]!.replace(/Date: [^\r]*/, 'Date: (date)')).toBe([
      'POST http://origin.example.test:8080/hook?a=1 HTTP/1.1',
      'Host: origin.example.test:8080',
      'Date: (date)',
      `Proxy-Authorization: Basic ${Buffer.from('pu:pw').toString('base64')}`,
      'User-Agent: ua/1',
      'Expect: 100-continue',
      'Content-Length: 2',
      'Content-Type: text/plain',
    ].join('\r\n'))
    expect(run.messages(50)).toEqual([])
  })

  // 2.4.4: http_client_settings_check parses proxy_url with no flags (no
  // userinfo, http-url.c "HTTP URL does not allow `userinfo@' part"); the
  // credentials are proxy_username/proxy_password, sent when the username is
  // not empty (password default "": "user:"), http_client_request_send_real.
  it('2.4: proxy credentials come from proxy_username/proxy_password; user:pass@ in proxy_url is refused', async () => {
    const ok = 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'
    const proxy = await rawServer([ok, ok])
    heads.length = 0
    const { lines, run } = await inBeginTxn(withTrace, `
      trace(r(pcall(dovecot.http.client, { proxy_url = "http://pu:pw@127.0.0.1:${proxy}/" })))
      local c = dovecot.http.client({ proxy_url = "http://127.0.0.1:${proxy}/", proxy_username = "pu", proxy_password = "pw" })
      trace(r(c:request({ url = "http://origin.example.test/a" }):submit():status()))
      local d = dovecot.http.client({ proxy_url = "http://127.0.0.1:${proxy}/", proxy_username = "only" })
      trace(r(d:request({ url = "http://origin.example.test/b" }):submit():status()))`, 'wasmoon', { dovecot: '2.4' })
    // worded as the other http_client_settings_check failures (http-24.test.ts)
    expect(lines[0]).toBe("false Invalid HTTP client setting: http_client settings: Invalid settings: Invalid http_client_proxy_url: HTTP URL does not allow `userinfo@' part")
    expect(lines.slice(1)).toEqual(['200', '200'])
    expect(heads.map((h) => h.split('\r\n').find((l) => l.startsWith('Proxy-Authorization')))).toEqual([
      `Proxy-Authorization: Basic ${Buffer.from('pu:pw').toString('base64')}`,
      `Proxy-Authorization: Basic ${Buffer.from('only:').toString('base64')}`,
    ])
    expect(run.messages(50)).toEqual([])
  })
})
