// The Host's own rules, with a recording driver (the Host is driver-agnostic):
// one session per (user, session), transactions of a session strictly in
// order even when a driver waits, sessions independent of each other, idle
// sessions beyond maxSessions ended (deinit) oldest first.

import pino from 'pino'
import { describe, expect, it } from 'vitest'
import type { Transaction, TransactionUnit } from '../../src/events/types.js'
import type { Driver, DriverContext } from '../../src/host/driver.js'
import { Host } from '../../src/host/host.js'

const silent = pino({ level: 'silent' })
const txn = (user: string, tag: string, extra: object = {}): TransactionUnit =>
  ({ user, committed: true, events: [{ name: 'MailboxCreate', mailbox: tag }], ...extra }) as unknown as TransactionUnit

function recordingHost(maxSessions: number, delay: (tag: string) => number, idleSessionMs?: number) {
  const log: string[] = []
  const factory = (ctx: DriverContext): Driver[] => [{
    init: () => (log.push(`init ${ctx.user}`), true),
    transaction: (txns: readonly Transaction[]) => {
      const tag = txns[0]!.events[0]?.mailbox ?? 'none'
      const ms = delay(tag)
      log.push(`start ${ctx.user} ${tag}`)
      if (ms === 0) {
        log.push(`end ${ctx.user} ${tag}`)
        return
      }
      return new Promise<void>((resolve) => setTimeout(() => (log.push(`end ${ctx.user} ${tag}`), resolve()), ms))
    },
    deinit: () => void log.push(`deinit ${ctx.user}`),
  }]
  const host = new Host({ drivers: factory, settings: {}, log: silent, defaultService: 'imap', maxSessions, ...(idleSessionMs !== undefined ? { idleSessionMs } : {}) })
  return { host, log }
}

describe('Host', () => {
  it('keeps each session in order while another session runs ahead', async () => {
    const { host, log } = recordingHost(10, (tag) => (tag === 'a1' ? 30 : 0))
    const pending = [txn('alice', 'a1'), txn('alice', 'a2'), txn('bob', 'b1')].map((u) => host.submit(u))
    await Promise.all(pending)
    await host.close()
    // bob's transaction ran while alice's first was waiting; alice's second waited for her first
    expect(log).toEqual(['init alice', 'start alice a1', 'init bob', 'start bob b1', 'end bob b1', 'end alice a1', 'start alice a2', 'end alice a2', 'deinit alice', 'deinit bob'])
  })

  it('runs synchronously when no driver waits', () => {
    const { host, log } = recordingHost(10, () => 0)
    expect(host.submit(txn('alice', 'x'))).toBeUndefined()
    expect(log).toEqual(['init alice', 'start alice x', 'end alice x'])
  })

  it('a session field makes a separate session of the same user', async () => {
    const { host, log } = recordingHost(10, () => 0)
    host.submit(txn('alice', 'x'))
    host.submit(txn('alice', 'y', { session: 's2' }))
    host.submit(txn('alice', 'z'))
    await host.close()
    expect(log.filter((l) => l.startsWith('init') || l.startsWith('deinit'))).toEqual(['init alice', 'init alice', 'deinit alice', 'deinit alice'])
    expect(host.stats.sessions).toBe(2)
  })

  it('ends the least recently used idle session beyond maxSessions', async () => {
    const { host, log } = recordingHost(2, () => 0)
    for (const u of ['alice', 'bob', 'alice', 'carol']) host.submit(txn(u, u))
    await host.close()
    // bob was used least recently when carol came: his session ended first
    expect(log.filter((l) => !l.startsWith('start') && !l.startsWith('end'))).toEqual(['init alice', 'init bob', 'deinit bob', 'init carol', 'deinit alice', 'deinit carol'])
  })

  it('idleSessionMs: a session unused that long ends (deinit); one still running or used again lives on', async () => {
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
    const { host, log } = recordingHost(10, (tag) => (tag === 'slow' ? 600 : 0), 300)
    host.submit(txn('alice', 'a'))
    host.submit(txn('carol', 'c1'))
    const slow = host.submit(txn('bob', 'slow'))
    await sleep(250)
    host.submit(txn('carol', 'c2')) // used again: her idle time starts over
    await sleep(150)
    expect(log.filter((l) => l.startsWith('deinit'))).toEqual(['deinit alice'])
    await slow
    expect(log).not.toContain('deinit bob') // it just finished: not idle for 300 ms yet
    await sleep(600)
    expect(log.filter((l) => l.startsWith('deinit'))).toEqual(['deinit alice', 'deinit carol', 'deinit bob'])
    // a user coming back gets a new session
    host.submit(txn('alice', 'again'))
    await host.close()
    expect(log.filter((l) => l === 'init alice')).toHaveLength(2)
    expect(host.stats.sessions).toBe(4)
  })

  it('counts transactions, committed and rolled back, including groups', async () => {
    const { host } = recordingHost(10, () => 0)
    host.submit(txn('alice', 'x'))
    host.submit(txn('alice', 'y', { committed: false }))
    host.submit({ user: 'alice', transactions: [{ user: 'alice', committed: true, events: [] }, { user: 'alice', committed: true, events: [] }] } as unknown as TransactionUnit)
    await host.close()
    expect([host.stats.transactions, host.stats.committed, host.stats.rolledBack]).toEqual([4, 3, 1])
  })
})
