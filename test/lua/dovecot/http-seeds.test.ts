// The two example scripts of Dovecot's push-notification-lua documentation
// (../shared/seeds/004_…, read at test time, not copied into the project)
// behave as under the real Dovecot 2.3.19: both fail at init (their
// script_init returns nothing), and with `return 0` added they run and a
// local server receives their requests (the second reads mailbox status).

import { existsSync, readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TransactionUnit } from '../../../src/events/types.js'
import { LEVEL, runScript } from '../../helpers/run-script.js'

const SEED = resolve('../shared/seeds/004_d10487125fe7275d.txt')
const examples = existsSync(SEED) ? [...readFileSync(SEED, 'utf8').matchAll(/```lua:line-numbers\n([\s\S]*?)```/g)].map((m) => m[1]!) : []

const bodies: string[] = []
let server: Server
let url = ''
beforeAll(async () => {
  server = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', () => {
      bodies.push(`${req.method} ${req.url} ${req.headers['content-type'] ?? ''} ${body}`)
      res.end('ok')
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/handler`
})
afterAll(() => new Promise<void>((r) => server.close(() => r())))

const NEW = { user: 'alice@example.test', committed: true, events: [{ name: 'MessageNew', mailbox: 'INBOX', uid: 1, uid_validity: 1, from: 'Alice <alice@example.test>', to: 'bob@example.test', subject: 'Hi Bob', snippet: 'Lunch?' }] } as unknown as TransactionUnit
const withReturn0 = (src: string) => src.replace(/(client = dovecot\.http\.client\(\{debug=True, timeout=10000\}\))/, '$1\n  return 0')

describe.skipIf(examples.length !== 2)('documentation examples (seeds/004)', () => {
  it('both fail at init in 2.3 mode, as Dovecot 2.3.19 does', async () => {
    for (const source of examples) {
      const run = await runScript({ source }, [NEW], { settings: { push_lua_url: url } })
      expect(run.messages(LEVEL.error)).toEqual(['lua: script_init() returned non-number'])
      expect(run.host.stats.calls.get('dovecot_lua_notify_begin_txn')).toBeUndefined()
    }
  })

  it('the first example with `return 0` POSTs each new message to push_lua_url', async () => {
    bodies.length = 0
    const run = await runScript({ source: withReturn0(examples[0]!) }, [NEW], { settings: { push_lua_url: url } })
    expect(run.messages(LEVEL.warn)).toEqual([])
    // socket.url's escape: every byte but letters, digits and "_" as %xx
    expect(bodies).toEqual(['POST /handler  from=Alice%20%3calice%40example%2etest%3e&to=bob%40example%2etest&subject=Hi%20Bob&snippet=Lunch%3f&user=alice%40example%2etest'])
  })

  it('the second example with `return 0` POSTs each message and its mailbox status (an NDJSON replay: the simulated store is empty)', async () => {
    bodies.length = 0
    const run = await runScript({ source: withReturn0(examples[1]!) }, [NEW], { settings: { push_lua_url: url } })
    expect(run.messages(LEVEL.error)).toEqual([])
    expect(bodies).toEqual([
      'POST /handler application/x-www-form-url.escaped mailbox=INBOX&from=Alice%20%3calice%40example%2etest%3e&subject=Hi%20Bob',
      // status() numbers are floats, as Dovecot pushes them; INBOX was auto-created by sync(), empty
      'POST /handler application/x-www-form-url.escaped mailbox=INBOX&recent=0.0&unseen=0.0&messages=0.0',
    ])
    expect(run.host.stats.calls.get('dovecot_lua_notify_end_txn')).toBe(1)
  })
})

const WIKI = resolve('../shared/seeds/003_c265073fdcfee1ea.txt')
describe.skipIf(!existsSync(WIKI))('the old wiki example (seeds/003)', () => {
  it('does not load, as under real Lua 5.4: only a first line may start with "#"', async () => {
    const text = readFileSync(WIKI, 'utf8')
    const start = text.indexOf('## To use')
    const source = text.slice(start, text.indexOf('---%<', start))
    const run = await runScript({ source }, [NEW], { settings: { push_lua_url: url } })
    // native lua5.4's loadfile on the same text: "<file>:2: unexpected symbol near '#'"
    expect(run.messages(LEVEL.error)).toEqual([`lua: lua_load(${run.scriptPath}) failed: ${run.scriptPath}:2: unexpected symbol near '#'`])
  })

  it('with the page\'s two text artifacts undone ("##" for "--" comments, a string wrapped mid-line), it POSTs each message through socket.http', async () => {
    const text = readFileSync(WIKI, 'utf8')
    const start = text.indexOf('## To use')
    const source = text.slice(start, text.indexOf('---%<', start)).replace(/^##/gm, '--').replace('handling\npush', 'handling push')
    bodies.length = 0
    const run = await runScript({ source }, [NEW], { settings: { push_lua_url: url } })
    expect(run.messages(LEVEL.error)).toEqual([])
    expect(bodies).toEqual(['POST /handler application/x-www-form-urlencoded from=Alice%20%3calice%40example%2etest%3e&to=bob%40example%2etest&subject=Hi%20Bob&snippet=Lunch%3f&user=alice%40example%2etest'])
  })
})

