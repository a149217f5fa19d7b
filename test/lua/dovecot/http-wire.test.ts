// dovecot.http on the wire (node:http transport): the exact request head
// Dovecot 2.3.19 writes (http_client_request_send_real), Expect:
// 100-continue handled as lib-http does (wait for 100, 2 s timer, peer
// memory, 417), keep-alive per client, connection loss, --http capture.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLuaHost } from '../../../src/drivers/lua.js'
import { CaptureSink } from '../../../src/http/capture-sink.js'
import { inBeginTxn } from '../../helpers/begin-txn.js'
import { engine as loadEngine, txn } from '../../helpers/run-script.js'
import { KEYS_AND_R, traceScripts } from '../../helpers/trace.js'

interface Seen { url: string; headers: Array<[string, string]>; body: string; port: number; at: number; headAt: number }
const seen: Seen[] = []
let server: Server
let host = ''
let base = ''

const pairs = (raw: string[]): Array<[string, string]> => {
  const out: Array<[string, string]> = []
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i]!, raw[i + 1]!])
  return out
}

function answer(req: IncomingMessage, res: ServerResponse): void {
  const headAt = performance.now()
  const chunks: Buffer[] = []
  req.on('data', (c: Buffer) => chunks.push(c))
  req.on('end', () => {
    seen.push({ url: req.url!, headers: pairs(req.rawHeaders), body: Buffer.concat(chunks).toString('utf8'), port: req.socket.remotePort!, at: performance.now(), headAt })
    if (req.url === '/hangup') {
      req.socket.destroy()
      return
    }
    res.writeHead(200, 'OK', { 'Content-Type': 'text/plain' })
    res.end(`ok ${req.url}`)
  })
}

