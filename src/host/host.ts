// The Host: one session per (user, session id), like Dovecot keeps one Lua
// state per mail-user session; transactions of one session run in order,
// sessions may run concurrently. Idle sessions beyond `maxSessions` end
// (script_deinit), so memory stays bounded whatever the input.

import type { Logger } from 'pino'
import type { Settings } from '../config/settings.js'
import { type TransactionUnit, transactionsOf } from '../events/types.js'
import type { DriverFactory } from './driver.js'
import { newSessionId, Session } from './session.js'
import { RunStats } from './stats.js'
import { MailStore } from '../mailstore/store.js'

export interface HostOptions {
  /** The drivers of each new session. */
  readonly drivers: DriverFactory
  readonly settings: Settings
  readonly log: Logger
  /** `user.service` when a transaction names none. */
  readonly defaultService: string
  /** Live sessions kept before idle ones are ended. */
  readonly maxSessions: number
  /** The simulated mail behind user:mailbox and metadata; default: a new, empty store. */
  readonly store?: MailStore
}

export class Host {
  readonly stats = new RunStats()
  readonly store: MailStore
  readonly #options: HostOptions
  readonly #sessions = new Map<string, Session>()
  readonly #ending = new Set<Promise<void>>()
  /** The session of the previous unit: consecutive units of one user skip the map. */
  #last: { user: string; session: string | undefined; s: Session } | undefined

  constructor(options: HostOptions) {
    this.#options = options
    this.store = options.store ?? new MailStore()
  }

  /** Runs a transaction; synchronous unless the script waits (an HTTP request). */
  submit(unit: TransactionUnit): void | Promise<void> {
    const stats = this.stats
    const txns = transactionsOf(unit)
    for (const t of txns) {
      stats.transactions++
      if (t.committed) stats.committed++
      else stats.rolledBack++
    }
    const session = this.#session(unit)
    return session.run(txns, unit.service ?? this.#options.defaultService)
  }

  #session(txn: TransactionUnit): Session {
    const last = this.#last
    if (last !== undefined && last.user === txn.user && last.session === txn.session) return last.s
    const key = `${txn.user}\u0000${txn.session ?? ''}`
    let s = this.#sessions.get(key)
    if (s !== undefined) {
      // keep insertion order = recency, for eviction
      this.#sessions.delete(key)
      this.#sessions.set(key, s)
      this.#last = { user: txn.user, session: txn.session, s }
      return s
    }
    if (this.#sessions.size >= this.#options.maxSessions) this.#evictIdle()
    const o = this.#options
    const sessionId = txn.session ?? newSessionId()
    const log = o.log.child({ user: txn.user, service: txn.service ?? o.defaultService, session: sessionId })
    const drivers = o.drivers({ user: txn.user, sessionId, log, stats: this.stats, settings: o.settings })
    s = new Session({ username: txn.user, sessionId, settings: o.settings, mail: this.store.user(txn.user) }, drivers, log)
    this.#sessions.set(key, s)
    this.#last = { user: txn.user, session: txn.session, s }
    this.stats.sessions++
    return s
  }

  #evictIdle(): void {
    for (const [key, s] of this.#sessions) {
      if (s.busy) continue
      this.#sessions.delete(key)
      if (this.#last?.s === s) this.#last = undefined
      const r = s.end()
      if (r instanceof Promise) {
        const p = r.finally(() => this.#ending.delete(p))
        this.#ending.add(p)
      }
      return
    }
  }

  /** Ends every session (script_deinit), after their pending transactions. */
  async close(): Promise<void> {
    const sessions = [...this.#sessions.values()]
    this.#sessions.clear()
    this.#last = undefined
    for (const s of sessions) await s.end()
    await Promise.all(this.#ending)
  }
}
