// Scenario files (src/sources/scenario.ts): loading (schema errors name the
// file, the path and the line; paths resolved; messages read), and running
// (steps, `fails`, step and scenario expectations, the script override).

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { findScenarioFiles } from '../../src/cli/test.js'
import { InputError, InvalidArgumentError } from '../../src/errors.js'
import { formatPath, loadScenario, type Scenario, ScenarioError, SCENARIO_SCHEMA_URL } from '../../src/sources/scenario.js'
import { runScenario } from '../../src/testing/run-scenario.js'

const dir = mkdtempSync(join(tmpdir(), 'dovepush-scenario-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let n = 0

function file(name: string, text: string): string {
  const p = join(dir, name.includes('/') ? name : `${++n}-${name}`)
  mkdirSync(join(p, '..'), { recursive: true })
  writeFileSync(p, text)
  return p
}

/** The problems of an invalid scenario text, as "path: message" (file and line checked separately). */
function problems(yaml: string, name = 'bad.yaml'): string[] {
  const p = file(name, yaml)
  try {
    loadScenario(p)
  } catch (err) {
    expect(err).toBeInstanceOf(ScenarioError)
    return (err as ScenarioError).problems.map((x) => (x.path !== '' ? `${x.path}: ${x.message}` : x.message))
  }
  throw new Error('loaded')
}

// mailbox events → HTTP, so the tests need no message parsing
const SCRIPT = file(
  'mailbox-hook.lua',
  `local json = require "cjson"
function dovecot_lua_notify_begin_txn(user)
  return { user = user.username, url = user:plugin_getenv("push_lua_url") }
end
function dovecot_lua_notify_event_mailbox_create(ctx, ev)
  local rq = dovecot.http.client({ timeout = 2000 }):request({ url = ctx.url, method = "POST" })
  rq:add_header("Content-Type", "application/json")
  rq:set_payload(json.encode({ user = ctx.user, mailbox = ev.mailbox }))
  rq:submit()
  dovecot.i_info("created " .. ev.mailbox)
end
function dovecot_lua_notify_event_mailbox_delete(ctx, ev) error("cannot handle delete of " .. ev.mailbox) end
function dovecot_lua_notify_end_txn(ctx, success) end
function script_deinit() dovecot.i_info("bye") end
`,
)

describe('loadScenario', () => {
  it('reads a YAML scenario: defaults, script and settings resolved', () => {
    const p = file(
      'sub/full.yaml',
      `script: ../mailbox-hook.lua
dovecot: 2.4
settings: { push_lua_url: "{{sink}}/hook", push_prio: 4, mail_debug: true, off: false }
users:
  bob@example.test: { settings: { push_lua_url: "{{sink}}/bob" } }
steps:
  - login: { user: alice@example.test, session: s2, service: pop3 }
  - name: Alice flags
    store: { user: alice@example.test, mailbox: INBOX, uids: "1:3,5", replace: ['\\Seen', '$Label'] }
  - store: { user: a, mailbox: INBOX, add: ['\\Flagged'] }
  - store: { user: a, mailbox: INBOX, uids: [1, 2], remove: ['\\Flagged'] }
  - copy: { user: a, mailbox: INBOX, uids: 2, to: Archive }
  - rename: { user: a, mailbox: Work, to: Projects }
  - expunge: { user: a, mailbox: INBOX }
  - logout: { user: a }
    fails: true
`,
    )
    const s = loadScenario(p)
    expect(s.name).toBe('full')
    expect(s.file).toBe(p)
    expect(s.script).toBe(resolve(dir, 'mailbox-hook.lua'))
    expect(s.dovecot).toBe('2.4')
    expect(s.settings).toEqual({ push_lua_url: '{{sink}}/hook', push_prio: '4', mail_debug: 'yes', off: 'no' })
    expect(s.users).toEqual({ 'bob@example.test': { push_lua_url: '{{sink}}/bob' } })
    expect(s.steps.map((x) => x.label)).toEqual([
      'steps[0] login',
      'steps[1] "Alice flags"',
      'steps[2] store',
      'steps[3] store',
      'steps[4] copy',
      'steps[5] rename',
      'steps[6] expunge',
      'steps[7] logout',
    ])
    expect(s.steps.map((x) => x.action)).toEqual([
      { kind: 'login', args: { user: 'alice@example.test', session: 's2', service: 'pop3' } },
      { kind: 'store', args: { user: 'alice@example.test', mailbox: 'INBOX', uids: '1:3,5', op: '=', flags: ['\\Seen', '$Label'] } },
      { kind: 'store', args: { user: 'a', mailbox: 'INBOX', op: '+', flags: ['\\Flagged'] } },
      { kind: 'store', args: { user: 'a', mailbox: 'INBOX', uids: [1, 2], op: '-', flags: ['\\Flagged'] } },
      { kind: 'copy', args: { user: 'a', mailbox: 'INBOX', uids: 2, to: 'Archive' } },
      { kind: 'rename', args: { user: 'a', mailbox: 'Work', to: 'Projects' } },
      { kind: 'expunge', args: { user: 'a', mailbox: 'INBOX' } },
      { kind: 'logout', args: { user: 'a' } },
    ])
    expect(s.steps.map((x) => x.fails)).toEqual([false, false, false, false, false, false, false, true])
  })

  it('resolves messages: .eml files as bytes (relative to the scenario), text as is, mappings as SimpleMessage', () => {
    const eml = 'From: a@example.test\r\nSubject: from a file\r\n\r\nbody\r\n'
    file('msgs/hello.eml', eml)
    const p = file(
      'msgs.yaml',
      `steps:
  - deliver: { to: alice@example.test, message: msgs/hello.eml }
  - deliver:
      to: [alice@example.test, bob@example.test]
      service: lda
      mailbox: Lists
      flags: ['$Seen']
      message: { from: "Bob <bob@example.test>", to: [a@x.test, b@x.test], subject: Hi, date: "Tue, 14 Mar 2023 15:30:00 +0200", message_id: "<1@x>", body: Hello, html: "<p>Hello</p>", headers: { X-Test: "1" } }
  - append:
      user: alice@example.test
      mailbox: INBOX
      items:
        - { message: "Subject: inline\\r\\n\\r\\ntext", flags: ['\\Seen'] }
        - { message: msgs/hello.eml }
  - append: { user: alice@example.test, mailbox: INBOX, message: just text, flags: ['\\Draft'] }
`,
    )
    const s = loadScenario(p)
    const [d1, d2, a1, a2] = s.steps.map((x) => x.action)
    expect(d1).toMatchObject({ kind: 'deliver', args: { to: 'alice@example.test' } })
    const bytes = (d1!.args as { message: Uint8Array }).message
    expect(bytes).toBeInstanceOf(Uint8Array)
    expect(Buffer.from(bytes).toString('utf8')).toBe(eml)
    expect(d2).toEqual({
      kind: 'deliver',
      args: {
        to: ['alice@example.test', 'bob@example.test'],
        service: 'lda',
        mailbox: 'Lists',
        flags: ['$Seen'],
        message: {
          from: 'Bob <bob@example.test>',
          to: ['a@x.test', 'b@x.test'],
          subject: 'Hi',
          date: 'Tue, 14 Mar 2023 15:30:00 +0200',
          messageId: '<1@x>',
          body: 'Hello',
          html: '<p>Hello</p>',
          headers: { 'X-Test': '1' },
        },
      },
    })
    expect(a1!.kind).toBe('append')
    const items = (a1!.args as { items: Array<{ message: unknown; flags?: string[] }> }).items
    expect(items[0]).toEqual({ message: 'Subject: inline\r\n\r\ntext', flags: ['\\Seen'] })
    expect(Buffer.from(items[1]!.message as Uint8Array).toString('utf8')).toBe(eml)
    expect(a2).toEqual({ kind: 'append', args: { user: 'alice@example.test', mailbox: 'INBOX', items: [{ message: 'just text', flags: ['\\Draft'] }] } })
  })

  it('reads JSON with the same structure', () => {
    const p = file('s.json', JSON.stringify({ name: 'J', steps: [{ create: { user: 'a@x.test', mailbox: 'Work' } }], expect: { no_errors: true } }))
    const s = loadScenario(p)
    expect(s).toMatchObject({ name: 'J', steps: [{ label: 'steps[0] create', action: { kind: 'create', args: { user: 'a@x.test', mailbox: 'Work' } } }], expect: { no_errors: true } })
    expect(s.script).toBeUndefined()
  })

  it('schema errors name the file, the path and the line', () => {
    const p = file(
      'x.yaml',
      `steps:
  - login: { user: a }
  - create: { user: a, mailbox: X }
  - logout: { user: a }
  - store: { user: a, mailbox: INBOX, uids: "1:3" }
`,
    )
    let err: unknown
    try {
      loadScenario(p)
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(ScenarioError)
    expect(err).toBeInstanceOf(InputError)
    const e = err as ScenarioError
    expect(e.code).toBe('DOVEPUSH_ERR_INPUT')
    expect(e.file).toBe(p)
    expect(e.problems).toEqual([{ path: 'steps[3].store', message: 'must have one of add, remove, replace', line: 5 }])
    expect(e.message).toBe(`${p}: steps[3].store: must have one of add, remove, replace (line 5)`)
  })

  it('a wrong action key: a suggestion, or the list of actions', () => {
    expect(problems('steps:\n  - deliverr: { to: a, message: x }\n')).toEqual(['steps[0].deliverr: unknown key "deliverr" (did you mean "deliver"?)'])
    expect(problems('steps:\n  - frobnicate: {}\n')).toEqual([
      'steps[0].frobnicate: unknown key "frobnicate": a step has one action (deliver, login, logout, select, append, store, expunge, copy, move, create, rename, delete, subscribe, unsubscribe) and optionally name, fails, expect',
    ])
    expect(problems('steps:\n  - name: nothing\n')).toEqual([
      'steps[0]: has no action: give one of deliver, login, logout, select, append, store, expunge, copy, move, create, rename, delete, subscribe, unsubscribe',
    ])
    expect(problems('steps:\n  - login: { user: a }\n    create: { user: a, mailbox: X }\n')).toEqual(['steps[0]: has 2 actions (login, create): a step has exactly one'])
  })

  it('names wrong types, values and shapes in words', () => {
    expect(
      problems(`dovecot: "2.5"
settings: { a: null }
users: { "bob@example.test": { settings: { x: [1] } } }
steps:
  - deliver: { to: 42, message: { subject: 1, bogus: x } }
  - store: { user: a, mailbox: INBOX, uids: "1-3", add: ['\\Seen'], remove: [] }
  - append: { user: a, mailbox: "" }
  - copy: { user: a, mailbox: INBOX, uids: 0, to: X }
expect:
  requests: [ { bodyy: x } ]
  logs: [ { level: fatal } ]
  nope: 1
`),
    ).toEqual([
      'dovecot: must be one of "2.3", "2.4", got "2.5"',
      'settings.a: must be a string, a number or true/false, got null',
      'users["bob@example.test"].settings.x: must be a string, a number or true/false, got [1]',
      'steps[0].deliver.to: must be a string or a list, got 42',
      'steps[0].deliver.message.bogus: unknown key "bogus" (expected "from", "to", "subject", "date", "message_id", "body", "html" or "headers")',
      'steps[0].deliver.message.subject: must be a string, got 1',
      'steps[1].store: must have only one of add, remove, replace, got add and remove',
      'steps[1].store.uids: must be UIDs such as "1", "1:3,5", "2:*" or "*", got "1-3"',
      'steps[2].append: must have one of message, items',
      'steps[2].append.mailbox: must not be empty',
      'steps[3].copy.uids: must be at least 1, got 0',
      'expect.requests[0].bodyy: unknown key "bodyy" (did you mean "body"?)',
      'expect.logs[0]: must have one of contains, matches',
      'expect.logs[0].level: must be one of "debug", "info", "warn", "error", got "fatal"',
      'expect.nope: unknown key "nope" (expected "requests", "calls", "logs" or "no_errors")',
    ])
    expect(problems('name: x\n')).toEqual(['missing "steps"'])
    expect(problems('steps: {}\n')).toEqual(['steps: must be a list, got {}'])
  })

  it('a missing .eml file, a bad regular expression', () => {
    expect(problems('steps:\n  - deliver: { to: a, message: nope/missing.eml }\nexpect:\n  logs: [ { matches: "a(" } ]\n')).toEqual([
      `steps[0].deliver.message: cannot read nope/missing.eml (${join(dir, 'nope/missing.eml')}): no such file`,
      expect.stringMatching(/^expect\.logs\[0\]\.matches: not a valid regular expression: .+/),
    ])
  })

  it('unreadable, empty and unparsable files', () => {
    const missing = join(dir, 'none.yaml')
    expect(() => loadScenario(missing)).toThrow(`${missing}: cannot read: no such file`)
    expect(() => loadScenario(dir)).toThrow(`${dir}: cannot read: is a directory`)
    const empty = file('empty.yaml', '# nothing\n')
    expect(() => loadScenario(empty)).toThrow(`${empty}: empty: a scenario needs at least "steps"`)
    const yaml = file('broken.yaml', 'steps:\n  - login: { user: a\n')
    expect(() => loadScenario(yaml)).toThrow(new RegExp(`^${yaml.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: not valid YAML: .+\\(line \\d\\)`))
    const json = file('broken.json', '{"steps": [}')
    expect(() => loadScenario(json)).toThrow(new RegExp(`: not valid JSON: `))
  })

  it('formats paths like property accesses', () => {
    expect(formatPath([])).toBe('')
    expect(formatPath(['steps', 3, 'store'])).toBe('steps[3].store')
    expect(formatPath(['users', 'bob@example.test', 'settings'])).toBe('users["bob@example.test"].settings')
  })

  it('the schema is draft 2020-12 and describes every property', () => {
    const schema = JSON.parse(readFileSync(SCENARIO_SCHEMA_URL, 'utf8')) as Record<string, unknown>
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema')
    const undocumented: string[] = []
    const walk = (node: unknown, path: string): void => {
      if (typeof node !== 'object' || node === null) return
      if (Array.isArray(node)) return node.forEach((x, i) => walk(x, `${path}/${i}`))
      const o = node as Record<string, unknown>
      if (typeof o.properties === 'object' && o.properties !== null) {
        for (const [k, v] of Object.entries(o.properties)) {
          if (typeof (v as { description?: unknown }).description !== 'string') undocumented.push(`${path}/properties/${k}`)
        }
      }
      for (const [k, v] of Object.entries(o)) walk(v, `${path}/${k}`)
    }
    walk(schema, '#')
    expect(undocumented).toEqual([])
  })
})

describe('runScenario', () => {
  const scenario = (yaml: string): Scenario => loadScenario(file('run.yaml', `script: ${SCRIPT}\nsettings: { push_lua_url: "{{sink}}/hook" }\n${yaml}`))

  it('runs the steps and checks step and scenario expectations; the sessions end', async () => {
    const s = scenario(`users:
  bob@example.test: { settings: { push_lua_url: "{{sink}}/bob" } }
steps:
  - create: { user: alice@example.test, mailbox: Work }
    expect:
      requests: [ { method: POST, path: /hook, headers: { content-type: application/json }, json: { user: alice@example.test, mailbox: Work } } ]
      calls: [ { fn: dovecot_lua_notify_event_mailbox_create, event: { mailbox: Work } } ]
      logs: [ { level: info, contains: created Work } ]
  - create: { user: bob@example.test, session: other, mailbox: Stuff }
    expect:
      requests: [ { url: "{{sink}}/bob", json: { user: bob@example.test } } ]
  - name: no such mailbox
    rename: { user: alice@example.test, mailbox: Nope, to: X }
    fails: true
    expect: { requests: [], calls: [] }
expect:
  no_errors: true
  calls:
    - { fn: dovecot_lua_notify_event_mailbox_create, user: alice@example.test }
    - { fn: dovecot_lua_notify_event_mailbox_create, user: bob@example.test }
    - { fn: script_deinit, user: alice@example.test }
  logs: [ { contains: bye } ]
`)
    const r = await runScenario(s)
    expect(r.failures).toEqual([])
    expect(r.passed).toBe(true)
    expect(r.name).toMatch(/^\d+-run$/) // the file name
    expect(r.file).toBe(s.file)
    expect(r.requests.map((q) => q.path)).toEqual(['/hook', '/bob'])
    expect(r.calls.filter((c) => c.fn === 'script_deinit').map((c) => c.user).sort()).toEqual(['alice@example.test', 'bob@example.test'])
    expect(r.durationMs).toBeGreaterThan(0)
  })

  it('reports failed expectations with the step that made them', async () => {
    const r = await runScenario(
      scenario(`steps:
  - name: make Work
    create: { user: alice@example.test, mailbox: Work }
    expect:
      requests: [ { json: { mailbox: Play } } ]
  - create: { user: alice@example.test, mailbox: Other }
    fails: true
  - delete: { user: alice@example.test, mailbox: Other }
expect:
  no_errors: true
  requests: [ { path: /hook }, { path: /hook }, { path: /hook } ]
`),
    )
    expect(r.passed).toBe(false)
    expect(r.failures.map((f) => [f.step, f.message])).toEqual([
      ['steps[0] "make Work"', 'request 1: body json: $.mailbox: expected "Play", got "Work"'],
      ['steps[1] create', 'expected the create to be refused (fails: true), but it succeeded'],
      [undefined, 'requests: expected 3 requests, got 2'],
      [undefined, expect.stringMatching(/^no_errors: 1 error line, first: lua: lua_pcall\(dovecot_lua_notify_event_mailbox_delete, 2, 0\) failed: .*cannot handle delete of Other/)],
    ])
    expect(r.failures[0]!.diff).toContain('"mailbox": "Work"')
  })

  it('a refused action stops the run (later steps and the expect not run)', async () => {
    const r = await runScenario(
      scenario(`steps:
  - move: { user: alice@example.test, mailbox: INBOX, to: Nowhere }
  - create: { user: alice@example.test, mailbox: Work }
expect:
  requests: [ { path: /never } ]
`),
    )
    expect(r.failures.map((f) => [f.step, f.message])).toEqual([
      ['steps[0] move', "move refused: NO Mailbox doesn't exist: Nowhere"],
      ['steps[0] move', "stopped here: 1 later step and the scenario's expect not run"],
    ])
    // what happened before the refusal is kept: opening INBOX created it (MailboxCreate)
    expect(r.requests.map((q) => q.json())).toEqual([{ user: 'alice@example.test', mailbox: 'INBOX' }])
  })

  it('the script given wins; a script that does not compile is a failure; no script at all is a usage error', async () => {
    const other = file('other.lua', 'function dovecot_lua_notify_begin_txn(u) return {} end\nfunction dovecot_lua_notify_end_txn(c, ok) end\n')
    const s = scenario('steps:\n  - create: { user: a@x.test, mailbox: W }\nexpect:\n  requests: []\n')
    expect((await runScenario(s)).passed).toBe(false)
    expect((await runScenario(s, { script: other })).passed).toBe(true)

    const broken = file('broken.lua', 'function (')
    const r = await runScenario(s, { script: broken })
    expect(r.passed).toBe(false)
    expect(r.failures).toHaveLength(1)
    expect(r.failures[0]!.message).toMatch(/^script: .*broken\.lua/)

    const none = loadScenario(file('noscript.yaml', 'steps: [ { login: { user: a } } ]\n'))
    await expect(runScenario(none)).rejects.toThrow(InvalidArgumentError)
    await expect(runScenario(none)).rejects.toThrow(/noscript\.yaml: no script/)
  })

  it('dovecot: the scenario chooses, the option wins', async () => {
    const probe = file(
      'version.lua',
      `function dovecot_lua_notify_begin_txn(user)
  dovecot.i_info(user.plugin_getenv and "dovecot 2.3" or "dovecot 2.4")
  return {}
end
function dovecot_lua_notify_event_mailbox_create(ctx, ev) end
function dovecot_lua_notify_end_txn(ctx, ok) end
`,
    )
    const s = loadScenario(file('v.yaml', `script: ${probe}\ndovecot: "2.4"\nsteps: [ { create: { user: a@x.test, mailbox: W } } ]\nexpect: { logs: [ { contains: dovecot 2.4 } ] }\n`))
    expect((await runScenario(s)).failures).toEqual([])
    const r = await runScenario(s, { dovecot: '2.3' })
    expect(r.failures.map((f) => f.message)).toEqual(['log 1 (contains "dovecot 2.4"): not found'])
  })
})

describe('fixtures/scenarios', () => {
  for (const f of findScenarioFiles(['fixtures/scenarios'])) {
    it(`${f} passes`, async () => {
      const r = await runScenario(loadScenario(f))
      expect(r.failures).toEqual([])
    })
  }

  it('the deliberately failing one fails on the request body', async () => {
    const r = await runScenario(loadScenario('fixtures/scenarios/failing/webhook-wrong-subject.yaml'))
    expect(r.passed).toBe(false)
    expect(r.failures.map((f) => f.message)).toEqual(['request 1: body json: $.subject: expected "Hi", got "Hello"'])
  })
})
