// Acceptance (issue 4, 1): the actions of ../shared/oracle/scenario.py,
// written as a dovepush scenario (fixtures/scenarios/oracle-2.3.19.yaml, same
// messages), give a recorder script the same calls as the real Dovecot
// 2.3.19.1 did: same sessions (Lua states, including LMTP's raw mail user),
// same order, same event tables, same Lua types. Run-specific values
// (uid_validity, session ids, times, uid/gid/home) aside.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { loadScenario } from '../../src/sources/scenario.js'
import { runScenario } from '../../src/testing/run-scenario.js'
import { type Dump, readRecording, type RecordLine } from '../helpers/oracle.js'

const RECORDING = 'fixtures/oracle/dovecot-2.3.19.ndjson'
const SCENARIO = 'fixtures/scenarios/oracle-2.3.19.yaml'
const RUN_SPECIFIC_USER = new Set(['session_id', 'session_create_time', 'uid', 'gid', 'home'])

const isTxnCall = (call: string): boolean => call.startsWith('dovecot_lua_notify_')

/** Typed dumps without metatables and run-specific values; ctx compared by type only. */
function normalize(call: string, args: Dump[]): unknown[] {
  const strip = (d: Dump, drop: Set<string> = new Set()): unknown => {
    if (d.t !== 'table') return { t: d.t, ...(d.n ? { n: d.n } : {}), ...('v' in d ? { v: d.v } : {}) }
    const v = d.v as Record<string, Dump>
    return { t: 'table', v: Object.fromEntries(Object.entries(v).map(([k, x]) => [k, drop.has(k) ? { t: x.t, ...(x.n ? { n: x.n } : {}) } : strip(x)])) }
  }
  if (call === 'dovecot_lua_notify_begin_txn') return args.map((a) => strip(a, RUN_SPECIFIC_USER))
  return args.map((a, i) => (i === 0 ? { t: a.t } : strip(a, new Set(['uid_validity']))))
}

const txnCalls = (lines: RecordLine[]): unknown[] =>
  lines.filter((l) => l.call !== undefined && isTxnCall(l.call)).map((l) => ({ call: l.call, nargs: l.nargs, args: normalize(l.call, l.args ?? []) }))

/** [Lua state number in order of first appearance, call] for every lifecycle and transaction call. */
function sessionShape(pairs: [string, string][]): string[] {
  const seen = new Map<string, number>()
  return pairs.map(([instance, call]) => {
    if (!seen.has(instance)) seen.set(instance, seen.size + 1)
    return `${seen.get(instance)} ${call}`
  })
}

describe('oracle scenario vs the real Dovecot 2.3.19.1', () => {
  let dir: string | undefined
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true })
    delete process.env.DOVEPUSH_RECORD
  })

  const recording = readRecording(RECORDING)

  for (const engine of ['wasmoon', 'fengari'] as const) {
    it(`same sessions, calls and event tables (${engine})`, async () => {
      dir = mkdtempSync(join(tmpdir(), 'dovepush-oracle-scenario-'))
      const out = join(dir, 'rec.ndjson')
      process.env.DOVEPUSH_RECORD = out
      const scenario = loadScenario(SCENARIO)
      const result = await runScenario(scenario, { script: 'lua-scripts/recorder.lua', engine })
      expect(result.failures.filter((f) => !/calls|no_errors|log/.test(f.message))).toEqual([])

      // who was called, in which Lua state, in which order
      const expectedShape = sessionShape(
        recording.filter((l) => l.instance !== undefined && !l.call.startsWith('probe:')).map((l) => [l.instance!, l.call]),
      )
      const gotShape = sessionShape(result.calls.map((c) => [c.session, c.fn === '(main chunk)' ? '(chunk)' : c.fn]))
      expect(gotShape).toEqual(expectedShape)

      // what each transaction call received
      expect(txnCalls(readRecording(out))).toEqual(txnCalls(recording))
    })
  }
})
