// `dovepush test` and `dovepush run SCRIPT --scenario FILE` (src/cli/test.ts),
// in process through the exported commands (output captured), plus the
// command table wiring through main(): file discovery, the report, JUnit
// XML, exit codes 0 / 1 / 2.

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'
import { main } from '../../src/cli/index.js'
import { runCommand } from '../../src/cli/run.js'
import {
  type CliIo,
  findScenarioFiles,
  formatReport,
  junitXml,
  scenarioRunCommand,
  type ScenarioOutcome,
  testCommand,
  xmlEscape,
} from '../../src/cli/test.js'
import { InvalidArgumentError } from '../../src/errors.js'
import type { ScenarioResult } from '../../src/testing/run-scenario.js'

const dir = mkdtempSync(join(tmpdir(), 'dovepush-cli-test-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function file(name: string, text: string): string {
  const p = join(dir, name)
  mkdirSync(join(p, '..'), { recursive: true })
  writeFileSync(p, text)
  return p
}

function io(cwd?: string): CliIo & { out: () => string; err: () => string } {
  let out = ''
  let err = ''
  return {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    ...(cwd !== undefined ? { cwd } : {}),
    out: () => out,
    err: () => err,
  }
}

const FAILING = 'fixtures/scenarios/failing/webhook-wrong-subject.yaml'
const NOOP_SCRIPT = file('noop.lua', 'function dovecot_lua_notify_begin_txn(u) return {} end\nfunction dovecot_lua_notify_event_mailbox_create(c, e) end\nfunction dovecot_lua_notify_end_txn(c, ok) end\n')
const passing = (name: string): string => `name: ${name}\nscript: ${NOOP_SCRIPT}\nsteps: [ { create: { user: a@x.test, mailbox: W } } ]\nexpect: { requests: [], no_errors: true }\n`

describe('findScenarioFiles', () => {
  const tree = join(dir, 'tree')
  file('tree/b.yaml', passing('b'))
  file('tree/a.yml', passing('a'))
  file('tree/sub/c.json', '{}')
  file('tree/sub/notes.txt', 'x')
  file('tree/sub/script.lua', 'x')
  file('tree/failing/f.yaml', passing('f'))
  file('tree/.hidden/h.yaml', passing('h'))
  mkdirSync(join(dir, 'empty'), { recursive: true })

  it('walks directories for *.yaml, *.yml, *.json, sorted, skipping failing/ and dot directories', () => {
    expect(findScenarioFiles(['tree'], dir)).toEqual(['tree/a.yml', 'tree/b.yaml', 'tree/sub/c.json'])
  })

  it('a failing/ directory or a file given explicitly is taken', () => {
    expect(findScenarioFiles(['tree/failing', 'tree/sub/notes.txt', 'tree/a.yml'], dir)).toEqual(['tree/failing/f.yaml', 'tree/sub/notes.txt', 'tree/a.yml'])
    expect(findScenarioFiles([join(tree, 'b.yaml')])).toEqual([join(tree, 'b.yaml')])
  })

  it('defaults to fixtures/scenarios', () => {
    const found = findScenarioFiles([])
    expect(found).toContain('fixtures/scenarios/webhook.yaml')
    expect(found).not.toContain(FAILING)
    expect(found.every((f) => f.startsWith('fixtures/scenarios/'))).toBe(true)
  })

  it('usage errors: a missing path, a directory without scenarios, no default directory', () => {
    expect(() => findScenarioFiles(['nope'], dir)).toThrow(new InvalidArgumentError('nope: no such file or directory'))
    expect(() => findScenarioFiles(['empty'], dir)).toThrow('empty: no scenario files (*.yaml, *.yml, *.json) in it')
    expect(() => findScenarioFiles([], dir)).toThrow(`no scenario files given, and fixtures/scenarios does not exist here (${dir})`)
  })
})

describe('dovepush test', () => {
  it('passes on the bundled scenarios: a ✓ line each and a total, exit 0', async () => {
    const t = io()
    expect(await testCommand([], {}, t)).toBe(0)
    const lines = t.out().trimEnd().split('\n')
    const found = findScenarioFiles([])
    expect(lines.filter((l) => l.startsWith('✓ '))).toHaveLength(found.length)
    expect(lines).toContainEqual(expect.stringMatching(/^✓ New mail posts a JSON webhook {2}fixtures\/scenarios\/webhook\.yaml {2}\(\d+ ms\)$/))
    expect(lines.at(-1)).toMatch(new RegExp(`^${found.length} scenarios: ${found.length} passed, 0 failed \\(\\d+(\\.\\d+)? m?s\\)$`))
    expect(t.out()).not.toContain('Failures:')
    expect(t.err()).toBe('')
  })

  it('a failing scenario: ✗, the failure with its diff, exit 1', async () => {
    const t = io()
    expect(await testCommand(['fixtures/scenarios/failing'], {}, t)).toBe(1)
    const out = t.out()
    expect(out).toMatch(/^✗ Webhook body differs \(meant to fail\) {2}fixtures\/scenarios\/failing\/webhook-wrong-subject\.yaml {2}\(\d+ ms\)\n/)
    expect(out).toContain(
      [
        '',
        'Failures:',
        '',
        `✗ Webhook body differs (meant to fail) (${FAILING})`,
        '  request 1: body json: $.subject: expected "Hi", got "Hello"',
        '    request 1 received:',
        '      POST http://127.0.0.1:',
      ].join('\n'),
    )
    // the received body, pretty-printed; webhook.lua's cjson writes keys in Lua's per-state hash order, so no trailing comma is assumed
    expect(out).toMatch(/\n {8}"subject": "Hello",?\n/)
    expect(out).toMatch(/\n1 scenario: 0 passed, 1 failed \(\d+ ms\)\n$/)
  })

  it('step failures are named by their step', async () => {
    const f = file(
      'steps/s.yaml',
      `script: ${NOOP_SCRIPT}\nsteps:\n  - name: make W\n    create: { user: a@x.test, mailbox: W }\n    expect: { requests: [ { path: /x } ] }\n`,
    )
    const t = io()
    expect(await testCommand([f], {}, t)).toBe(1)
    expect(t.out()).toContain('  steps[0] "make W": requests: expected 1 request, got 0\n    received:\n      (none)\n')
  })

  it('an invalid scenario file: reported with file and path, the others still run, exit 2', async () => {
    file('mixed/good.yaml', passing('good one'))
    file('mixed/bad.yaml', 'steps:\n  - store: { user: a, mailbox: INBOX }\n')
    const t = io(dir)
    expect(await testCommand(['mixed'], {}, t)).toBe(2)
    expect(t.out()).toContain('! mixed/bad.yaml: not run (invalid)\n✓ good one  mixed/good.yaml')
    expect(t.out()).toContain('Invalid scenario files:\n  mixed/bad.yaml: steps[0].store: must have one of add, remove, replace (line 2)\n')
    expect(t.out()).toMatch(/\n2 scenarios: 1 passed, 0 failed, 1 invalid \(\d+ ms\)\n$/)
  })

  it('a scenario without a script is invalid; --script supplies one', async () => {
    const f = file('noscript/n.yaml', 'steps: [ { create: { user: a@x.test, mailbox: W } } ]\n')
    const t = io(dir)
    expect(await testCommand(['noscript/n.yaml'], {}, t)).toBe(2)
    expect(t.out()).toContain('  noscript/n.yaml: no script: name one with "script" in the scenario, or give one on the command line')
    expect(await testCommand([f], { script: NOOP_SCRIPT }, io())).toBe(0)
  })

  it('a script that does not compile fails the scenario (exit 1)', async () => {
    const broken = file('broken.lua', 'function (')
    const t = io()
    expect(await testCommand(['fixtures/scenarios/mailboxes.yaml'], { script: broken }, t)).toBe(1)
    expect(t.out()).toMatch(/\n {2}script: .*broken\.lua/)
  })

  it('usage errors exit 2 with the reason on stderr', async () => {
    for (const [paths, flags, msg] of [
      [[], { engine: 'luajit' }, '--engine: expected one of wasmoon, fengari, got "luajit"'],
      [[], { dovecot: '2.2' }, '--dovecot: expected one of 2.3, 2.4, got "2.2"'],
      [[], { script: 'nope.lua' }, '--script nope.lua: no such file'],
      [['nope/'], {}, 'nope/: no such file or directory'],
    ] as const) {
      const t = io()
      expect(await testCommand(paths, flags, t)).toBe(2)
      expect(t.err()).toBe(`dovepush: DOVEPUSH_ERR_INVALID_ARG: ${msg}\n`)
      expect(t.out()).toBe('')
    }
  })

  it('--engine and --dovecot apply to every scenario', async () => {
    const probe = file(
      'probe.lua',
      `function dovecot_lua_notify_begin_txn(user)
  dovecot.i_info(_VERSION .. (user.plugin_getenv and " 2.3" or " 2.4"))
  return {}
end
function dovecot_lua_notify_event_mailbox_create(c, e) end
function dovecot_lua_notify_end_txn(c, ok) end
`,
    )
    const f = file('probe.yaml', `script: ${probe}\nsteps: [ { create: { user: a@x.test, mailbox: W } } ]\nexpect: { logs: [ { contains: "Lua 5.3 2.4" } ] }\n`)
    expect(await testCommand([f], {}, io())).toBe(1)
    expect(await testCommand([f], { engine: 'fengari', dovecot: '2.4' }, io())).toBe(0)
  })

  it('--verbose echoes the scripts\' log lines to stderr', async () => {
    const errs: string[] = []
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((s) => (errs.push(String(s)), true))
    try {
      const t = io()
      expect(await testCommand(['fixtures/scenarios/mailboxes.yaml'], { verbose: true }, t)).toBe(0)
      expect(t.err()).toBe('✓ fixtures/scenarios/mailboxes.yaml\n')
    } finally {
      spy.mockRestore()
    }
    expect(errs.join('')).toContain('info: imap(alice@example.test): alice@example.test: MailboxCreate mailbox=Work\n')
  })

  it('--junit writes JUnit XML', async () => {
    file('junit/good.yaml', passing('good & <fine>'))
    const out = join(dir, 'junit.xml')
    const t = io(dir)
    expect(await testCommand(['junit', join(process.cwd(), FAILING)], { junit: 'junit.xml' }, t)).toBe(1)
    const xml = readFileSync(out, 'utf8')
    expect(xml).toMatch(/^<\?xml version="1.0" encoding="UTF-8"\?>\n<testsuites name="dovepush" tests="2" failures="1" errors="0" time="\d+\.\d{3}">\n/)
    expect(xml).toMatch(/<testcase name="good &amp; &lt;fine&gt;" classname="junit\/good" file="junit\/good\.yaml" time="\d+\.\d{3}"\/>/)
    expect(xml).toContain('<failure message="request 1: body json: $.subject: expected &quot;Hi&quot;, got &quot;Hello&quot;" type="expectation">request 1: body json: $.subject: expected "Hi", got "Hello"\n')
    expect(xml).toMatch(/<\/failure>\n {4}<\/testcase>\n {2}<\/testsuite>\n<\/testsuites>\n$/)
    expect(t.out()).toContain('1 failed')
  })

  it('--junit to a place it cannot write is a usage error', async () => {
    const t = io()
    expect(await testCommand(['fixtures/scenarios/mailboxes.yaml'], { junit: join(dir, 'no/such/dir/j.xml') }, t)).toBe(2)
    expect(t.err()).toMatch(/^dovepush: DOVEPUSH_ERR_INVALID_ARG: --junit .*j\.xml: cannot write: /)
  })
})

describe('report and JUnit formatting', () => {
  const result = (o: Partial<ScenarioResult>): ScenarioResult => ({
    name: 'n',
    file: 'f.yaml',
    passed: true,
    failures: [],
    requests: [],
    calls: [],
    logs: [],
    durationMs: 12.4,
    ...o,
  })
  const outcomes: ScenarioOutcome[] = [
    { kind: 'result', file: 'a.yaml', result: result({ name: 'A "quoted" <one>', file: 'a.yaml' }) },
    {
      kind: 'result',
      file: 'dir/b.yml',
      result: result({
        name: 'B',
        passed: false,
        durationMs: 1534,
        failures: [
          { step: 'steps[1] store', message: 'request 1: method: expected "PUT", got "POST"\nrequest 1: path: expected "/a", got "/b"', diff: '  request 1 received:\n    POST /b' },
          { message: 'no_errors: 1 error line, first: x\u0001y & z' },
        ],
      }),
    },
    { kind: 'error', file: 'c.json', code: 'DOVEPUSH_ERR_INPUT', message: 'c.json: steps[0]: has no action\nc.json: expect.x: unknown key "x"' },
  ]

  it('the text report', () => {
    expect(formatReport(outcomes, 1600)).toBe(
      [
        '✓ A "quoted" <one>  a.yaml  (12 ms)',
        '✗ B  dir/b.yml  (1.53 s)',
        '! c.json: not run (invalid)',
        '',
        'Failures:',
        '',
        '✗ B (dir/b.yml)',
        '  steps[1] store: request 1: method: expected "PUT", got "POST"',
        '    request 1: path: expected "/a", got "/b"',
        '    request 1 received:',
        '      POST /b',
        '  no_errors: 1 error line, first: x\u0001y & z',
        '',
        'Invalid scenario files:',
        '  c.json: steps[0]: has no action',
        '  c.json: expect.x: unknown key "x"',
        '',
        '3 scenarios: 1 passed, 1 failed, 1 invalid (1.60 s)',
        '',
      ].join('\n'),
    )
  })

  it('JUnit XML: counts, one testcase each, failure and error elements, escaped', () => {
    expect(junitXml(outcomes, 1600)).toBe(
      [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<testsuites name="dovepush" tests="3" failures="1" errors="1" time="1.600">',
        '  <testsuite name="dovepush scenarios" tests="3" failures="1" errors="1" time="1.600" skipped="0">',
        '    <testcase name="A &quot;quoted&quot; &lt;one&gt;" classname="a" file="a.yaml" time="0.012"/>',
        '    <testcase name="B" classname="dir/b" file="dir/b.yml" time="1.534">',
        '      <failure message="steps[1] store: request 1: method: expected &quot;PUT&quot;, got &quot;POST&quot;" type="2 expectations">' +
          'steps[1] store: request 1: method: expected "PUT", got "POST"\n  request 1: path: expected "/a", got "/b"\n  request 1 received:\n    POST /b\n\n' +
          'no_errors: 1 error line, first: xy &amp; z</failure>',
        '    </testcase>',
        '    <testcase name="c.json" classname="c" file="c.json" time="0.000">',
        '      <error message="c.json: steps[0]: has no action" type="DOVEPUSH_ERR_INPUT">c.json: steps[0]: has no action\nc.json: expect.x: unknown key "x"</error>',
        '    </testcase>',
        '  </testsuite>',
        '</testsuites>',
        '',
      ].join('\n'),
    )
  })

  it('xmlEscape: markup, quotes and line breaks in attributes, characters XML cannot hold', () => {
    expect(xmlEscape(`a<b>&"c"'d'`)).toBe(`a&lt;b&gt;&amp;"c"'d'`)
    expect(xmlEscape(`a<b>&"c"'d'\n\te`, true)).toBe('a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;&#10;&#9;e')
    expect(xmlEscape('x\u0000\u0008\u000b\u001f\ufffey\r\n', false)).toBe('xy\r\n')
    expect(xmlEscape('lone \ud800 surrogate, pair \ud83d\ude00 kept')).toBe('lone  surrogate, pair \ud83d\ude00 kept')
  })
})

describe('dovepush run SCRIPT --scenario FILE', () => {
  it('runs the scenario with the script given: report and exit code', async () => {
    const ok = io()
    expect(await scenarioRunCommand('lua-scripts/webhook.lua', 'fixtures/scenarios/webhook.yaml', { verbose: false }, ok)).toBe(0)
    expect(ok.out()).toMatch(/^✓ New mail posts a JSON webhook {2}fixtures\/scenarios\/webhook\.yaml/)

    const bad = io()
    expect(await scenarioRunCommand('lua-scripts/log-events.lua', 'fixtures/scenarios/webhook.yaml', { verbose: false }, bad)).toBe(1)
    expect(bad.out()).toContain('steps[0] "Bob writes to Alice": requests: expected 1 request, got 0')
  })

  it('usage errors: with --events, a missing scenario or script; an invalid scenario', async () => {
    const cases: Array<[string, string, Record<string, unknown>, string]> = [
      ['lua-scripts/webhook.lua', 'fixtures/scenarios/webhook.yaml', { events: 'x.ndjson' }, '--scenario and --events: give one (a scenario makes its own transactions)'],
      ['lua-scripts/webhook.lua', 'nope.yaml', {}, '--scenario nope.yaml: no such file'],
      ['lua-scripts/webhook.lua', 'fixtures/scenarios', {}, '--scenario fixtures/scenarios: not a file'],
      ['nope.lua', 'fixtures/scenarios/webhook.yaml', {}, 'script nope.lua: no such file'],
    ]
    for (const [script, scenario, flags, msg] of cases) {
      const t = io()
      expect(await scenarioRunCommand(script, scenario, flags, t)).toBe(2)
      expect(t.err()).toBe(`dovepush: DOVEPUSH_ERR_INVALID_ARG: ${msg}\n`)
    }
    const invalid = file('invalid.yaml', 'steps: [ { deliver: { to: a } } ]\n')
    const t = io()
    expect(await scenarioRunCommand('lua-scripts/webhook.lua', invalid, {}, t)).toBe(2)
    expect(t.out()).toContain(`${invalid}: steps[0].deliver: missing "message" (line 1)`)
  })

  it('runCommand dispatches --scenario and refuses it with --events', async () => {
    await expect(runCommand('lua-scripts/webhook.lua', { scenario: 'fixtures/scenarios/webhook.yaml', events: 'fixtures/events/sample.ndjson' })).rejects.toThrow(
      new InvalidArgumentError('--scenario and --events: give one (a scenario makes its own transactions)'),
    )
  })
})

describe('the command table (main)', () => {
  let saved: typeof process.exitCode
  let out = ''
  let err = ''
  const capture = (): void => {
    saved = process.exitCode
    out = ''
    err = ''
    vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true))
    vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true))
  }
  afterEach(() => {
    vi.restoreAllMocks()
    process.exitCode = saved
  })

  it('dovepush test PATHS --junit FILE', async () => {
    capture()
    const junit = join(dir, 'main-junit.xml')
    await main(['node', 'dovepush', 'test', 'fixtures/scenarios/failing', '--junit', junit])
    const code = process.exitCode
    vi.restoreAllMocks()
    expect(code).toBe(1)
    expect(out).toContain('request 1: body json: $.subject: expected "Hi", got "Hello"')
    expect(readFileSync(junit, 'utf8')).toContain('<testsuites name="dovepush" tests="1" failures="1" errors="0"')
  })

  it('dovepush test with a bad flag value', async () => {
    capture()
    await main(['node', 'dovepush', 'test', '--dovecot', '3.1'])
    const code = process.exitCode
    vi.restoreAllMocks()
    expect(code).toBe(2)
    expect(err).toBe('dovepush: DOVEPUSH_ERR_INVALID_ARG: --dovecot: expected one of 2.3, 2.4, got "3.1"\n')
  })

  it('dovepush run SCRIPT --scenario FILE: the scenario\'s dovecot unless --dovecot is given', async () => {
    const probe = file(
      'main-probe.lua',
      `function dovecot_lua_notify_begin_txn(user)
  dovecot.i_info(user.plugin_getenv and "dovecot 2.3" or "dovecot 2.4")
  return {}
end
function dovecot_lua_notify_event_mailbox_create(c, e) end
function dovecot_lua_notify_end_txn(c, ok) end
`,
    )
    const f = file('main-v24.yaml', 'dovecot: "2.4"\nsteps: [ { create: { user: a@x.test, mailbox: W } } ]\nexpect: { logs: [ { contains: dovecot 2.4 } ] }\n')
    capture()
    await main(['node', 'dovepush', 'run', probe, '--scenario', f])
    const first = process.exitCode
    process.exitCode = undefined // main() is made for a fresh process: a usage error keeps an exit code already set
    await main(['node', 'dovepush', 'run', probe, '--scenario', f, '--dovecot=2.3'])
    const second = process.exitCode
    process.exitCode = undefined
    await main(['node', 'dovepush', 'run', probe, '--scenario', f, '--events', 'fixtures/events/sample.ndjson'])
    const third = process.exitCode
    vi.restoreAllMocks()
    expect([first, second, third]).toEqual([0, 1, 2])
    expect(err).toContain('info: imap(a@x.test): dovecot 2.4\n') // run echoes the script's log
    expect(err).toContain('dovepush: DOVEPUSH_ERR_INVALID_ARG: --scenario and --events: give one')
  })
})
