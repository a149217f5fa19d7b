// The end-of-run summary: transactions, calls per Lua function, errors.

import type { InputError } from '../errors.js'
import type { RunStats } from '../host/stats.js'
import type { CapturedRequest } from '../http/capture-sink.js'

export interface SummaryExtras {
  readonly seconds: number
  readonly badLines: readonly InputError[]
  readonly badLineCount: number
  readonly strictStop: InputError | undefined
  /** --http capture: the requests the sink recorded. */
  readonly captured?: readonly CapturedRequest[] | undefined
}

export function formatSummary(stats: RunStats, x: SummaryExtras): string {
  const n = (v: number): string => v.toLocaleString('en-US')
  const rate = x.seconds >= 0.5 ? ` (${n(Math.round(stats.transactions / x.seconds))}/s)` : ''
  const plural = (v: number, word: string): string => `${n(v)} ${word}${v === 1 ? '' : 's'}`
  const out = [
    '',
    `dovepush: ${plural(stats.transactions, 'transaction')} (${n(stats.committed)} committed, ${n(stats.rolledBack)} rolled back), ` +
      `${plural(stats.events, 'event')}, ${plural(stats.sessions, 'session')} in ${x.seconds.toFixed(2)} s${rate}`,
  ]
  const calls = [...stats.calls].sort(([a], [b]) => a.localeCompare(b))
  if (calls.length > 0) {
    const w = Math.max(...calls.map(([k]) => k.length))
    out.push('calls:')
    for (const [fn, c] of calls) out.push(`  ${fn.padEnd(w)}  ${n(c)}`)
  } else {
    out.push('calls: none')
  }
  const errs = Object.entries(stats.errors).filter(([, c]) => c > 0)
  out.push(errs.length === 0 ? 'script errors: none' : `script errors: ${n(stats.errorCount)} (${errs.map(([k, c]) => `${k.replace('_', ' ')} ${n(c)}`).join(', ')}); see the log`)
  if (x.badLineCount > 0) {
    out.push(`input: ${n(x.badLineCount)} bad line${x.badLineCount === 1 ? '' : 's'} ${x.strictStop ? 'stopped the run (--strict)' : 'skipped'}:`)
    for (const e of x.badLines) out.push(`  ${e.message}`)
    if (x.badLineCount > x.badLines.length) out.push(`  … and ${n(x.badLineCount - x.badLines.length)} more`)
  }
  if (x.captured !== undefined) {
    out.push(x.captured.length === 0 ? 'http (captured): no requests' : `http (captured): ${plural(x.captured.length, 'request')}:`)
    for (const r of x.captured.slice(0, 10)) out.push(`  ${r.method} ${r.url} (${plural(r.body_len, 'byte')})`)
    if (x.captured.length > 10) out.push(`  … and ${n(x.captured.length - 10)} more`)
  }
  return out.join('\n') + '\n'
}
