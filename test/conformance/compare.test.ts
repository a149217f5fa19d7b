// The comparison of the conformance run (src/conformance/main.ts): what is
// left out as run-specific, and the diff it prints. The run itself needs a
// real Dovecot: `npm run conformance`.

import { describe, expect, it } from 'vitest'
import { diffLines, render, renderRequests, toLine } from '../../src/conformance/main.js'

describe('conformance comparison', () => {
  it('session ids become S1, S2… in order of appearance; uid_validity is left out; keys are sorted', () => {
    const real = [
      { user: 'a', service: 'imap', session: 'x9', committed: true, events: [{ uid: 1, name: 'MessageRead', mailbox: 'INBOX', uid_validity: 111 }] },
      { user: 'a', service: 'imap', session: 'y7', committed: false, events: [] },
      { user: 'a', service: 'imap', session: 'x9', transactions: [{ committed: true, events: [{ name: 'MailboxCreate', mailbox: 'B' }] }, { committed: true, events: [] }] },
    ]
    const sim = real.map((l) => ({ ...l, session: `other-${l.session}` }))
    expect(render(real.map(toLine))).toEqual([
      'a imap S1 {"committed":true,"events":[{"mailbox":"INBOX","name":"MessageRead","uid":1}]}',
      'a imap S2 {"committed":false,"events":[]}',
      'a imap S1 [{"committed":true,"events":[{"mailbox":"B","name":"MailboxCreate"}]},{"committed":true,"events":[]}]',
    ])
    expect(render(sim.map(toLine))).toEqual(render(real.map(toLine)))
  })

  it('a different value shows as a - (real Dovecot) and + (dovepush) pair, equal lines not at all', () => {
    expect(diffLines(['a', 'b', 'c'], ['a', 'B', 'c'])).toEqual(['+ B', '- b'])
    expect(diffLines(['a', 'b'], ['a', 'b'])).toEqual([])
    expect(diffLines(['a'], ['a', 'extra'])).toEqual(['+ extra'])
  })

  it('requests: sink address, Date, Host, User-Agent and JSON key order aside', () => {
    const at = (port: number, body: string) => ({
      method: 'POST',
      url: `http://127.0.0.1:${port}/hook?x=1`,
      headers: [['Host', `127.0.0.1:${port}`], ['Date', String(port)], ['Content-Type', 'application/json']] as [string, string][],
      body,
    })
    expect(renderRequests([at(1, '{"b":1,"a":[2,{"d":3,"c":4}]}')])).toEqual(['POST /hook?x=1 content-type: application/json {"a":[2,{"c":4,"d":3}],"b":1}'])
    expect(renderRequests([at(1, '{"b":1,"a":2}')])).toEqual(renderRequests([at(2, '{"a":2,"b":1}')]))
    expect(renderRequests([at(1, 'not json')])[0]).toMatch(/ not json$/)
  })
})
