// `dovepush serve` over real HTTP (undici → node:http on 127.0.0.1:0): what
// is accepted runs, exactly once and in per-user order; ?wait=true tells what
// the script did; a full queue answers 503 + Retry-After and drops nothing
// silently; every bad request gets a 4xx JSON error naming the problem and
// the next request is served; auth, /healthz, /metrics, graceful close.

import type { Server } from 'node:http'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startServer, stopServer } from '../helpers/http-server.js'
import { traceScripts } from '../helpers/trace.js'
import { call, post, type Served, serveSource, tx, until } from './helpers.js'

const withTrace = traceScripts('dovepush-serve-')

/** begin_txn keeps the user in ctx; message_new traces "user uid"; deinit traces "deinit user". */
const RECORDER = `
local me
function dovecot_lua_notify_begin_txn(user) me = user.username; return { user = user.username } end
function dovecot_lua_notify_event_message_new(ctx, ev)
  if ev.uid == 666 then error("boom " .. string.format("%d", ev.uid)) end
  trace(ctx.user .. " " .. string.format("%d", ev.uid))
end
function dovecot_lua_notify_end_txn(ctx, ok) end
function script_deinit() trace("deinit " .. tostring(me)) end
`

let served: Served | undefined
afterEach(async () => {
  await served?.close()
  served = undefined
})

// a local endpoint for scripts: /hook answers 200 after ?delay= ms; /gate waits until released
interface Hit { path: string; body: string; auth: string | undefined }
const hits: Hit[] = []
let sink: Server
let sinkBase = ''
let inFlight = 0
let maxInFlight = 0
let gateOpen = false
const gated: Array<() => void> = []
beforeAll(async () => {
  ;({ server: sink, base: sinkBase } = await startServer((req, body, res) => {
    const url = new URL(req.url!, 'http://x')
    hits.push({ path: url.pathname, body: body.toString(), auth: req.headers.authorization })
    inFlight++
    maxInFlight = Math.max(maxInFlight, inFlight)
    const answer = (): void => {
      inFlight--
      res.writeHead(200, 'OK')
      res.end('ok')
    }
    if (url.pathname === '/gate' && !gateOpen) gated.push(answer)
    else setTimeout(answer, Number(url.searchParams.get('delay') ?? 0))
  }))
})
afterAll(() => stopServer(sink))

/** A script that POSTs "user uid" to `url` from message_new (so it waits). */
const poster = (url: string): string => `
local client = dovecot.http.client({ timeout = 10000 })
function dovecot_lua_notify_begin_txn(user) return { user = user.username } end
function dovecot_lua_notify_event_message_new(ctx, ev)
  local rq = client:request({ url = ${JSON.stringify(url)}, method = "POST" })
  rq:set_payload(ctx.user .. " " .. string.format("%d", ev.uid))
  local res = rq:submit()
  if ev.uid == 13 then error("unlucky " .. res:status()) end
end
function dovecot_lua_notify_end_txn(ctx, ok) end
`

