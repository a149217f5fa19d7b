// dovecot.http over TLS against a real HTTPS server on 127.0.0.1, with the
// self-signed test certificate of fixtures/tls (CN "dovepush test", for IP
// 127.0.0.1): trusted through the ssl_client_ca_file setting, as Dovecot's
// client takes its trust from ssl_client_* settings; refused without it.

import { readFileSync } from 'node:fs'
import * as https from 'node:https'
import * as net from 'node:net'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LEVEL } from '../../helpers/run-script.js'
import { inBeginTxn } from '../../helpers/begin-txn.js'
import { KEYS_AND_R, traceScripts } from '../../helpers/trace.js'

const CERT = fileURLToPath(new URL('../../../fixtures/tls/cert.pem', import.meta.url))
const KEY = fileURLToPath(new URL('../../../fixtures/tls/key.pem', import.meta.url))
const withTrace = traceScripts('dovepush-tls-', KEYS_AND_R)

let server: https.Server
let port = 0
const seen: Array<{ method: string; url: string; headers: string[]; body: string }> = []

beforeAll(async () => {
  server = https.createServer({ key: readFileSync(KEY), cert: readFileSync(CERT) }, (req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString()))
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.rawHeaders.filter((_, i) => i % 2 === 0), body })
      res.writeHead(200, { 'Content-Type': 'text/plain' })
      res.end('secure')
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  port = (server.address() as AddressInfo).port
})
afterAll(async () => {
  server.closeAllConnections()
  await new Promise((r) => server.close(r))
})

const SCRIPT = (): string => `
  local c = dovecot.http.client({ user_agent = "ua/1" })
  local rq = c:request({ url = "https://127.0.0.1:${port}/hook?x=1", method = "POST" })
  rq:add_header("Content-Type", "application/json")
  rq:set_payload('{"a":1}')
  local res = rq:submit()
  trace(r(res:status(), res:payload()))
  trace(res:reason())`

