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
  /** Per-user settings (scenario users); default: `settings` for everyone. */
  readonly settingsFor?: (user: string) => Settings
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
    const session = this.#session(unit.user, unit.session, unit.service)
    return session.run(txns, unit.service ?? this.#options.defaultService)
  }

  /**
   * Starts a session without a transaction: its drivers initialise (the Lua
   * script's main chunk and script_init), as Dovecot does for every mail user
   * it creates, e.g. LMTP's raw mail user, which never gets a transaction.
   */
  open(user: string, session: string, service?: string): void | Promise<void> {
    return this.#session(user, session, service).start()
  }

  /** Ends one session (script_deinit) after its pending transactions, as at logout; nothing when it is not live. */
  endSession(user: string, session: string): void | Promise<void> {
    const key = `${user}\u0000${session}`
    const s = this.#sessions.get(key)
    if (s === undefined) return
    this.#sessions.delete(key)
    if (this.#last?.s === s) this.#last = undefined
    return s.end()
  }

  #session(user: string, session: string | undefined, service: string | undefined): Session {
    const last = this.#last
    if (last !== undefined && last.user === user && last.session === session) return last.s
    const key = `${user}\u0000${session ?? ''}`
    let s = this.#sessions.get(key)
    if (s !== undefined) {
      // keep insertion order = recency, for eviction
      this.#sessions.delete(key)
      this.#sessions.set(key, s)
      this.#last = { user, session, s }
      return s
    }
    if (this.#sessions.size >= this.#options.maxSessions) this.#evictIdle()
    const o = this.#options
    const sessionId = session ?? newSessionId()
    const log = o.log.child({ user, service: service ?? o.defaultService, session: sessionId })
    const settings = o.settingsFor?.(user) ?? o.settings
    const drivers = o.drivers({ user, sessionId, log, stats: this.stats, settings })
    s = new Session({ username: user, sessionId, settings, mail: this.store.user(user) }, drivers, log)
    this.#sessions.set(key, s)
    this.#last = { user, session, s }
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
