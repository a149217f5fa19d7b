// socket.http against a real HTTP server on 127.0.0.1: the string and table
// forms, ltn12 sources and sinks, redirects, and LuaSocket's error words.

import type { IncomingMessage, Server } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TransactionUnit } from '../../../src/events/types.js'
import { closedPort, startServer, stopServer } from '../../helpers/http-server.js'
import { LEVEL, runScript } from '../../helpers/run-script.js'

interface Seen { method: string; url: string; headers: IncomingMessage['headers']; body: string }
const seen: Seen[] = []
let server: Server
let base = ''
let closed = 0

beforeAll(async () => {
  ;({ server, base } = await startServer((req, body, res) => {
    seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: body.toString() })
    if (req.url === '/redirect') {
      res.writeHead(302, { Location: '/hook?from=redirect' })
      res.end()
      return
    }
    res.writeHead(201, { 'Content-Type': 'text/plain', 'X-Multi': ['a', 'b'] })
    res.end(`got ${req.method} ${req.url}`)
  }))
  closed = await closedPort()
})
afterAll(() => stopServer(server))

const TXN = { user: 'alice@example.test', committed: true, events: [{ name: 'MessageNew', mailbox: 'INBOX', uid: 7, uid_validity: 1, subject: 'Hi there' }] } as unknown as TransactionUnit

const script = (body: string) => `
local http = require("socket.http")
local ltn12 = require("ltn12")
function dovecot_lua_notify_begin_txn(user) return { url = user:plugin_getenv("push_lua_url") } end
function dovecot_lua_notify_event_message_new(ctx, ev)
${body}
end
function dovecot_lua_notify_end_txn() end
`

for (const engine of ['wasmoon', 'fengari'] as const) {
  describe(`socket.http (${engine})`, () => {
    it('string form: GET, and POST with a form body; results body, code, headers, status line', async () => {
      seen.length = 0
      const run = await runScript({ source: script(`
        local b, c, h, s = http.request(ctx.url .. "/hook?uid=" .. string.format("%d", ev.uid))
        dovecot.i_info(table.concat({ b, math.type(c), tostring(c), h["content-type"], h["x-multi"], s }, "|"))
        local b2, c2 = http.request(ctx.url .. "/form", "subject=" .. ev.subject)
        dovecot.i_info(b2 .. "|" .. c2)`) }, [TXN], { engine, settings: { push_lua_url: base } })
      expect(run.messages(LEVEL.info)).toEqual([
        'got GET /hook?uid=7|integer|201|text/plain|a, b|HTTP/1.1 201 Created',
        'got POST /form|201',
      ])
      expect(seen.map((s) => [s.method, s.url, s.body, s.headers['content-type'] ?? '', s.headers['user-agent']])).toEqual([
        ['GET', '/hook?uid=7', '', '', 'LuaSocket 3.0.0'],
        ['POST', '/form', 'subject=Hi there', 'application/x-www-form-urlencoded', 'LuaSocket 3.0.0'],
      ])
    })

    it('table form with an ltn12 source and sink, method and headers', async () => {
      seen.length = 0
      const run = await runScript({ source: script(`
        local out = {}
        local payload = '{"uid":7}'
        local ok, c, h, s = http.request{ url = ctx.url .. "/json", method = "PUT", sink = ltn12.sink.table(out),
          source = ltn12.source.string(payload),
          headers = { ["Content-Type"] = "application/json", ["Content-Length"] = tostring(#payload) } }
        dovecot.i_info(tostring(ok) .. "|" .. c .. "|" .. table.concat(out) .. "|" .. s)`) }, [TXN], { engine, settings: { push_lua_url: base } })
      expect(run.messages(LEVEL.info)).toEqual(['1|201|got PUT /json|HTTP/1.1 201 Created'])
      expect(seen.map((s) => [s.method, s.url, s.body, s.headers['content-type']])).toEqual([['PUT', '/json', '{"uid":7}', 'application/json']])
    })

    it('follows a redirect for GET, not when redirect = false', async () => {
      seen.length = 0
      const run = await runScript({ source: script(`
        local b, c = http.request(ctx.url .. "/redirect")
        local ok, c2, h2 = http.request{ url = ctx.url .. "/redirect", redirect = false }
        dovecot.i_info(b .. "|" .. c .. "|" .. c2 .. "|" .. h2.location)`) }, [TXN], { engine, settings: { push_lua_url: base } })
      expect(run.messages(LEVEL.info)).toEqual(['got GET /hook?from=redirect|201|302|/hook?from=redirect'])
    })

    it('a closed port gives nil, "connection refused"; a bad URL nil and a message', async () => {
      const run = await runScript({ source: script(`
        local b, err = http.request(ctx.url .. "/x")
        local b2, err2 = http.request("not a url")
        dovecot.i_info(tostring(b) .. "|" .. err .. "|" .. tostring(b2) .. "|" .. err2)`) }, [TXN], { engine, settings: { push_lua_url: `http://127.0.0.1:${closed}` } })
      expect(run.messages(LEVEL.info)).toEqual(['nil|connection refused|nil|invalid url: not a url'])
    })
  })
}
