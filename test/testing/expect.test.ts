// The expectation matchers (src/testing/expect.ts) over plain arrays: each
// passes on a match and, on a mismatch, says what differs and shows what
// was there.

import { describe, expect, it } from 'vitest'
import {
  checkExpectations,
  formatMismatches,
  matchCalls,
  matchLogs,
  matchNoErrors,
  matchRequests,
  type RecordedCall,
  type RecordedLog,
  type RecordedRequest,
  subsetDiff,
} from '../../src/testing/expect.js'

const SINK = 'http://127.0.0.1:40000'

function req(o: Partial<RecordedRequest> & { path?: string } = {}): RecordedRequest {
  const path = o.path ?? '/hook'
  return { method: 'POST', url: `${SINK}${path}`, path, headers: [['Content-Type', 'application/json'], ['User-Agent', 'x/1']], body: '{"subject":"Hello","uid":1,"tags":["a","b"]}', ...o }
}

const call = (fn: string, o: Partial<RecordedCall> = {}): RecordedCall => ({ fn: `dovecot_lua_notify_${fn}`, user: 'alice@example.test', session: 's1', ...o })
const log = (level: number, msg: string, user = 'alice@example.test'): RecordedLog => ({ level, msg, user })

describe('subsetDiff', () => {
  it('matches objects partially, arrays exactly, scalars equal', () => {
    expect(subsetDiff({ a: 1, b: { c: 'x' } }, { a: 1, b: { c: 'x', d: 2 }, e: 3 })).toEqual([])
    expect(subsetDiff([1, { k: 2 }], [1, { k: 2, z: 0 }])).toEqual([])
    expect(subsetDiff({ a: 1 }, { a: 2 })).toEqual(['$.a: expected 1, got 2'])
    expect(subsetDiff({ a: { b: [1, 2] } }, { a: { b: [1, 3] } })).toEqual(['$.a.b[1]: expected 2, got 3'])
  })

  it('names absent keys, wrong lengths and wrong kinds', () => {
    expect(subsetDiff({ missing: 'x' }, {})).toEqual(['$.missing: expected "x", got nothing'])
    expect(subsetDiff({ t: ['a'] }, { t: ['a', 'b'] })).toEqual(['$.t: expected a list of 1, got 2: ["a","b"]'])
    expect(subsetDiff({ o: { k: 1 } }, { o: 'text' })).toEqual(['$.o: expected an object, got "text"'])
    expect(subsetDiff({ l: [1] }, { l: { 0: 1 } })).toEqual(['$.l: expected a list, got {"0":1}'])
    expect(subsetDiff({ 'odd key': 1 }, { 'odd key': 2 })).toEqual(['$["odd key"]: expected 1, got 2'])
  })

  it('null stands for nil: matches null or absent', () => {
    expect(subsetDiff({ subject: null }, {})).toEqual([])
    expect(subsetDiff({ subject: null }, { subject: null })).toEqual([])
    expect(subsetDiff({ subject: null }, { subject: 'Hi' })).toEqual(['$.subject: expected null (absent), got "Hi"'])
  })
})

describe('matchRequests', () => {
  it('passes when every expected key matches, pairwise', () => {
    const got = [req(), req({ method: 'PUT', path: '/b?x=1', body: 'plain text' })]
    expect(
      matchRequests(
        got,
        [
          { method: 'post', path: '/hook', headers: { 'content-type': 'application/json' }, json: { subject: 'Hello', tags: ['a', 'b'] } },
          { method: 'PUT', url: '{{sink}}/b?x=1', body: 'plain text', body_contains: 'ain t' },
        ],
        { sinkUrl: SINK },
      ),
    ).toEqual([])
  })

  it('reports a JSON body difference by path, with the request received', () => {
    const [m, ...rest] = matchRequests([req()], [{ json: { subject: 'Hi' } }])
    expect(rest).toEqual([])
    expect(m!.message).toBe('request 1: body json: $.subject: expected "Hi", got "Hello"')
    expect(m!.diff).toContain('request 1 received:')
    expect(m!.diff).toContain(`POST ${SINK}/hook`)
    expect(m!.diff).toContain('"subject": "Hello"')
  })

  it('reports every difference of a request on its own line', () => {
    const [m] = matchRequests(
      [req({ path: '/other' })],
      [{ method: 'GET', path: '/hook', url: '{{sink}}/hook', headers: { 'Content-Type': 'text/plain', Authorization: 'Bearer x' } }],
      { sinkUrl: SINK },
    )
    expect(m!.message.split('\n')).toEqual([
      'request 1: method: expected "GET", got "POST"',
      'request 1: path: expected "/hook", got "/other"',
      `request 1: url: expected "${SINK}/hook", got "${SINK}/other"`,
      'request 1: header Content-Type: expected "text/plain", got "application/json"',
      'request 1: header Authorization: expected "Bearer x", got none',
    ])
  })

  it('header values are exact, numbers compared as text', () => {
    const r = req({ headers: [['Priority', '4']] })
    expect(matchRequests([r], [{ headers: { priority: 4 } }])).toEqual([])
    expect(matchRequests([r], [{ headers: { Priority: '4 ' } }])[0]!.message).toBe('request 1: header Priority: expected "4 ", got "4"')
  })

  it('body: exact text, contains, not JSON', () => {
    const r = req({ body: 'hello world' })
    expect(matchRequests([r], [{ body: 'hello there' }])[0]!.message).toBe('request 1: body: expected "hello there", got "hello world"')
    expect(matchRequests([r], [{ body_contains: 'moon' }])[0]!.message).toBe('request 1: body: expected to contain "moon", got "hello world"')
    expect(matchRequests([r], [{ json: {} }])[0]!.message).toMatch(/^request 1: body json: not JSON \(.+\): "hello world"$/)
  })

  it('a long body is compared from where it first differs', () => {
    const a = 'x'.repeat(300) + 'A' + 'y'.repeat(50)
    const b = 'x'.repeat(300) + 'B' + 'y'.repeat(50)
    expect(matchRequests([req({ body: b })], [{ body: a }])[0]!.message).toMatch(/^request 1: body: differs at character 301 \(expected 351 characters, got 351\): expected …"x+Ay+", got …"x+By+"$/)
  })

  it('a different count is reported, with the requests received, and the common pairs compared', () => {
    const ms = matchRequests([req(), req({ path: '/two', body: '{}' })], [{ path: '/hook' }])
    expect(ms.map((m) => m.message)).toEqual(['requests: expected 1 request, got 2'])
    expect(ms[0]!.diff).toBe('  received:\n    1. POST /hook (44 bytes)\n    2. POST /two (2 bytes)')
    expect(matchRequests([], [])).toEqual([])
    expect(matchRequests([req()], [])[0]!.message).toBe('requests: expected 0 requests, got 1')
    expect(matchRequests([], [{}])[0]!.diff).toBe('  received:\n    (none)')
  })
})