describe('POST /v1/transactions', () => {
  it('answers 202 once queued, and the transaction runs', async () => {
    const t = withTrace(RECORDER)
    served = await serveSource(t.source)
    const r = await post(served.url, tx('alice@example.test', 7), { 'content-type': 'application/json' })
    expect(r.status).toBe(202)
    expect(r.headers['content-type']).toMatch(/^application\/json/)
    expect(r.json).toEqual({ accepted: 1 })
    await until(() => t.read().includes('alice@example.test 7'))
  })

  it('takes a JSON array and NDJSON (bare events go to --user), in body order', async () => {
    const t = withTrace(RECORDER)
    served = await serveSource(t.source, { user: 'dflt@example.test' })
    const arr = await post(served.url, `[${tx('a@x', 1)},${tx('a@x', 2)}]`)
    expect(arr.json).toEqual({ accepted: 2 })
    const nd = await post(served.url, `${tx('a@x', 3)}\r\n\n{"name":"MessageNew","mailbox":"INBOX","uid":9}\n${tx('a@x', 4)}`, { 'content-type': 'application/x-ndjson' })
    expect(nd.json).toEqual({ accepted: 3 })
    await served.close()
    served = undefined
    expect(t.read().filter((l) => !l.startsWith('deinit'))).toEqual(['a@x 1', 'a@x 2', 'a@x 3', 'a@x 4', 'dflt@example.test 9'])
  })

  it('?wait=true answers after the run: calls, errors, and the HTTP requests (credentials redacted)', async () => {
    const url = sinkBase.replace('http://', 'http://bob:s3cret@') + '/hook?delay=5'
    served = await serveSource(poster(url))
    const body = [tx('w@x', 1), tx('w@x', 13)].join('\n')
    const r = await post(served.url, body, {}, '?wait=true')
    expect(r.status).toBe(200)
    expect(r.json.accepted).toBe(2)
    const [first, second] = r.json.results
    expect(first).toMatchObject({ index: 0, user: 'w@x', errors: [] })
    expect(first.calls.map((c: { fn: string }) => c.fn)).toEqual([
      '(main chunk)',
      'dovecot_lua_notify_begin_txn',
      'dovecot_lua_notify_event_message_new',
      'dovecot_lua_notify_end_txn',
    ])
    expect(first.calls[2].event).toEqual({ name: 'MessageNew', mailbox: 'INBOX', uid: 1 })
    expect(first.calls[3]).toMatchObject({ committed: true })
    expect(typeof first.calls[1].session).toBe('string')
    expect(first.requests).toHaveLength(1)
    expect(first.requests[0]).toMatchObject({ module: 'dovecot.http', method: 'POST', url: `${sinkBase}/hook?delay=5`, status: 200, reason: 'OK' })
    expect(first.requests[0].ms).toBeGreaterThanOrEqual(4)
    expect(JSON.stringify(r.json)).not.toContain('s3cret')
    expect(hits.some((h) => h.auth === `Basic ${Buffer.from('bob:s3cret').toString('base64')}`)).toBe(true)
    expect(second.index).toBe(1)
    expect(second.errors).toEqual([{ fn: 'dovecot_lua_notify_event_message_new', error: expect.stringMatching(/unlucky 200/) }])
    expect(second.calls.find((c: { error?: string }) => c.error !== undefined)?.fn).toBe('dovecot_lua_notify_event_message_new')
  })

  it('?wait=true and /metrics count the requests of socket.http too (module named; a failure has status 0 and LuaSocket\'s words)', async () => {
    const url = sinkBase.replace('http://', 'http://bob:s3cret@') + '/hook'
    served = await serveSource(`
local http = require("socket.http")
function dovecot_lua_notify_begin_txn(user) return {} end
function dovecot_lua_notify_event_message_new(ctx, ev)
  local body, code = http.request(${JSON.stringify(url)}, "uid=" .. string.format("%d", ev.uid))
  local none, err = http.request("http://127.0.0.1:1/refused")
end
function dovecot_lua_notify_end_txn(ctx, ok) end
`)
    const r = await post(served.url, tx('s@x', 3), {}, '?wait=true')
    expect(r.status).toBe(200)
    const [res] = r.json.results
    expect(res.errors).toEqual([])
    expect(res.requests).toHaveLength(2)
    expect(res.requests[0]).toMatchObject({ module: 'socket.http', method: 'POST', url: `${sinkBase}/hook`, status: 200, reason: 'OK' })
    expect(res.requests[1]).toMatchObject({ module: 'socket.http', method: 'GET', url: 'http://127.0.0.1:1/refused', status: 0, reason: 'connection refused' })
    expect(JSON.stringify(r.json)).not.toContain('s3cret')
    const m = await call(`${served.url}/metrics`)
    expect(m.text).toContain('\ndovepush_script_http_request_duration_seconds_count{module="socket.http",method="POST",status="200"} 1\n')
    expect(m.text).toContain('\ndovepush_script_http_request_duration_seconds_count{module="socket.http",method="GET",status="0"} 1\n')
  })

  it('keeps per-user order with users in parallel, at most --concurrency at once', async () => {
    served = await serveSource(poster(`${sinkBase}/order?delay=2`), { concurrency: 4 })
    hits.length = 0
    maxInFlight = 0
    const users = Array.from({ length: 10 }, (_, i) => `u${i}@x`)
    const perUser = 15
    // each user's transactions from its own sequential poster; all posters at once; some batched
    await Promise.all(
      users.map(async (u, i) => {
        for (let k = 1; k <= perUser; ) {
          const n = i % 3 === 0 ? Math.min(3, perUser - k + 1) : 1
          const body = Array.from({ length: n }, (_, j) => tx(u, k + j)).join('\n')
          const r = await post(served!.url, body)
          expect(r.status).toBe(202)
          k += n
        }
      }),
    )
    await until(() => hits.filter((h) => h.path === '/order').length === users.length * perUser)
    const seen = new Map<string, number[]>()
    for (const h of hits.filter((h) => h.path === '/order')) {
      const [u, n] = h.body.split(' ')
      seen.set(u!, [...(seen.get(u!) ?? []), Number(n)])
    }
    for (const u of users) expect(seen.get(u)).toEqual(Array.from({ length: perUser }, (_, i) => i + 1))
    expect(maxInFlight).toBeGreaterThan(1)
    expect(maxInFlight).toBeLessThanOrEqual(4)
  })

  it('answers 503 + Retry-After when the queue is full; what was accepted runs, nothing else', async () => {
    served = await serveSource(poster(`${sinkBase}/gate`), { concurrency: 1, queueSize: 3 })
    hits.length = 0
    gateOpen = false
    expect((await post(served.url, tx('q@x', 1))).status).toBe(202)
    await until(() => hits.length === 1) // 1 runs (held at the gate), the queue is empty
    for (const uid of [2, 3, 4]) expect((await post(served.url, tx('q@x', uid))).status).toBe(202)
    const full = await post(served.url, tx('q@x', 5))
    expect(full.status).toBe(503)
    expect(full.headers['retry-after']).toBe('1')
    expect(full.json.error.code).toBe('DOVEPUSH_ERR_QUEUE_FULL')
    expect(full.json.error.message).toMatch(/^queue full \(3 of 3 transactions waiting\): nothing of this request was queued; retry after 1 s$/)
    const health = await call(`${served.url}/healthz`)
    expect(health.json).toEqual({ status: 'ok', queue: { depth: 3, capacity: 3, running_users: 1 } })
    // too many for the queue at all: 413
    const many = await post(served.url, [6, 7, 8, 9].map((u) => tx('q@x', u)).join('\n'))
    expect(many.status).toBe(413)
    expect(many.json.error.message).toMatch(/4 transactions in one request, more than the queue holds \(--queue-size 3\)/)
    gateOpen = true
    for (const answer of gated.splice(0)) answer()
    await until(() => hits.length === 4)
    // room again: a 2-transaction request is taken whole
    expect((await post(served.url, [tx('q@x', 5), tx('q@x', 6)].join('\n'))).status).toBe(202)
    const metrics = (await call(`${served.url}/metrics`)).text
    await served.close()
    served = undefined
    expect(hits.map((h) => h.body)).toEqual(['q@x 1', 'q@x 2', 'q@x 3', 'q@x 4', 'q@x 5', 'q@x 6'])
    expect(metrics).toMatch(/^dovepush_transactions_rejected_total\{reason="queue_full"\} 1$/m)
    expect(metrics).toMatch(/^dovepush_transactions_rejected_total\{reason="too_many"\} 4$/m)
  })
})

