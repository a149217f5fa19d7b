// Serve benchmark (issue acceptance 3): `dovepush serve` in-process (from
// dist/), 20,000 single-event transactions from 50 users, posted by 50
// concurrent posters (one per user, each waiting for its 202 before the next
// post). The script checks per-user sequence numbers as they arrive and
// writes each user's count at script_deinit; the bench checks every
// transaction ran exactly once and in order, and prints throughput (tx/s,
// posting to last run) and peak RSS (server and posters share the process).
//
//   npm run bench:serve
//   BENCH_SERVE_N=100000 BENCH_SERVE_USERS=200 BENCH_SERVE_BATCH=10 node bench/serve.bench.js

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir, cpus } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { Agent, request } from 'undici'
import { startServe } from '../dist/serve/server.js'
import { createLuaHost } from '../dist/drivers/lua.js'
import { createEngine } from '../dist/lua/engine.js'
import { parseTransaction } from '../dist/events/validate.js'

const N = Number(process.env.BENCH_SERVE_N ?? 20_000)
const USERS = Number(process.env.BENCH_SERVE_USERS ?? 50)
const BATCH = Number(process.env.BENCH_SERVE_BATCH ?? 1)
const CONCURRENCY = Number(process.env.BENCH_SERVE_CONCURRENCY ?? 32)
const PER_USER = Math.ceil(N / USERS)
const TOTAL = PER_USER * USERS

const dir = mkdtempSync(join(tmpdir(), 'dovepush-serve-bench-'))
const out = join(dir, 'counts.txt')
const script = join(dir, 'sequence.lua')
writeFileSync(script, `
-- per session: the next expected sequence number (the uid); a gap, a repeat or a reorder is a script error
local me, count, last, bad = nil, 0, 0, 0
local out
function dovecot_lua_notify_begin_txn(user)
  me = user.username
  out = out or user:plugin_getenv("bench_out")
  return {}
end
function dovecot_lua_notify_event_message_new(ctx, ev)
  local seq = math.tointeger(ev.uid)
  count = count + 1
  if seq ~= last + 1 then bad = bad + 1; error(string.format("%s: expected %d, got %d", me, last + 1, seq)) end
  last = seq
end
function dovecot_lua_notify_end_txn(ctx, ok) end
function script_deinit()
  local f = assert(io.open(out, "a"))
  f:write(string.format("%s %d %d %d\\n", me, count, last, bad))
  f:close()
end
`)

const EVENT = { name: 'MessageNew', mailbox: 'INBOX', uid_validity: 1700000000, date: 1700000100, tz: 120,
  from: 'Alice <alice@example.test>', from_address: 'alice@example.test', from_display_name: 'Alice',
  to: 'bob@example.test', to_address: 'bob@example.test', to_display_name: '', subject: 'Hi', snippet: 'Hello',
  message_id: '<1@example.test>', flags: [], keywords: [] }
const line = (user, seq) => JSON.stringify({ user, service: 'lmtp', events: [{ ...EVENT, uid: seq }] })

let peakRss = process.memoryUsage.rss()
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 25)

const handle = await startServe({
  script,
  settings: { bench_out: out },
  host: '127.0.0.1',
  port: 0,
  concurrency: CONCURRENCY,
  queueSize: 10_000,
  memoryLimit: 64 * 1024 * 1024,
  log: pino({ level: 'warn' }, pino.destination('/dev/null')),
})
const rssStart = process.memoryUsage.rss()
const dispatcher = new Agent({ connections: USERS, pipelining: 1 })
const target = `${handle.url}/v1/transactions`
let refused = 0

async function poster(u) {
  const user = `user${u}@example.test`
  for (let seq = 1; seq <= PER_USER; ) {
    const n = Math.min(BATCH, PER_USER - seq + 1)
    const body = Array.from({ length: n }, (_, i) => line(user, seq + i)).join('\n')
    const res = await request(target, { method: 'POST', body, dispatcher, headers: { 'content-type': n === 1 ? 'application/json' : 'application/x-ndjson' } })
    const text = await res.body.text()
    if (res.statusCode === 503) {
      refused++
      await new Promise((r) => setTimeout(r, 1000 * Number(res.headers['retry-after'] ?? 1)))
      continue
    }
    if (res.statusCode !== 202) throw new Error(`POST answered ${res.statusCode}: ${text}`)
    seq += n
  }
}

