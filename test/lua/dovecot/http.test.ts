// dovecot.http (spec §7, 2.3.19) on both engines against a real HTTP server
// on 127.0.0.1: option checks, request errors, object shapes, what reaches
// the wire, response accessors, and the internal 9xxx statuses.

import type { Server } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import pino from 'pino'
import { createEnvironment } from '../../../src/lua/environment.js'
import { inBeginTxn } from '../../helpers/begin-txn.js'
import { engine } from '../../helpers/run-script.js'
import { closedPort as findClosedPort, startServer, stopServer } from '../../helpers/http-server.js'
import { KEYS_AND_R, traceScripts } from '../../helpers/trace.js'

interface Seen { method: string; url: string; rawHeaders: string[]; body: Buffer }
const seen: Seen[] = []
let server: Server
let base = ''
let closedPort = 0

beforeAll(async () => {
  ;({ server, base } = await startServer((req, body, res) => {
    seen.push({ method: req.method!, url: req.url!, rawHeaders: req.rawHeaders, body })
    if (req.url === '/slow') {
      setTimeout(() => { res.statusCode = 200; res.end('late') }, 1000)
      return
    }
    if (req.url === '/redirect') {
      res.writeHead(302, 'Moved here', { Location: `${base}/hook` })
      res.end('moved')
      return
    }
    if (req.url === '/redirect-relative') {
      res.writeHead(302, 'Moved here', { Location: '/hook' })
      res.end('moved')
      return
    }
    if (req.url === '/empty') {
      res.writeHead(204)
      res.end()
      return
    }
    res.statusCode = 200
    res.statusMessage = 'OK from sink'
    res.setHeader('Content-Type', 'application/json')
    res.setHeader('X-Sink', ['oracle', 'second'])
    res.end(`{"ok": true, "path": "${req.url}"}`)
  }))
  closedPort = await findClosedPort()
})
afterAll(() => stopServer(server))

const withTrace = traceScripts('dovepush-http-', [
  ...KEYS_AND_R,
  'local function shape(t) return keys(t) .. " mt=" .. tostring(getmetatable(t)) .. " item=" .. type(rawget(t, "item")) .. ":" .. keys(getmetatable(rawget(t, "item"))) end',
])
const inTxn = (body: string, engine: 'wasmoon' | 'fengari') => inBeginTxn(withTrace, body, engine)

