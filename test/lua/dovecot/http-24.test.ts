// dovecot.http under --dovecot 2.4 (spec §7.4) on both engines: setting
// names with units, Dovecot 2.4's error texts (src/lib-lua/test-lua-http-client.c),
// set_payload's optional 2nd argument, request set_event/get_event.

import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { inBeginTxn } from '../../helpers/begin-txn.js'
import { KEYS_AND_R, traceScripts } from '../../helpers/trace.js'

const seen: Array<{ url: string; rawHeaders: string[]; body: string }> = []
let server: Server
let base = ''

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => { body += c.toString() })
    req.on('end', () => {
      seen.push({ url: req.url!, rawHeaders: req.rawHeaders, body })
      if (req.url === '/slow') {
        setTimeout(() => { res.statusCode = 200; res.end('late') }, 1000)
        return
      }
      if (req.url === '/redirect') {
        res.writeHead(302, 'Moved', { Location: `${base}/hook` }) // absolute: lib-http refuses a relative one
        res.end()
        return
      }
      res.end(`ok ${req.url}`)
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(() => new Promise<void>((r) => {
  server.closeAllConnections()
  server.close(() => r())
}))

const withTrace = traceScripts('dovepush-http24-', KEYS_AND_R)
const in24 = (body: string, engine: 'wasmoon' | 'fengari') => inBeginTxn(withTrace, body, engine, { dovecot: '2.4' })

for (const engine of ['wasmoon', 'fengari'] as const) {
  describe(`dovecot.http 2.4 (${engine})`, () => {
    it('settings: Dovecot 2.4 error texts, 2.3 names unknown, units and types', async () => {
      const { lines } = await in24(`
        local function try(o) local ok, e = pcall(dovecot.http.client, o); trace(ok and ("ok " .. type(e)) or ("err " .. e)) end
        try({ timeout = 10000 })
        try({ auto_retry = "cow" })
        try({ request_max_attempts = "three" })
        try({ ssl_min_protocol = "cow" })
        try({ max_attempts = 2 })
        try({ debug = "yes" })
        try({ no_auto_redirect = "yes" })
        try({ request_timeout_msecs = 200 })
        try({ request_timeout = 5 })
        try({ request_timeout = "1.5s" })
        try({ request_timeout = "5 sec" })
        try({ request_timeout = "2 min", connect_timeout = "500ms", request_absolute_timeout = "1h" })
        try({ max_auto_retry_delay = "1500ms" })
        try({ request_max_attempts = 0 })
        try({ request_max_attempts = 2.0 })
        try({ request_max_attempts = "unlimited", auto_retry = "no", auto_redirect = "YES", user_agent = "ua" })
        try({ request_timeout = "0" })
        try({ auto_retry = true })
        try({ event_parent = dovecot.event(), request_max_attempts = 3, connect_timeout = "2s", request_timeout = "5s",
              request_absolute_timeout = "45s", dns_client_socket_path = "./dns-test", user_agent = "dovecot/unit-test",
              ssl_min_protocol = "TLSv1.2" })`, engine)
      expect(lines).toEqual([
        'err Invalid HTTP client setting: timeout is unknown setting',
        'err Invalid HTTP client setting: auto_retry=cow: Invalid boolean value: cow (use yes or no)',
        'err Invalid HTTP client setting: request_max_attempts=three: Invalid number three: Not a valid number',
        'ok table',
        'err Invalid HTTP client setting: max_attempts is unknown setting',
        'err Invalid HTTP client setting: debug is unknown setting',
        'err Invalid HTTP client setting: no_auto_redirect is unknown setting',
        'err Invalid HTTP client setting: request_timeout_msecs is unknown setting',
        "err Invalid HTTP client setting: request_timeout=5: Time interval '5' is missing units (add e.g. 's' for seconds)",
        'err Invalid HTTP client setting: request_timeout=1.5s: Invalid time interval: 1.5s',
        'ok table',
        'ok table',
        'err Invalid HTTP client setting: max_auto_retry_delay=1500ms: Milliseconds not supported for this setting: 1500ms',
        'err Invalid HTTP client setting: http_client settings: Invalid settings: request_max_attempts must not be 0',
        'err Invalid HTTP client setting: request_max_attempts=2.0: Invalid number 2.0: Not a valid number',
        'ok table',
        'err Invalid HTTP client setting: http_client settings: Invalid settings: http_client_request_timeout_msecs must not be 0',
        expect.stringMatching(/^err Invalid HTTP client setting: auto_retry: string or number expected, got boolean/),
        'ok table',
      ])
    })

    it('request_timeout="200ms" against a slow server → 9008; request_max_attempts=2 makes 2 attempts', async () => {
      seen.length = 0
      const { lines } = await in24(`
        local c = dovecot.http.client({ request_timeout = "200ms" })
        local res = c:request({ url = "${base}/slow" }):submit()
        trace(r(res:status()))
        trace(res:reason())
        local c2 = dovecot.http.client({ request_timeout = "150 msecs", request_max_attempts = "2" })
        trace(r(c2:request({ url = "${base}/slow" }):submit():status()))`, engine)
      expect(lines[0]).toBe('9008')
      expect(lines[1]).toMatch(/^Request timed out \(Request queued 0\.2\d\d secs ago, 1 send attempts/)
      expect(lines[2]).toBe('9008')
      expect(seen.filter((s) => s.url === '/slow')).toHaveLength(3)
    })

    it('user_agent reaches the server; redirects follow request_max_redirects; auto_redirect=no returns the 302', async () => {
      seen.length = 0
      const { lines } = await in24(`
        local res = dovecot.http.client({ user_agent = "agent/2.4" }):request({ url = "${base}/hook" }):submit()
        trace(r(res:status(), res:payload()))
        trace(r(dovecot.http.client({}):request({ url = "${base}/redirect" }):submit():status()))
        trace(r(dovecot.http.client({ request_max_redirects = 1 }):request({ url = "${base}/redirect" }):submit():payload()))
        trace(r(dovecot.http.client({ auto_redirect = "no" }):request({ url = "${base}/redirect" }):submit():status()))`, engine)
      expect(lines).toEqual(['200 ok /hook', '9004', 'ok /hook', '302'])
      const ua = seen[0]!.rawHeaders.indexOf('User-Agent')
      expect(seen[0]!.rawHeaders[ua + 1]).toBe('agent/2.4')
    })

    it('set_payload(str[, synchronous]): 2 or 3 arguments', async () => {
      seen.length = 0
      const { lines } = await in24(`
        local c = dovecot.http.client({})
        local rq = c:request({ url = "${base}/post", method = "POST" })
        trace(r(pcall(rq.set_payload, rq)))
        trace(r(pcall(rq.set_payload, rq, "a", true, 1)))
        rq:set_payload("first")
        rq:set_payload("body", true)
        trace(r(rq:submit():status()))`, engine)
      expect(lines).toEqual(['false expected 2 to 3 arguments, got 1', 'false expected 2 to 3 arguments, got 4', '200'])
      expect(seen.at(-1)!.body).toBe('body')
    })

    it('set_event/get_event: the request event is a child of the given event', async () => {
      const { lines, run } = await in24(`
        local c = dovecot.http.client({})
        local rq = c:request({ url = "${base}/ev" })
        trace(r(type(rq.set_event), type(rq.get_event)))
        trace(r(pcall(rq.set_event, rq, 5)))
        trace(r(pcall(rq.get_event, rq, 1)))
        local e = dovecot.event():append_log_prefix("mine: ")
        trace(r(rq:set_event(e)))
        local got = rq:get_event()
        trace(r(getmetatable(got) == getmetatable(e), rawequal(got, e)))
        got:log_info("hello")
        trace(r(rq:submit():status()))`, engine)
      expect(lines).toEqual([
        'function function',
        'false Bad argument #2, expected struct event got number',
        'false expected 1 arguments, got 2',
        'true false',
        '200',
      ])
      const text = JSON.stringify(run)
      expect(text).toContain(`lua: mine: request [Req`)
      expect(text).toMatch(/request \[Req\d+: GET http:\/\/127\.0\.0\.1:\d+\/ev\]: hello/)
    })

    it('2.3 mode keeps set_payload at exactly 2 arguments and has no set_event', async () => {
      const { lines } = await inBeginTxn(withTrace, `
        local rq = dovecot.http.client({}):request({ url = "${base}/x" })
        trace(r(pcall(rq.set_payload, rq, "a", true)))
        trace(r(type(rq.set_event)))`, engine)
      expect(lines).toEqual(['false expected 2 arguments, got 3', 'nil'])
    })
  })
}