const t0 = performance.now()
await Promise.all(Array.from({ length: USERS }, (_, u) => poster(u)))
const tPosted = performance.now()
while (handle.host.stats.transactions < TOTAL || handle.queue.depth > 0 || handle.queue.running > 0) await new Promise((r) => setTimeout(r, 2))
const tRan = performance.now()
const rssAfterRun = process.memoryUsage.rss()
await handle.close()
clearInterval(sampler)
await dispatcher.close()

const stats = handle.host.stats
const rows = readFileSync(out, 'utf8').trim().split('\n').map((l) => l.split(' '))

// Baseline, same run: the same transactions straight into a Host (what `dovepush run` does), no HTTP
const baseOut = join(dir, 'baseline.txt')
const baseHost = createLuaHost({
  scriptPath: script, engine: await createEngine('wasmoon'), dovecot: '2.3', settings: { bench_out: baseOut },
  log: pino({ level: 'warn' }, pino.destination('/dev/null')), callTimeoutMs: 5000, memoryLimit: 64 * 1024 * 1024, defaultService: 'imap', maxSessions: 1000,
})
const b0 = performance.now()
for (let seq = 1; seq <= PER_USER; seq++) {
  for (let u = 0; u < USERS; u++) {
    const r = baseHost.submit(parseTransaction(JSON.parse(line(`user${u}@example.test`, seq)), { user: 'x' }))
    if (r instanceof Promise) await r
  }
}
const baseSecs = (performance.now() - b0) / 1000
await baseHost.close()
rmSync(dir, { recursive: true, force: true })
const problems = []
if (rows.length !== USERS) problems.push(`${rows.length} sessions reported, expected ${USERS}`)
for (const [user, count, last, bad] of rows) {
  if (Number(count) !== PER_USER || Number(last) !== PER_USER || Number(bad) !== 0) problems.push(`${user}: ran ${count}, last ${last}, out of order ${bad} (expected ${PER_USER}, ${PER_USER}, 0)`)
}
if (stats.transactions !== TOTAL) problems.push(`host ran ${stats.transactions} transactions, expected ${TOTAL}`)
if (stats.errorCount !== 0) problems.push(`script errors: ${JSON.stringify(stats.errors)}`)
if (handle.counts.accepted !== TOTAL) problems.push(`accepted ${handle.counts.accepted}, expected ${TOTAL}`)

const secs = (tRan - t0) / 1000
const mb = (b) => `${(b / 1024 / 1024).toFixed(0)} MB`
console.log(`dovepush serve: ${TOTAL.toLocaleString('en-US')} transactions from ${USERS} users (${USERS} concurrent posters, ${BATCH} per request, --concurrency ${CONCURRENCY}), ${cpus().length} cores, Node ${process.versions.node}`)
console.log(`  throughput: ${Math.round(TOTAL / secs).toLocaleString('en-US')} tx/s (${secs.toFixed(2)} s; all posted after ${((tPosted - t0) / 1000).toFixed(2)} s)`)
console.log(`  baseline, same run: the same transactions straight into a Host (no HTTP): ${Math.round(TOTAL / baseSecs).toLocaleString('en-US')} tx/s; serve/baseline ${(baseSecs / secs).toFixed(3)}`)
console.log(`  refused (503, retried): ${refused}`)
console.log(`  RSS: ${mb(rssStart)} after start, ${mb(rssAfterRun)} after the run, peak ${mb(peakRss)} (process maxRSS ${mb(process.resourceUsage().maxRSS * 1024)})`)
if (problems.length > 0) {
  console.log(`  FAILED: ${problems.length} problem(s):\n    ${problems.slice(0, 10).join('\n    ')}`)
  process.exitCode = 1
} else {
  console.log(`  every transaction ran exactly once, in per-user order (${USERS} sessions checked at script_deinit)`)
}