describe('matchCalls', () => {
  const calls: RecordedCall[] = [
    { fn: '(main chunk)', user: 'alice@example.test', session: 's1' },
    call('begin_txn'),
    call('event_message_new', { event: { name: 'MessageNew', mailbox: 'INBOX', uid: 1, subject: 'Hello' } as object }),
    call('end_txn', { committed: true }),
    call('begin_txn', { user: 'bob@example.test' }),
    call('event_message_new', { user: 'bob@example.test', event: { name: 'MessageNew', mailbox: 'INBOX', uid: 1, subject: 'Hi' } as object }),
    call('end_txn', { user: 'bob@example.test', committed: false, error: 'boom' }),
  ]

  it('passes for an ordered subsequence', () => {
    expect(
      matchCalls(calls, [
        { fn: 'dovecot_lua_notify_event_message_new', user: 'alice@example.test', event: { subject: 'Hello' } },
        { fn: 'dovecot_lua_notify_end_txn', committed: true },
        { fn: 'dovecot_lua_notify_event_message_new', event: { subject: 'Hi', uid: 1 } },
        { fn: 'dovecot_lua_notify_end_txn', committed: false, error: 'boom' },
      ]),
    ).toEqual([])
    expect(matchCalls(calls, [{ fn: 'dovecot_lua_notify_end_txn', error: true }])).toEqual([])
    expect(matchCalls(calls, [{ fn: 'dovecot_lua_notify_end_txn', error: false, committed: true }])).toEqual([])
  })

  it('a missing call names the closest candidates and what differs', () => {
    const [m, ...rest] = matchCalls(calls, [{ fn: 'dovecot_lua_notify_event_message_new', user: 'alice@example.test', event: { subject: 'Hi!' } }])
    expect(rest).toEqual([])
    expect(m!.message).toBe(
      'call 1 (dovecot_lua_notify_event_message_new user=alice@example.test event {"subject":"Hi!"}): not found; closest #3 dovecot_lua_notify_event_message_new: event.subject: expected "Hi!", got "Hello"',
    )
    expect(m!.diff).toBe(
      [
        '  closest candidates (of 2 dovecot_lua_notify_event_message_new calls):',
        '    #3 dovecot_lua_notify_event_message_new (alice@example.test):',
        '      event.subject: expected "Hi!", got "Hello"',
        '    #6 dovecot_lua_notify_event_message_new (bob@example.test):',
        '      user: expected "alice@example.test", got "bob@example.test"',
        '      event.subject: expected "Hi!", got "Hi"',
      ].join('\n'),
    )
  })

  it('a function never called lists the calls made', () => {
    const [m] = matchCalls(calls, [{ fn: 'dovecot_lua_notify_event_flags_set' }])
    expect(m!.message).toBe('call 1 (dovecot_lua_notify_event_flags_set): dovecot_lua_notify_event_flags_set was never called')
    expect(m!.diff).toContain('    dovecot_lua_notify_begin_txn ×2')
    expect(m!.diff).toContain('    (main chunk) ×1')
  })

  it('a call that matches only before the previous one is out of order', () => {
    const [m] = matchCalls(calls, [
      { fn: 'dovecot_lua_notify_event_message_new', user: 'bob@example.test' },
      { fn: 'dovecot_lua_notify_end_txn', committed: true },
    ])
    expect(m!.message).toBe('call 2 (dovecot_lua_notify_end_txn committed=true): out of order: made as #4, before the call matched by the previous expectation (#6)')
  })

  it('committed and error are checked', () => {
    expect(matchCalls(calls.slice(4), [{ fn: 'dovecot_lua_notify_end_txn', user: 'bob@example.test', committed: true }])[0]!.message).toContain(
      'closest #3 dovecot_lua_notify_end_txn: committed: expected true, got false',
    )
    expect(matchCalls(calls.slice(0, 4), [{ fn: 'dovecot_lua_notify_end_txn', error: 'oops' }])[0]!.message).toContain('error: expected one containing "oops", got none')
    expect(matchCalls(calls.slice(0, 4), [{ fn: 'dovecot_lua_notify_end_txn', error: true }])[0]!.message).toContain('error: expected the call to fail, it did not')
    expect(matchCalls(calls.slice(0, 2), [{ fn: 'dovecot_lua_notify_begin_txn', event: { x: 1 } }])[0]!.message).toContain('event: expected an event table, the call has none')
  })

  it('misses do not move the cursor: later expectations still match', () => {
    const ms = matchCalls(calls, [{ fn: 'nope' }, { fn: 'dovecot_lua_notify_begin_txn' }])
    expect(ms.map((m) => m.message)).toEqual(['call 1 (nope): nope was never called'])
  })
})