describe('dovecot.http over TLS', () => {
  it('trusts the certificates of ssl_client_ca_file and sends Dovecot\'s request over TLS', async () => {
    seen.length = 0
    const { lines, run } = await inBeginTxn(withTrace, SCRIPT(), 'wasmoon', { settings: { ssl_client_ca_file: CERT } })
    expect(lines).toEqual(['200 secure', 'OK'])
    expect(seen).toEqual([{
      method: 'POST', url: '/hook?x=1', body: '{"a":1}',
      headers: ['Host', 'Date', 'User-Agent', 'Expect', 'Content-Length', 'Connection', 'Content-Type'],
    }])
    expect(run.messages(LEVEL.warn)).toEqual([])
  })

  it('refuses a certificate it cannot verify: 9003, the connection never carries the request', async () => {
    seen.length = 0
    const { lines } = await inBeginTxn(withTrace, SCRIPT(), 'wasmoon')
    expect(lines[0]).toBe('9003 ')
    expect(lines[1]).toMatch(new RegExp(`^connect\\(127\\.0\\.0\\.1:${port}\\) failed: self[- ]signed certificate`))
    expect(seen).toEqual([])
  })

  it('an unreadable ssl_client_ca_file is logged and the defaults stay', async () => {
    const { lines, run } = await inBeginTxn(withTrace, SCRIPT(), 'wasmoon', { settings: { ssl_client_ca_file: '/nonexistent/ca.pem' } })
    expect(lines[0]).toBe('9003 ')
    expect(run.messages(LEVEL.warn)[0]).toMatch(/^dovecot\.http: ssl_client_ca_file \/nonexistent\/ca\.pem not read: ENOENT/)
  })

  it('https:// through proxy_url: CONNECT ip:port as Dovecot sends it (recorded), TLS inside the tunnel, the absolute URL as target', async () => {
    seen.length = 0
    const connects: string[] = []
    const sockets: net.Socket[] = []
    const proxy = net.createServer((client) => {
      sockets.push(client)
      let head = ''
      const onData = (d: Buffer): void => {
        head += d.toString('latin1')
        const end = head.indexOf('\r\n\r\n')
        if (end < 0) return
        client.removeListener('data', onData)
        connects.push(head.slice(0, end))
        const [, target] = /^CONNECT (\S+) /.exec(head) ?? []
        const [h, p] = (target ?? '').split(':')
        const upstream = net.connect(Number(p), h!, () => {
          sockets.push(upstream)
          client.write('HTTP/1.1 200 Connection established\r\n\r\n')
          client.pipe(upstream).pipe(client)
        })
        upstream.on('error', () => client.destroy())
        client.on('error', () => upstream.destroy())
      }
      client.on('data', onData)
    })
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r))
    const proxyPort = (proxy.address() as AddressInfo).port
    try {
      const { lines } = await inBeginTxn(withTrace, SCRIPT().replace('{ user_agent = "ua/1" }', `{ user_agent = "ua/1", proxy_url = "http://pu:pw@127.0.0.1:${proxyPort}" }`), 'wasmoon', {
        settings: { ssl_client_ca_file: CERT },
      })
      expect(lines).toEqual(['200 secure', 'OK'])
      expect(connects.map((c) => c.replace(/Date: [^\r]*/, 'Date: (date)'))).toEqual([[
        `CONNECT 127.0.0.1:${port} HTTP/1.1`, `Host: 127.0.0.1:${port}`, 'Date: (date)', `Proxy-Authorization: Basic ${Buffer.from('pu:pw').toString('base64')}`, 'User-Agent: ua/1',
      ].join('\r\n')])
      expect(seen).toEqual([{
        method: 'POST', url: `https://127.0.0.1:${port}/hook?x=1`, body: '{"a":1}',
        headers: ['Host', 'Date', 'User-Agent', 'Expect', 'Content-Length', 'Connection', 'Content-Type'],
      }])
    } finally {
      for (const s of sockets) s.destroy() // the tunnel stays pooled for seconds
      await new Promise((r) => proxy.close(r))
    }
  })

  it('a proxy refusing the CONNECT: 9003 "Tunnel connect(IP:PORT) failed: <status> <reason>" (http_client_connection_tunnel_response)', async () => {
    const proxy = net.createServer((client) => {
      client.once('data', () => client.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n'))
    })
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r))
    const proxyPort = (proxy.address() as AddressInfo).port
    try {
      const { lines } = await inBeginTxn(withTrace, SCRIPT().replace('{ user_agent = "ua/1" }', `{ proxy_url = "http://127.0.0.1:${proxyPort}" }`), 'wasmoon')
      expect(lines).toEqual(['9003 ', `Tunnel connect(127.0.0.1:${port}) failed: 403 Forbidden`])
    } finally {
      await new Promise((r) => proxy.close(r))
    }
  })

  it('a peer that hangs up or stays silent during the handshake: 9003 in Dovecot\'s "SSL handshaking with …" words', async () => {
    const held: net.Socket[] = []
    const hangup = net.createServer((c) => c.destroy())
    const silent = net.createServer((c) => void held.push(c))
    await Promise.all([hangup, silent].map((srv) => new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))))
    const [p1, p2] = [hangup, silent].map((srv) => (srv.address() as AddressInfo).port)
    try {
      const { lines } = await inBeginTxn(withTrace, `
        local a = dovecot.http.client({}):request({ url = "https://127.0.0.1:${p1}/" }):submit()
        trace(a:status()) trace(a:reason())
        local b = dovecot.http.client({ connect_timeout_msecs = 300 }):request({ url = "https://127.0.0.1:${p2}/" }):submit()
        trace(b:status()) trace(b:reason())`, 'wasmoon')
      expect(lines[0]).toBe('9003')
      expect(lines[1]).toMatch(new RegExp(`^SSL handshaking with 127\\.0\\.0\\.1:${p1} failed: read\\(\\(conn:127\\.0\\.0\\.1:${p1},id=1\\)\\) failed: (EOF|Connection reset by peer)$`))
      expect(lines[2]).toBe('9003')
      expect(lines[3]).toMatch(new RegExp(`^SSL handshaking with 127\\.0\\.0\\.1:${p2} failed: Connection timed out in 0\\.3\\d\\d secs$`))
    } finally {
      for (const c of held) c.destroy()
      await Promise.all([hangup, silent].map((srv) => new Promise((r) => srv.close(r))))
    }
  })
})