describe('bad requests: a 4xx JSON error naming the problem, and the next request is served', () => {
  const cases: Array<{ name: string; send: (base: string) => Promise<import('./helpers.js').Reply>; status: number; code: string; message: RegExp; extra?: Record<string, unknown> }> = [
    {
      name: 'malformed JSON (application/json)',
      send: (b) => post(b, '{"user": "a@x", "events": [', { 'content-type': 'application/json' }),
      status: 400,
      code: 'DOVEPUSH_ERR_INPUT',
      message: /^malformed JSON: /,
    },
    {
      name: 'malformed NDJSON line',
      send: (b) => post(b, `${tx('a@x', 1)}\n{"user": oops}\n`),
      status: 400,
      code: 'DOVEPUSH_ERR_INPUT',
      message: /^line 2: malformed JSON: /,
      extra: { line: 2 },
    },
    {
      name: 'a wrong field type (NDJSON)',
      send: (b) => post(b, `${tx('a@x', 1)}\n${tx('a@x', '7')}`),
      status: 400,
      code: 'DOVEPUSH_ERR_INPUT',
      message: /^line 2: events\[0\]\.uid: expected a number, got string$/,
      extra: { line: 2, field: 'events[0].uid' },
    },
    {
      name: 'a wrong field type (array)',
      send: (b) => post(b, `[${tx('a@x', 1)},${JSON.stringify({ user: 'a@x', committed: 'yes', events: [] })}]`),
      status: 400,
      code: 'DOVEPUSH_ERR_INPUT',
      message: /^\[1\]\.committed: expected true or false, got string$/,
      extra: { index: 1, field: 'committed' },
    },
    {
      name: 'an unknown event',
      send: (b) => post(b, JSON.stringify({ user: 'a@x', events: [{ name: 'MessageNue', mailbox: 'INBOX' }] })),
      status: 400,
      code: 'DOVEPUSH_ERR_INPUT',
      message: /^events\[0\]\.name: unknown event "MessageNue"/,
    },
    { name: 'an empty body', send: (b) => post(b, '  \n'), status: 400, code: 'DOVEPUSH_ERR_INPUT', message: /^empty body: expected a transaction object/ },
    {
      name: 'an oversized body (Content-Length)',
      send: (b) => post(b, tx('a@x', 1) + ' '.repeat(5000)),
      status: 413,
      code: 'DOVEPUSH_ERR_TOO_LARGE',
      message: /^request body larger than 4096 bytes \(--max-body\)/,
    },
    {
      name: 'an oversized body (chunked)',
      send: (b) => call(`${b}/v1/transactions`, { method: 'POST', body: (function* () { for (let i = 0; i < 8; i++) yield Buffer.from(' '.repeat(1000)) })() }),
      status: 413,
      code: 'DOVEPUSH_ERR_TOO_LARGE',
      message: /^request body larger than 4096 bytes/,
    },
    { name: 'an unknown path', send: (b) => post(b.replace(/$/, '/v2'), tx('a@x', 1)), status: 404, code: 'DOVEPUSH_ERR_NOT_FOUND', message: /^no such path: POST \/v2\/v1\/transactions/ },
    { name: 'a wrong method', send: (b) => call(`${b}/v1/transactions`), status: 405, code: 'DOVEPUSH_ERR_METHOD', message: /^GET \/v1\/transactions: method not allowed \(allowed: POST\)$/ },
    { name: 'an unknown query parameter', send: (b) => post(b, tx('a@x', 1), {}, '?wiat=true'), status: 400, code: 'DOVEPUSH_ERR_INPUT', message: /^unknown query parameter "wiat" \(known: wait\)$/ },
    { name: 'a bad wait value', send: (b) => post(b, tx('a@x', 1), {}, '?wait=soon'), status: 400, code: 'DOVEPUSH_ERR_INPUT', message: /^wait: expected true or false, got "soon"$/ },
  ]

  let t: ReturnType<typeof withTrace>
  let s: Served
  beforeAll(async () => {
    t = withTrace(RECORDER)
    s = await serveSource(t.source, { maxBody: 4096 })
  })
  afterAll(() => s.close())

  let uid = 100
  for (const c of cases) {
    it(c.name, async () => {
      const r = await c.send(s.url)
      expect(r.status).toBe(c.status)
      expect(r.headers['content-type']).toMatch(/^application\/json/)
      expect(r.json.error.code).toBe(c.code)
      expect(r.json.error.message).toMatch(c.message)
      if (c.extra !== undefined) expect(r.json.error).toMatchObject(c.extra)
      const next = ++uid
      const ok = await post(s.url, tx('next@x', next))
      expect(ok.status).toBe(202)
      await until(() => t.read().includes(`next@x ${next}`))
      expect(t.read().filter((l) => l.startsWith('a@x'))).toEqual([]) // nothing of a bad request ran
    })
  }

  it('lists every bad line (up to 20) and counts them all', async () => {
    const body = Array.from({ length: 25 }, (_, i) => tx('a@x', `x${i}`)).join('\n')
    const r = await post(s.url, body)
    expect(r.status).toBe(400)
    expect(r.json.error.message).toBe('line 1: events[0].uid: expected a number, got string (and 24 more; nothing was queued)')
    expect(r.json.error.error_count).toBe(25)
    expect(r.json.error.errors).toHaveLength(20)
    expect(r.json.error.errors[19]).toEqual({ message: 'line 20: events[0].uid: expected a number, got string', line: 20, field: 'events[0].uid' })
  })
})