describe('matchLogs', () => {
  const logs = [log(20, 'lua: Loading x.lua'), log(30, 'alice: MessageNew uid=1'), log(40, 'slow'), log(50, 'lua: lua_pcall(f, 2, 0) failed: boom', 'bob@example.test')]

  it('passes when each line appears in order (level, contains, matches, user)', () => {
    expect(
      matchLogs(logs, [
        { level: 'debug', contains: 'Loading' },
        { matches: '^alice: MessageNew uid=\\d$' },
        { level: 'warn', contains: 'slow' },
        { level: 'error', contains: 'lua_pcall', user: 'bob@example.test' },
      ]),
    ).toEqual([])
    expect(matchLogs([log(60, 'fatal thing')], [{ level: 'error', contains: 'fatal' }])).toEqual([])
  })

  it('a missing line says so and lists the lines', () => {
    const [m] = matchLogs(logs, [{ level: 'error', contains: 'timeout' }])
    expect(m!.message).toBe('log 1 (error, contains "timeout"): not found')
    expect(m!.diff).toBe(
      [
        '  log lines:',
        '    #1 debug: (alice@example.test) lua: Loading x.lua',
        '    #2 info: (alice@example.test) alice: MessageNew uid=1',
        '    #3 warn: (alice@example.test) slow',
        '    #4 error: (bob@example.test) lua: lua_pcall(f, 2, 0) failed: boom',
      ].join('\n'),
    )
  })

  it('the text at another level, or of another user, is pointed out', () => {
    expect(matchLogs(logs, [{ level: 'error', contains: 'slow' }])[0]!.message).toBe('log 1 (error, contains "slow"): not found; #3 has the text but level warn')
    expect(matchLogs(logs, [{ contains: 'boom', user: 'alice@example.test' }])[0]!.message).toBe(
      'log 1 (contains "boom", user=alice@example.test): not found; #4 has the text but user "bob@example.test"',
    )
  })

  it('order matters', () => {
    const [m] = matchLogs(logs, [{ contains: 'slow' }, { contains: 'MessageNew' }])
    expect(m!.message).toBe('log 2 (contains "MessageNew"): out of order: logged as #2, before the line matched by the previous expectation (#3)')
  })
})

describe('matchNoErrors and checkExpectations', () => {
  it('no_errors lists the error lines', () => {
    expect(matchNoErrors([log(30, 'fine'), log(40, 'warned')])).toEqual([])
    const [m] = matchNoErrors([log(30, 'fine'), log(50, 'lua: boom'), log(50, 'lua: again')])
    expect(m!.message).toBe('no_errors: 2 error lines, first: lua: boom')
    expect(m!.diff).toBe('  error lines:\n    #2 error: (alice@example.test) lua: boom\n    #3 error: (alice@example.test) lua: again')
  })

  it('checks every kind given, in order requests, calls, logs, no_errors', () => {
    const recorded = { requests: [req()], calls: [call('begin_txn')], logs: [log(50, 'bad')], sinkUrl: SINK }
    const ms = checkExpectations(recorded, { requests: [{ url: '{{sink}}/nope' }], calls: [{ fn: 'x' }], logs: [{ contains: 'good' }], no_errors: true })
    expect(ms.map((m) => m.message.split(':')[0])).toEqual(['request 1', 'call 1 (x)', 'log 1 (contains "good")', 'no_errors'])
    expect(checkExpectations(recorded, { requests: [{ url: '{{sink}}/hook' }], no_errors: false })).toEqual([])
    expect(formatMismatches([])).toBe('')
    expect(formatMismatches([{ message: 'a' }, { message: 'b', diff: '  c' }])).toBe('a\nb\n  c')
  })
})
