// Runs a Lua body inside dovecot_lua_notify_begin_txn through the real Host,
// for tests of what a script sees there (user, dovecot, events).

import type { Settings } from '../../src/config/settings.js'
import type { TransactionUnit } from '../../src/events/types.js'
import type { DovecotVersion } from '../../src/lua/env.js'
import { runScript, type ScriptRun, txn } from './run-script.js'
import { lineOf, type Traced } from './trace.js'

export interface BeginTxnOptions {
  dovecot?: DovecotVersion
  settings?: Settings
  /** The transactions to run (default: one with a single MessageNew). */
  units?: TransactionUnit[]
}

export interface BeginTxnRun {
  /** What the script traced. */
  lines: string[]
  run: ScriptRun
  /** The script line containing `marker`. */
  line: (marker: string) => number
  /** `<script path>:<line containing marker>`, as Dovecot prints positions. */
  at: (marker: string) => string
}

/** A script whose begin_txn handler is `body`, with empty message_new/end_txn handlers. */
export function beginTxnScript(body: string): string {
  return `
function dovecot_lua_notify_begin_txn(user)
${body}
end
function dovecot_lua_notify_event_message_new() end
function dovecot_lua_notify_end_txn() end`
}

/** Runs `body` as the begin_txn handler (with empty message_new/end_txn handlers) in a script made by `withTrace`. */
export async function inBeginTxn(withTrace: (body: string) => Traced, body: string, engine: 'wasmoon' | 'fengari', o: BeginTxnOptions = {}): Promise<BeginTxnRun> {
  const t = withTrace(beginTxnScript(body))
  const units = o.units ?? [txn([{ name: 'MessageNew', mailbox: 'INBOX', uid: 1 }])]
  const run = await runScript({ source: t.source }, units, { engine, dovecot: o.dovecot, settings: o.settings })
  const line = (marker: string): number => lineOf(t.source, marker)
  return { lines: t.read(), run, line, at: (marker) => `${run.scriptPath}:${line(marker)}` }
}