describe('bearer token', () => {
  let s: Served
  beforeAll(async () => {
    s = await serveSource(RECORDER.replace(/trace\(/g, 'print('), { token: 'tok-123' })
  })
  afterAll(() => s.close())

  it('refuses a missing, malformed or wrong token with 401, takes the right one', async () => {
    const missing = await post(s.url, tx('a@x', 1))
    expect(missing.status).toBe(401)
    expect(missing.headers['www-authenticate']).toBe('Bearer realm="dovepush"')
    expect(missing.json.error).toEqual({ code: 'DOVEPUSH_ERR_UNAUTHORIZED', message: 'missing bearer token: send "Authorization: Bearer <token>" (the token of --token-file)' })
    const basic = await post(s.url, tx('a@x', 1), { authorization: 'Basic dG9rLTEyMw==' })
    expect(basic.status).toBe(401)
    expect(basic.json.error.message).toBe('malformed Authorization header: expected "Bearer <token>"')
    const wrong = await post(s.url, tx('a@x', 1), { authorization: 'Bearer tok-124' })
    expect(wrong.status).toBe(401)
    expect(wrong.json.error.message).toBe('wrong bearer token')
    const right = await post(s.url, tx('a@x', 1), { authorization: 'Bearer tok-123' })
    expect(right.status).toBe(202)
    expect(s.handle.counts).toMatchObject({ accepted: 1, badRequests: 3 })
  })

  it('guards /metrics; /healthz stays open', async () => {
    expect((await call(`${s.url}/metrics`)).status).toBe(401)
    expect((await call(`${s.url}/metrics`, { headers: { authorization: 'Bearer tok-123' } })).status).toBe(200)
    expect((await call(`${s.url}/healthz`)).status).toBe(200)
  })
})

describe('--session-idle', () => {
  it('ends a session no transaction used for that long (script_deinit runs), and the next transaction starts a new one', async () => {
    const t = withTrace(RECORDER)
    served = await serveSource(t.source, { sessionIdleSeconds: 0.2 })
    expect((await post(served.url, tx('idle@x', 1), {}, '?wait=true')).status).toBe(200)
    await until(() => t.read().includes('deinit idle@x'))
    expect(t.read()).toEqual(['idle@x 1', 'deinit idle@x'])
    expect((await post(served.url, tx('idle@x', 2), {}, '?wait=true')).status).toBe(200)
    expect(served.handle.host.stats.sessions).toBe(2)
  })
})

describe('/healthz and /metrics', () => {
  it('report the queue and the Prometheus counters', async () => {
    const url = `${sinkBase}/hook`
    served = await serveSource(poster(url), { concurrency: 2, queueSize: 50 })
    const health = await call(`${served.url}/healthz`)
    expect(health.status).toBe(200)
    expect(health.json).toEqual({ status: 'ok', queue: { depth: 0, capacity: 50, running_users: 0 } })
    expect((await post(served.url, [tx('m@x', 1), tx('m@x', 13)].join('\n'), {}, '?wait=1')).status).toBe(200)
    await post(served.url, '{')
    const m = await call(`${served.url}/metrics`)
    expect(m.status).toBe(200)
    expect(m.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/)
    for (const name of [
      'dovepush_transactions_accepted_total 2',
      'dovepush_transactions_total{outcome="committed"} 2',
      'dovepush_events_total 2',
      'dovepush_script_calls_total{function="dovecot_lua_notify_event_message_new"} 2',
      'dovepush_script_errors_total{kind="script"} 1',
      'dovepush_sessions_started_total 1',
      'dovepush_queue_depth 0',
      'dovepush_queue_capacity 50',
      'dovepush_queue_running_users 0',
      'dovepush_script_http_request_duration_seconds_count{module="dovecot.http",method="POST",status="200"} 2',
      'dovepush_http_requests_total{route="/v1/transactions",code="400"} 1',
      'dovepush_http_requests_total{route="/healthz",code="200"} 1',
    ]) {
      expect(m.text).toContain(`\n${name}\n`)
    }
    expect(m.text).toMatch(/^# TYPE dovepush_script_http_request_duration_seconds histogram$/m)
    expect(m.text).toMatch(/^process_resident_memory_bytes \d+$/m)
  })
})

describe('close()', () => {
  it('drains the queue, then ends every session (script_deinit); later requests get 503', async () => {
    const t = withTrace(RECORDER.replace('function dovecot_lua_notify_event_message_new(ctx, ev)', 'function dovecot_lua_notify_event_message_new(ctx, ev)\n  local rq = dovecot.http.client({}):request({ url = "' + sinkBase + '/hook?delay=3" }); rq:submit()'))
    served = await serveSource(t.source, { concurrency: 2 })
    const body = (u: string) => Array.from({ length: 5 }, (_, i) => tx(u, i + 1)).join('\n')
    for (const u of ['a@x', 'b@x', 'c@x']) expect((await post(served.url, body(u))).status).toBe(202)
    const closing = served.close()
    served = undefined
    await closing
    const lines = t.read()
    for (const u of ['a@x', 'b@x', 'c@x']) {
      const mine = lines.filter((l) => l.endsWith(u) || l.startsWith(u + ' '))
      expect(mine).toEqual([`${u} 1`, `${u} 2`, `${u} 3`, `${u} 4`, `${u} 5`, `deinit ${u}`])
    }
  })

  it('answers 503 to a transaction whose body arrives while draining', async () => {
    served = await serveSource(poster(`${sinkBase}/hook?delay=300`))
    expect((await post(served.url, tx('d@x', 1))).status).toBe(202)
    await until(() => served!.handle.queue.running === 1)
    let closing: Promise<void> | undefined
    const handle = served.handle
    const body = async function* () {
      yield Buffer.from(tx('d@x', 2).slice(0, 10))
      await until(() => closing !== undefined)
      yield Buffer.from(tx('d@x', 2).slice(10))
    }
    const late = call(`${served.url}/v1/transactions`, { method: 'POST', body: body() })
    await new Promise((r) => setTimeout(r, 50)) // the request is being read
    closing = handle.close()
    const r = await late
    expect(r.status).toBe(503)
    expect(r.headers.connection).toBe('close')
    expect(r.json.error).toEqual({ code: 'DOVEPUSH_ERR_SHUTTING_DOWN', message: 'the server is shutting down: nothing of this request was queued' })
    expect((await call(`${served.url}/healthz`).catch((e: Error) => e)) instanceof Error).toBe(true) // no longer listening
    await closing
    expect(handle.host.stats.transactions).toBe(1)
    expect(handle.counts).toMatchObject({ accepted: 1, rejected: 1 })
  })
})