beforeAll(async () => {
  server = createServer(answer)
  // Expect: 100-continue by path: /no100 never answers 100 (the client must send
  // the body anyway), /reject417 and /deny answer at once without reading the body
  server.on('checkContinue', (req, res) => {
    if (req.url!.startsWith('/no100')) return answer(req, res)
    if (req.url === '/reject417' || req.url === '/deny') {
      seen.push({ url: req.url, headers: pairs(req.rawHeaders), body: '', port: req.socket.remotePort!, at: performance.now(), headAt: performance.now() })
      res.writeHead(req.url === '/deny' ? 401 : 417, { 'Content-Length': '4' })
      res.end('nope')
      return
    }
    res.writeContinue()
    answer(req, res)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`
  base = `http://${host}`
})
afterAll(() => new Promise<void>((r) => {
  server.closeAllConnections()
  server.close(() => r())
}))

const withTrace = traceScripts('dovepush-http-wire-', KEYS_AND_R)
const DATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$/
/** A header block with its Date value checked and replaced by "DATE". */
const block = (s: Seen): Array<[string, string]> => s.headers.map(([k, v]) => {
  if (k === 'Date') {
    expect(v).toMatch(DATE)
    return [k, 'DATE']
  }
  return [k, v]
})

for (const engine of ['wasmoon', 'fengari'] as const) {
  describe(`dovecot.http head (${engine})`, () => {
    it('Dovecot\'s own headers by method and payload, Authorization between Date and User-Agent, script headers as given', async () => {
      seen.length = 0
      const { lines } = await inBeginTxn(withTrace, `
        local c = dovecot.http.client({ user_agent = "ua/1" })
        local function go(method, path, payload, hdrs)
          local rq = c:request({ url = "${base}" .. path, method = method })
          for _, h in ipairs(hdrs or {}) do rq:add_header(h[1], h[2]) end
          if payload then rq:set_payload(payload) end
          local res = rq:submit()
          trace(r(method, path, res:status()))
        end
        go("GET", "/get")
        go("POST", "/post-none")
        go("POST", "/post-empty", "")
        go("PUT", "/put-none")
        go("PATCH", "/patch-none")
        go("DELETE", "/delete", "x=1")
        go("GET", "/dup", nil, { { "X-A", "1" }, { "X-B", "2" }, { "x-a", "3" } })
        go("GET", "/utf8", nil, { { "X-Title", "Grüße ✓" } })
        local a = dovecot.http.client({ user_agent = "ua/1" })
        local res = a:request({ url = "${base.replace('http://', 'http://alice:s%40cret@')}/auth" }):submit()
        trace(r("auth", res:status()))`, engine)
      expect(lines).toEqual(['GET /get 200', 'POST /post-none 200', 'POST /post-empty 200', 'PUT /put-none 200', 'PATCH /patch-none 200', 'DELETE /delete 200', 'GET /dup 200', 'GET /utf8 200', 'auth 200'])
      const by = (u: string): Seen => seen.find((s) => s.url === u)!
      const head = [['Host', host], ['Date', 'DATE'], ['User-Agent', 'ua/1']]
      expect(block(by('/get'))).toEqual([...head, ['Connection', 'Keep-Alive']])
      expect(block(by('/post-none'))).toEqual([...head, ['Content-Length', '0'], ['Connection', 'Keep-Alive']])
      expect(block(by('/post-empty'))).toEqual([...head, ['Content-Length', '0'], ['Connection', 'Keep-Alive']])
      expect(block(by('/put-none'))).toEqual([...head, ['Content-Length', '0'], ['Connection', 'Keep-Alive']])
      // no Content-Length, no Transfer-Encoding: no body
      expect(block(by('/patch-none'))).toEqual([...head, ['Connection', 'Keep-Alive']])
      expect(by('/patch-none').body).toBe('')
      expect(block(by('/delete'))).toEqual([...head, ['Expect', '100-continue'], ['Content-Length', '3'], ['Connection', 'Keep-Alive']])
      expect(by('/delete').body).toBe('x=1')
      // add_header on a name already there replaces its value in place (case-insensitive)
      expect(block(by('/dup'))).toEqual([...head, ['Connection', 'Keep-Alive'], ['X-A', '3'], ['X-B', '2']])
      // the script's bytes (UTF-8) go out unchanged
      const utf8 = seen.find((s) => s.url === '/utf8')!.headers.find(([k]) => k === 'X-Title')![1]
      expect(Buffer.from(utf8, 'latin1').toString('utf8')).toBe('Grüße ✓')
      expect(block(by('/auth'))).toEqual([['Host', host], ['Date', 'DATE'], ['Authorization', `Basic ${Buffer.from('alice:s@cret').toString('base64')}`], ['User-Agent', 'ua/1'], ['Connection', 'Keep-Alive']])
    })

    it('a script\'s Host, Date, User-Agent, Connection, Content-Length replace Dovecot\'s; one added then removed leaves none', async () => {
      seen.length = 0
      await inBeginTxn(withTrace, `
        local c = dovecot.http.client({ user_agent = "ua/1" })
        local rq = c:request({ url = "${base}/own", method = "POST" })
        rq:add_header("host", "push.example.test")
        rq:add_header("DATE", "Thu, 01 Jan 1970 00:00:00 GMT")
        rq:add_header("user-agent", "mine")
        rq:add_header("connection", "keep-alive")
        rq:add_header("content-length", "2")
        rq:set_payload("hi")
        rq:submit()
        local rq2 = c:request({ url = "${base}/removed" })
        rq2:add_header("User-Agent", "gone")
        rq2:remove_header("User-Agent")
        rq2:submit()`, engine)
      expect(block(seen.find((s) => s.url === '/own')!)).toEqual([
        ['Expect', '100-continue'],
        ['host', 'push.example.test'], ['DATE', 'Thu, 01 Jan 1970 00:00:00 GMT'], ['user-agent', 'mine'], ['connection', 'keep-alive'], ['content-length', '2'],
      ])
      expect(seen.find((s) => s.url === '/own')!.body).toBe('hi')
      // Dovecot marks User-Agent present at add_header; remove_header does not unmark it
      expect(block(seen.find((s) => s.url === '/removed')!)).toEqual([['Host', host], ['Date', 'DATE'], ['Connection', 'Keep-Alive']])
    })
  })
}

describe('dovecot.http Expect: 100-continue (lib-http http-client-connection.c)', () => {
  it('a server answering 100 gets the body at once, and Expect again on the next request', async () => {
    seen.length = 0
    const t0 = performance.now()
    const { lines } = await inBeginTxn(withTrace, `
      local c = dovecot.http.client({})
      for i = 1, 3 do
        local rq = c:request({ url = "${base}/with100", method = "POST" })
        rq:set_payload("body " .. i)
        trace(r(rq:submit():status()))
      end`, 'wasmoon')
    expect(lines).toEqual(['200', '200', '200'])
    expect(performance.now() - t0).toBeLessThan(1500)
    expect(seen.map((s) => [s.body, s.headers.some(([k, v]) => k === 'Expect' && v === '100-continue')])).toEqual([['body 1', true], ['body 2', true], ['body 3', true]])
    // one keep-alive connection for the client
    expect(new Set(seen.map((s) => s.port)).size).toBe(1)
  })

  it('a server that never answers 100 gets the body after 2 s; then no Expect to that peer, from any client of the Lua state', async () => {
    seen.length = 0
    const { lines } = await inBeginTxn(withTrace, `
      local c = dovecot.http.client({})
      for i = 1, 2 do
        local rq = c:request({ url = "${base}/no100", method = "POST" })
        rq:set_payload("body " .. i)
        trace(r(rq:submit():status()))
      end
      local rq = dovecot.http.client({}):request({ url = "${base}/no100-other-client", method = "POST" })
      rq:set_payload("body 3")
      trace(r(rq:submit():status()))`, 'wasmoon')
    expect(lines).toEqual(['200', '200', '200'])
    expect(seen.map((s) => [s.url, s.body, s.headers.some(([k]) => k === 'Expect')])).toEqual([
      ['/no100', 'body 1', true], ['/no100', 'body 2', false], ['/no100-other-client', 'body 3', false],
    ])
    const wait = seen[0]!.at - seen[0]!.headAt
    expect(wait).toBeGreaterThanOrEqual(1900) // HTTP_CLIENT_CONTINUE_TIMEOUT_MSECS
    expect(wait).toBeLessThan(3000)
    expect(seen[1]!.at - seen[1]!.headAt).toBeLessThan(500)
  })

  it('a final answer before 100: the payload is never sent; 417 is retried without Expect when attempts are left', async () => {
    seen.length = 0
    const { lines } = await inBeginTxn(withTrace, `
      local function post(o, path)
        local rq = dovecot.http.client(o):request({ url = "${base}" .. path, method = "POST" })
        rq:set_payload("secret body")
        local res = rq:submit()
        trace(r(path, res:status(), res:payload()))
      end
      post({}, "/deny")
      post({}, "/reject417")
      post({ max_attempts = 2 }, "/reject417")`, 'wasmoon')
    // the 417 taught the peer: the retry (and anything after) goes without Expect, to the normal handler
    expect(lines).toEqual(['/deny 401 nope', '/reject417 417 nope', '/reject417 200 ok /reject417'])
    expect(seen.map((s) => [s.url, s.body, s.headers.some(([k]) => k === 'Expect')])).toEqual([
      ['/deny', '', true], ['/reject417', '', true], ['/reject417', 'secret body', false],
    ])
  })

  it('2.4: Expect only with set_payload(str, true)', async () => {
    seen.length = 0
    const { lines } = await inBeginTxn(withTrace, `
      local c = dovecot.http.client({})
      for _, sync in ipairs({ false, true }) do
        local rq = c:request({ url = "${base}/sync-" .. tostring(sync), method = "POST" })
        rq:set_payload("p", sync)
        trace(r(rq:submit():status()))
      end`, 'wasmoon', { dovecot: '2.4' })
    expect(lines).toEqual(['200', '200'])
    expect(seen.map((s) => [s.url, s.headers.some(([k]) => k === 'Expect'), s.body])).toEqual([['/sync-false', false, 'p'], ['/sync-true', true, 'p']])
  })
})

describe('dovecot.http connections', () => {
  it('one keep-alive pool per Lua state, shared by its clients (Dovecot\'s global http_client context); a server closing without an answer → 9005 "Connection lost: read((conn:IP:PORT,id=N)) failed: EOF (…)" (recorded wording)', async () => {
    seen.length = 0
    const { lines } = await inBeginTxn(withTrace, `
      local a, b = dovecot.http.client({}), dovecot.http.client({})
      a:request({ url = "${base}/a1" }):submit()
      b:request({ url = "${base}/b1" }):submit()
      a:request({ url = "${base}/a2" }):submit()
      local res = a:request({ url = "${base}/hangup" }):submit()
      trace(r(res:status()))
      trace(res:reason())`, 'wasmoon')
    const port = (u: string): number => seen.find((s) => s.url === u)!.port
    // an idle connection is claimed by any client's next request to the peer (http_client_connection_claim_idle)
    expect(port('/a1')).toBe(port('/a2'))
    expect(port('/b1')).toBe(port('/a1'))
    expect(lines[0]).toBe('9005')
    // the one shared connection is the state's first: id=1 (lib connection.c counts per client context)
    expect(lines[1]).toMatch(new RegExp(`^Connection lost: read\\(\\(conn:${host.replace(/\./g, '\\.')},id=1\\)\\) failed: EOF \\(Request queued \\d+\\.\\d{3} secs ago, 1 send attempts in \\d+\\.\\d{3} secs, \\d+\\.\\d{3} in http ioloop, 0\\.000 in other ioloops, connected \\d+\\.\\d{3} secs ago\\)$`))
  })

  it('--http capture: connections go to the sink, the Host header stays the script\'s URL\'s (https sent in plain text)', async () => {
    const sink = new CaptureSink({ redact: false })
    const target = await sink.start()
    const dir = mkdtempSync(join(tmpdir(), 'dovepush-http-capture-'))
    try {
      const script = join(dir, 'capture.lua')
      writeFileSync(script, `
function dovecot_lua_notify_begin_txn(user)
  local c = dovecot.http.client({ user_agent = "ua/1" })
  local rq = c:request({ url = "https://push.example.test/hook?x=1", method = "POST" })
  rq:add_header("Content-Type", "application/json")
  rq:set_payload("{}")
  assert(rq:submit():status() == 200)
  assert(c:request({ url = "http://other.example.test:8080/" }):submit():status() == 200)
  return {}
end
function dovecot_lua_notify_event_message_new() end
function dovecot_lua_notify_end_txn() end`)
      const h = createLuaHost({
        scriptPath: script, engine: await loadEngine('wasmoon'), dovecot: '2.3', settings: {}, log: pino({ level: 'silent' }),
        callTimeoutMs: 5000, memoryLimit: 0, defaultService: 'imap', maxSessions: 10, httpTarget: target,
      })
      await h.submit(txn([{ name: 'MessageNew', mailbox: 'INBOX', uid: 1 }]))
      await h.close()
      expect(h.stats.errorCount).toBe(0)
      expect(sink.requests.map((q) => [q.method, q.url, q.body])).toEqual([['POST', 'http://push.example.test/hook?x=1', '{}'], ['GET', 'http://other.example.test:8080/', '']])
      expect(sink.requests[0]!.headers.map(([k, v]) => [k, k === 'Date' ? 'DATE' : v])).toEqual([
        ['Host', 'push.example.test'], ['Date', 'DATE'], ['User-Agent', 'ua/1'], ['Expect', '100-continue'], ['Content-Length', '2'], ['Connection', 'Keep-Alive'], ['Content-Type', 'application/json'],
      ])
    } finally {
      await sink.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
