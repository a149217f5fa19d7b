// Acceptance: fed the transactions of a real Dovecot 2.3.19.1 recording, a
// recorder script receives the same begin_txn / event / end_txn calls: same
// order, same fields, same values, same Lua types (floats!), except the
// run-specific values the oracle README lists.

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { TransactionUnit } from '../../src/events/types.js'
import { parseTransaction } from '../../src/events/validate.js'
import { type Dump, readRecording, type RecordLine } from '../helpers/oracle.js'
import { runScript } from '../helpers/run-script.js'

const RECORDING = 'fixtures/oracle/dovecot-2.3.19.ndjson'
const FIXTURE = 'fixtures/oracle/dovecot-2.3.19.transactions.ndjson'
const SHARED_RECORDER = resolve('../shared/oracle/recorder.lua')
// the oracle's plugin settings (../shared/oracle/setup-dovecot.sh) and mail_debug = yes
const ORACLE_SETTINGS = {
  push_lua_url: 'http://127.0.0.1:31080/push',
  push_lua_slow_url: 'http://127.0.0.1:31080/slow',
  push_lua_closed_url: 'http://127.0.0.1:31099/closed',
  push_test_key: 'hello',
  mail_debug: 'yes',
  mail_home: '/tmp/dovecot-oracle/mail/%d/%n',
}
// values that differ between runs (oracle README)
const RUN_SPECIFIC_USER = new Set(['session_id', 'session_create_time', 'uid', 'gid', 'home'])

const units = (): TransactionUnit[] =>
  readFileSync(FIXTURE, 'utf8').split('\n').filter(Boolean).map((l) => parseTransaction(JSON.parse(l), { user: 'x' }))

const isTxnCall = (l: RecordLine): boolean => l.call?.startsWith('dovecot_lua_notify_') ?? false

/** A dump with metatables, run-specific values and the ctx table's own content left out. */
function normalize(call: string, args: Dump[]): unknown[] {
  const strip = (d: Dump, drop: Set<string> = new Set()): unknown => {
    if (d.t !== 'table') return { t: d.t, ...(d.n ? { n: d.n } : {}), ...('v' in d ? { v: d.v } : {}) }
    const v = d.v as Record<string, Dump>
    return {
      t: 'table',
      v: Object.fromEntries(Object.entries(v).map(([k, x]) => [k, drop.has(k) ? { t: x.t, ...(x.n ? { n: x.n } : {}) } : strip(x)])),
    }
  }
  if (call === 'dovecot_lua_notify_begin_txn') return args.map((a) => strip(a, RUN_SPECIFIC_USER))
  // args[0] is ctx: only its type is compared (its content is the recorder's own counter)
  return args.map((a, i) => (i === 0 ? { t: a.t } : strip(a, new Set(['uid_validity']))))
}

const calls = (lines: RecordLine[]): unknown[] =>
  lines.filter(isTxnCall).map((l) => ({ call: l.call, nargs: l.nargs, args: normalize(l.call, l.args ?? []) }))

describe('oracle: Dovecot 2.3.19.1 recording', () => {
  let dir: string | undefined
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true })
    delete process.env.ORACLE_RECORD
  })

  const expected = calls(readRecording(RECORDING))

  for (const engineName of ['wasmoon', 'fengari'] as const) {
    it(`lua-scripts/recorder.lua sees the recorded calls (${engineName})`, async () => {
      dir = mkdtempSync(join(tmpdir(), 'dovepush-oracle-'))
      const out = join(dir, 'rec.ndjson')
      const run = await runScript({ path: 'lua-scripts/recorder.lua' }, units(), {
        engine: engineName,
        settings: { ...ORACLE_SETTINGS, recorder_file: out },
      })
      expect(run.host.stats.errorCount).toBe(0)
      const got = calls(readRecording(out))
      expect(got).toHaveLength(expected.length)
      expect(got).toEqual(expected)
    })
  }

  it.skipIf(!existsSync(SHARED_RECORDER))('the oracle recorder itself runs unchanged with ORACLE_RECORD set', async () => {
    dir = mkdtempSync(join(tmpdir(), 'dovepush-oracle-'))
    const out = join(dir, 'recording.ndjson')
    process.env.ORACLE_RECORD = out
    const run = await runScript({ path: SHARED_RECORDER }, units(), { settings: ORACLE_SETTINGS })
    expect(run.host.stats.errorCount).toBe(0)
    const lines = readRecording(out)
    expect(calls(lines)).toEqual(expected)
    // ctx identity: every event and end_txn got the very table begin_txn returned
    const withCtx = lines.filter((l) => isTxnCall(l) && l.call !== 'dovecot_lua_notify_begin_txn') as Array<RecordLine & { ctx_is_begin_txn_return?: boolean }>
    expect(withCtx.every((l) => l.ctx_is_begin_txn_return === true)).toBe(true)
    // the user object's shape, metatable included, as recorded
    const ours = lines.find((l) => l.call === 'dovecot_lua_notify_begin_txn')!.args![0]!
    const theirs = readRecording(RECORDING).find((l) => l.call === 'dovecot_lua_notify_begin_txn')!.args![0]!
    expect(ours.mt).toEqual(theirs.mt)
    // script_init got no arguments and saw the same dovecot keys and globals
    const init = (ls: RecordLine[]) => ls.find((l) => l.call === 'script_init') as RecordLine & { dovecot_keys: string[]; globals: string[] }
    expect(init(lines).nargs).toBe(0)
    expect(init(lines).dovecot_keys).toEqual(['http', 'storage'])
    expect(init(lines).globals).toEqual(init(readRecording(RECORDING)).globals)
  })
})
