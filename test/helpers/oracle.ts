// Reading the oracle recording (a real Dovecot 2.3.19.1's calls into a
// recorder script, ../shared/oracle/recordings/, copied into fixtures/oracle/)
// and turning it into dovepush input.

import { readFileSync } from 'node:fs'

/** The recorder's typed dump of a Lua value. */
export interface Dump {
  t: string
  n?: 'integer' | 'float'
  v?: unknown
  mt?: unknown
}

export interface RecordLine {
  call: string
  instance?: string
  txn?: number
  nargs?: number
  args?: Dump[]
  marker?: string
  phase?: string
}

export function readRecording(path: string): RecordLine[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as RecordLine)
}

/** A typed dump back to a plain JSON value (sequences → arrays). */
export function undump(d: Dump): unknown {
  if (d.t === 'nil') return null
  if (d.t !== 'table') return d.v
  const v = d.v as Record<string, Dump>
  const keys = Object.keys(v)
  if (keys.every((k) => /^\[\d+\]$/.test(k))) {
    return keys.sort((a, b) => Number(a.slice(1, -1)) - Number(b.slice(1, -1))).map((k) => undump(v[k]!))
  }
  return Object.fromEntries(keys.map((k) => [k, undump(v[k]!)]))
}

const isTxnCall = (c: string): boolean => c.startsWith('dovecot_lua_notify_')

/**
 * Rebuilds the transactions Dovecot ran, per recorder instance (= Lua state
 * = dovepush session). Transactions whose begin_txn calls come before the
 * previous one ended (IMAP MOVE) become one overlapping group.
 */
export function recordingToNdjson(lines: RecordLine[]): string[] {
  const out: string[] = []
  interface Open { txn: number; user: string; service: string; session: string; events: unknown[]; committed?: boolean }
  const open = new Map<string, Open[]>() // instance → open transactions, in begin order
  const flush = (instance: string): void => {
    const list = open.get(instance) ?? []
    if (list.length === 0 || list.some((t) => t.committed === undefined)) return
    open.set(instance, [])
    const head = { user: list[0]!.user, service: list[0]!.service, session: list[0]!.session }
    if (list.length === 1) out.push(JSON.stringify({ ...head, committed: list[0]!.committed, events: list[0]!.events }))
    else out.push(JSON.stringify({ ...head, transactions: list.map((t) => ({ committed: t.committed, events: t.events })) }))
  }
  for (const l of lines) {
    if (l.instance === undefined || !isTxnCall(l.call)) continue
    const list = open.get(l.instance) ?? []
    open.set(l.instance, list)
    const args = l.args ?? []
    if (l.call === 'dovecot_lua_notify_begin_txn') {
      const user = undump(args[0]!) as Record<string, unknown>
      list.push({ txn: l.txn!, user: String(user.username), service: String(user.service), session: l.instance, events: [] })
    } else if (l.call === 'dovecot_lua_notify_end_txn') {
      const t = list.find((x) => x.txn === l.txn)!
      t.committed = undump(args[1]!) as boolean
      flush(l.instance)
    } else {
      list.find((x) => x.txn === l.txn)!.events.push(undump(args[1]!))
    }
  }
  return out
}
