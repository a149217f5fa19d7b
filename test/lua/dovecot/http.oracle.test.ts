// dovecot.http against the oracle: the shared recorder's HTTP probes
// (../shared/oracle/recorder.lua, unchanged) run against a local copy of the
// oracle's sink. What the script sees (probe:http) must equal the recording;
// on the wire, method, path, body bytes and the whole header block must:
// names, case, order and values (the Date value and the Host port aside).

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { parseTransaction } from '../../../src/events/validate.js'
import { readRecording } from '../../helpers/oracle.js'
import { runScript } from '../../helpers/run-script.js'

const RECORDER = resolve('../shared/oracle/recorder.lua')
const ORACLE_SINK = 'fixtures/oracle/http-sink.ndjson'
const ORACLE = 'fixtures/oracle/dovecot-2.3.19.ndjson'
interface Seen { method: string; path: string; headers: Array<[string, string]>; body: string }
const seen: Seen[] = []
let sink: Server
let port = 0
let closedPort = 0

function record(req: IncomingMessage, body: Buffer): void {
  const headers: Array<[string, string]> = []
  for (let i = 0; i < req.rawHeaders.length; i += 2) headers.push([req.rawHeaders[i]!, req.rawHeaders[i + 1]!])
  seen.push({ method: req.method!, path: req.url!, headers, body: body.toString('utf8') })
}

beforeAll(async () => {
  // ../shared/oracle/sink.py's answers: 200 "OK from sink", JSON, X-Sink; /slow answers late
  sink = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      record(req, Buffer.concat(chunks))
      const out = JSON.stringify({ ok: true, path: req.url }).replace(/":/g, '": ').replace(/,"/g, ', "')
      const answer = () => {
        if (res.destroyed) return
        res.writeHead(200, 'OK from sink', { 'Content-Type': 'application/json', 'X-Sink': 'oracle', 'Content-Length': String(Buffer.byteLength(out)) })
        res.end(out)
      }
      if (req.url!.startsWith('/slow')) setTimeout(answer, 1500)
      else answer()
    })
  })
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r))
  port = (sink.address() as AddressInfo).port
  const probe = createServer()
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r))
  closedPort = (probe.address() as AddressInfo).port
  await new Promise<void>((r) => probe.close(() => r()))
})
afterAll(() => {
  sink.closeAllConnections()
  return new Promise<void>((r) => sink.close(() => r()))
})

it.skipIf(!existsSync(RECORDER))('the recorder\'s HTTP probes see what Dovecot 2.3.19 gave, and the sink gets the same requests', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dovepush-http-oracle-'))
  const out = join(dir, 'recording.ndjson')
  process.env.ORACLE_RECORD = out
  try {
    // the first LMTP delivery of the recording: one begin_txn for service lmtp
    const first = readFileSync('fixtures/oracle/dovecot-2.3.19.transactions.ndjson', 'utf8').split('\n')[1]!
    await runScript({ path: RECORDER }, [parseTransaction(JSON.parse(first), { user: 'x' })], {
      settings: {
        push_lua_url: `http://127.0.0.1:${port}/hook`,
        push_lua_slow_url: `http://127.0.0.1:${port}/slow`,
        push_lua_closed_url: `http://127.0.0.1:${closedPort}/closed`,
        mail_debug: 'yes',
      },
    })
    const probe = (lines: ReturnType<typeof readRecording>) => (lines.find((l) => l.call === 'probe:http') as unknown as { result: Record<string, Record<string, unknown>> }).result
    const ours = probe(readRecording(out))
    const theirs = probe(readRecording(ORACLE))
    // objects and calls as recorded
    expect(ours.client_dump).toEqual(theirs.client_dump)
    expect(ours.client_new).toEqual(theirs.client_new)
    for (const k of ['request_new', 'request_dump', 'add_header', 'add_then_remove_header', 'add_header_ct', 'set_payload', 'submit', 'status', 'reason', 'payload', 'header_content_type', 'header_x_sink', 'header_missing']) {
      expect(ours.post![k], `post.${k}`).toEqual(theirs.post![k])
    }
    // closed port: 9003 with the same reason, the port aside
    expect(ours.closed_port!.status).toEqual(theirs.closed_port!.status)
    expect(JSON.stringify(ours.closed_port!.reason).replace(String(closedPort), 'PORT')).toBe(JSON.stringify(theirs.closed_port!.reason).replace('31099', 'PORT'))
    // timeout: 9008, "Request timed out (" + timings that differ between runs
    expect(ours.timeout!.status).toEqual(theirs.timeout!.status)
    const reason = (x: Record<string, unknown>) => ((x.reason as { ret: Array<{ v: string }> }).ret[0]!.v)
    expect(reason(ours.timeout!)).toMatch(/^Request timed out \(Request queued \d+\.\d{3} secs ago, 1 send attempts in \d+\.\d{3} secs, \d+\.\d{3} in http ioloop, 0\.000 in other ioloops, connected \d+\.\d{3} secs ago\)$/)
    expect(reason(theirs.timeout!)).toMatch(/^Request timed out \(Request queued/)

    // the wire: the oracle sink's first two requests (lmtp's POST and GET /slow)
    const wire = readFileSync(ORACLE_SINK, 'utf8').trim().split('\n').slice(0, 2).map((l) => JSON.parse(l) as { method: string; path: string; headers: Array<[string, string]>; body: string })
    expect(seen.map((s) => [s.method, s.path, s.body])).toEqual(wire.map((w) => [w.method, w.path === '/hook' ? '/hook' : '/slow', w.body]))
    for (const [i, w] of wire.entries()) {
      const mine = seen[i]!.headers
      // the recording's block, with this run's sink port and the Date value we sent
      const date = mine.find(([k]) => k === 'Date')?.[1] ?? ''
      expect(date).toMatch(/^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/)
      const expected = w.headers.map(([k, v]): [string, string] => [k, k === 'Host' ? v.replace(/:\d+$/, `:${port}`) : k === 'Date' ? date : v])
      expect(mine).toEqual(expected)
    }
  } finally {
    delete process.env.ORACLE_RECORD
    rmSync(dir, { recursive: true, force: true })
  }
})