for (const engine of ['wasmoon', 'fengari'] as const) {
  describe(`dovecot.http (${engine})`, () => {
    it('client options: the recorded errors, type rules, and unknown keys accepted', async () => {
      const { lines } = await inTxn(`
        local function try(o) local ok, e = pcall(dovecot.http.client, o); trace(ok and ("ok " .. type(e)) or ("err " .. e)) end
        try({ max_attempts = "3" })
        try({ debug = 1 })
        try({ bogus_option = true, timeout = 5 })
        try({ max_redirects = -1 })
        try({ request_timeout_msecs = 1.5 })
        try({ request_timeout_msecs = 2.0, max_attempts = 2, no_auto_retry = false, user_agent = "ua" })
        try({ user_agent = 7 })
        try({ proxy_url = false })
        try({ no_auto_redirect = "yes" })
        trace(r(pcall(dovecot.http.client)))
        trace(r(pcall(dovecot.http.client, {}, {})))`, engine)
      expect(lines).toEqual([
        'err Invalid HTTP client setting: max_attempts: non-negative number expected',
        'err Invalid HTTP client setting: debug: boolean expected',
        'ok table',
        'err Invalid HTTP client setting: max_redirects: non-negative number expected',
        'err Invalid HTTP client setting: request_timeout_msecs: non-negative number expected',
        'ok table',
        'err Invalid HTTP client setting: user_agent: string expected',
        'err Invalid HTTP client setting: proxy_url: string expected',
        'err Invalid HTTP client setting: no_auto_redirect: boolean expected',
        'false expected 1 arguments, got 0',
        'false expected 1 arguments, got 2',
      ])
    })

    it('request errors: url missing, relative url, argument count; method defaults to GET', async () => {
      const { lines } = await inTxn(`
        local c = dovecot.http.client({})
        trace(r(pcall(c.request, c, { method = "GET" })))
        trace(r(pcall(c.request, c, { url = "not a url" })))
        trace(r(pcall(c.request, c)))
        local rq = c:request({ url = "${base}/hook" })
        local res = rq:submit()
        trace(r(res:status()))`, engine)
      expect(lines).toEqual([
        'false cannot create request: url not specified',
        'false Failed to parse url not a url: Relative HTTP URL not allowed',
        'false expected 2 arguments, got 1',
        '200',
      ])
      expect(seen.at(-1)!.method).toBe('GET')
    })

    it('object shapes: keys stored on the tables, no metatables, item userdata with a __gc-only metatable', async () => {
      const { lines } = await inTxn(`
        local c = dovecot.http.client({ bogus_option = true })
        trace(shape(c))
        local rq = c:request({ url = "${base}/hook", method = "GET" })
        trace(shape(rq))
        trace("[" .. r(rq:add_header("X-A", "1")) .. "]")
        trace(r(select("#", rq:add_header("X-A", "1")), select("#", rq:remove_header("X-A")), select("#", rq:set_payload(""))))
        local res = rq:submit()
        trace(shape(res))
        trace(r(type(c.request), type(rq.submit), type(res.status)))`, engine)
      expect(lines).toEqual([
        'item,request mt=nil item=userdata:__gc',
        'add_header,item,remove_header,set_payload,submit mt=nil item=userdata:__gc',
        '[]',
        '0 0 0',
        'header,item,payload,reason,status mt=nil item=userdata:__gc',
        'function function function',
      ])
    })

    it('POST with payload and headers: method, path, body bytes (cut at NUL), and Dovecot\'s exact header block', async () => {
      seen.length = 0
      const { lines } = await inTxn(`
        local c = dovecot.http.client({ user_agent = "dovecot-oracle-recorder/1", request_timeout_msecs = 5000 })
        local rq = c:request({ url = "${base}/hook?x=1", method = "POST" })
        rq:add_header("X-Oracle-Probe", "post")
        rq:add_header("X-Removed", "gone")
        rq:remove_header("x-removed")
        rq:add_header("Content-Type", "application/json")
        rq:set_payload('{"utf8":"Grüße"}\\0after the nul')
        local res = rq:submit()
        trace(r(res:status(), math.type(res:status()), res:reason()))
        trace(res:payload())
        trace(r(res:header("content-type"), res:header("X-SINK"), "[" .. res:header("X-Missing") .. "]"))`, engine)
      expect(lines).toEqual([
        '200 integer OK from sink',
        '{"ok": true, "path": "/hook?x=1"}',
        'application/json oracle [] ',
      ].map((l) => l.trimEnd()))
      expect(seen).toHaveLength(1)
      const got = seen[0]!
      expect(got.method).toBe('POST')
      expect(got.url).toBe('/hook?x=1')
      expect(got.body.toString('utf8')).toBe('{"utf8":"Grüße"}')
      const pairs: Array<[string, string]> = []
      for (let i = 0; i < got.rawHeaders.length; i += 2) pairs.push([got.rawHeaders[i]!, got.rawHeaders[i + 1]!])
      // http_client_request_send_real's order and case, then the script's headers
      expect(pairs[1]![1]).toMatch(/^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$/)
      expect(pairs).toEqual([
        ['Host', base.slice('http://'.length)],
        ['Date', pairs[1]![1]],
        ['User-Agent', 'dovecot-oracle-recorder/1'],
        ['Expect', '100-continue'],
        ['Content-Length', String(Buffer.byteLength('{"utf8":"Grüße"}'))],
        ['Connection', 'Keep-Alive'],
        ['X-Oracle-Probe', 'post'],
        ['Content-Type', 'application/json'],
      ])
    })

    it('no User-Agent without user_agent; user:pass@ becomes Basic Authorization; empty body gives payload ""', async () => {
      seen.length = 0
      const { lines } = await inTxn(`
        local c = dovecot.http.client({})
        local res = c:request({ url = "${base.replace('http://', 'http://alice:s%40cret@')}/empty" }):submit()
        trace(r(res:status(), res:reason(), "[" .. res:payload() .. "]", "[" .. res:header("content-type") .. "]"))`, engine)
      expect(lines).toEqual(['204 No Content [] []'])
      const h = seen[0]!.rawHeaders.map((x, i) => (i % 2 === 0 ? x.toLowerCase() : x))
      expect(h).not.toContain('user-agent')
      expect(h[h.indexOf('authorization') + 1]).toBe(`Basic ${Buffer.from('alice:s@cret').toString('base64')}`)
    })

    it('closed port → 9003 with the recorded reason, payload and headers empty', async () => {
      const { lines } = await inTxn(`
        local c = dovecot.http.client({})
        local res = c:request({ url = "http://127.0.0.1:${closedPort}/closed" }):submit()
        trace(r(res:status(), math.type(res:status())))
        trace(res:reason())
        trace(r("[" .. res:payload() .. "]", "[" .. res:header("x-sink") .. "]"))`, engine)
      expect(lines).toEqual(['9003 integer', `connect(127.0.0.1:${closedPort}) failed: Connection refused`, '[] []'])
    })

    it('a script using cjson and dovecot.http runs unmodified: the server gets the JSON', async () => {
      seen.length = 0
      const { lines } = await inTxn(`
        local cjson = require "cjson"
        local rq = dovecot.http.client({}):request({ url = "${base}/json", method = "POST" })
        rq:add_header("Content-Type", "application/json")
        rq:set_payload(cjson.encode({ user = user.username, unseen = 3, flags = cjson.empty_array }))
        local res = rq:submit()
        trace(res:status() .. " " .. cjson.decode(res:payload()).path)`, engine)
      expect(lines).toEqual(['200 /json'])
      expect(seen.map((x) => [x.method, x.url, JSON.parse(x.body.toString())])).toEqual([['POST', '/json', { user: 'alice@example.test', unseen: 3, flags: [] }]])
    })

    it('secrets: URL user info and Authorization never reach the log or a reason, even with debug=true', async () => {
      const { lines, run } = await inTxn(`
        local c = dovecot.http.client({ debug = true })
        local res = c:request({ url = "http://carol:s3cr3t-pw@127.0.0.1:${closedPort}/x" }):submit()
        trace(res:status() .. " " .. res:reason())
        local ok = c:request({ url = "${base.replace('http://', 'http://carol:s3cr3t-pw@')}/hook", method = "POST" }):submit()
        trace(ok:status())`, engine)
      expect(lines).toEqual([`9003 connect(127.0.0.1:${closedPort}) failed: Connection refused`, '200'])
      expect(run.logs.some((l) => l.msg.includes('dovecot.http'))).toBe(true) // debug lines were written
      expect(JSON.stringify(run.logs)).not.toContain('s3cr3t')
    })

    it('a server slower than request_timeout_msecs → 9008 "Request timed out (…)"', async () => {
      const { lines } = await inTxn(`
        local c = dovecot.http.client({ request_timeout_msecs = 200 })
        local res = c:request({ url = "${base}/slow" }):submit()
        trace(r(res:status()))
        trace(res:reason())
        trace("[" .. res:payload() .. "]")`, engine)
      expect(lines[0]).toBe('9008')
      expect(lines[1]).toMatch(/^Request timed out \(Request queued 0\.2\d\d secs ago, 1 send attempts in 0\.2\d\d secs, 0\.2\d\d in http ioloop, 0\.000 in other ioloops, connected 0\.2\d\d secs ago\)$/)
      expect(lines[2]).toBe('[]')
    })

    it('max_attempts=2 retries a timeout once (2 send attempts)', async () => {
      seen.length = 0
      const { lines } = await inTxn(`
        local c = dovecot.http.client({ request_timeout_msecs = 150, max_attempts = 2 })
        local res = c:request({ url = "${base}/slow" }):submit()
        trace(r(res:status()))
        trace(res:reason())`, engine)
      expect(lines[0]).toBe('9008')
      expect(lines[1]).toMatch(/^Request timed out \(Request queued 0\.\d{3} secs ago, 2 send attempts in /)
      expect(seen.filter((s) => s.url === '/slow')).toHaveLength(2)
    })

    it('redirects: 302 → 9004 "Redirect refused" by default; as is with no_auto_redirect; followed with max_redirects', async () => {
      const { lines } = await inTxn(`
        local function show(o)
          local res = dovecot.http.client(o):request({ url = "${base}/redirect" }):submit()
          trace(r(res:status(), res:reason(), "[" .. res:header("location") .. "]", "[" .. res:payload() .. "]"))
        end
        show({})
        show({ no_auto_redirect = true })
        show({ max_redirects = 1 })`, engine)
      expect(lines).toEqual([
        '9004 Redirect refused [] []',
        `302 Moved here [${base}/hook] [moved]`,
        '200 OK from sink [] [{"ok": true, "path": "/hook"}]',
      ])
    })

    it('a relative Location is invalid, redirects allowed or not (Dovecot parses it with no base URL, before counting)', async () => {
      const { lines } = await inTxn(`
        for _, o in ipairs({ {}, { max_redirects = 1 } }) do
          local res = dovecot.http.client(o):request({ url = "${base}/redirect-relative" }):submit()
          trace(r(res:status(), res:reason()))
        end`, engine)
      expect(lines).toEqual(['9004 Invalid redirect location: Relative HTTP URL not allowed', '9004 Invalid redirect location: Relative HTTP URL not allowed'])
    })

    it('submit inside pcall and inside a coroutine', async () => {
      const { lines } = await inTxn(`
        local c = dovecot.http.client({})
        local ok, res = pcall(function() return c:request({ url = "${base}/hook" }):submit() end)
        trace(r(ok, res:status()))
        local co = coroutine.wrap(function(u)
          local x = c:request({ url = u }):submit()
          coroutine.yield(x:status())
          return x:reason()
        end)
        trace(r(co("${base}/hook")))
        trace(r(co()))
        local co2 = coroutine.create(function() return c:request({ url = "${base}/empty" }):submit():status() end)
        trace(r(coroutine.resume(co2)))`, engine)
      expect(lines).toEqual(['true 200', '200', 'OK from sink', 'true 204'])
    })
  })
}

describe('dovecot.http objects and host functions', () => {
  for (const engineName of ['wasmoon', 'fengari'] as const) {
    it(`requests and responses reuse the method functions: no growth per request (${engineName})`, async () => {
      const env = createEnvironment({ engine: await engine(engineName), scriptPath: 'x.lua', dovecot: '2.3', log: pino({ level: 'silent' }), debug: false, callTimeoutMs: 0, memoryLimit: 0 })
      const { api, L, caller } = env
      const run = async (src: string): Promise<void> => {
        expect(api.load(L, new TextEncoder().encode(src), '=t', 't')).toBe(0)
        const ref = api.ref(L)
        const outcome = await caller.call((T) => (api.pushref(T, ref), 0))
        api.unref(L, ref)
        expect(outcome.ok).toBe(true)
      }
      const loop = `for i = 1, 10 do c:request({ url = "http://127.0.0.1:${closedPort}/x" }):submit() end`
      await run(`c = dovecot.http.client({}) ${loop}`)
      const after10 = api.hostFunctions
      await run(loop)
      expect(api.hostFunctions).toBe(after10)
      api.close()
    })
  }
})
