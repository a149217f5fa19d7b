// The Host: one session per (user, session id), like Dovecot keeps one Lua
// state per mail-user session; transactions of one session run in order,
// sessions may run concurrently. Idle sessions beyond `maxSessions` end
// (script_deinit), so memory stays bounded whatever the input; with
// `idleSessionMs`, so does a session nothing used for that long (a long-running
// `serve` sees no logouts: Dovecot would have ended it when the user left).

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
  /** End a session (script_deinit) once nothing has used it for this long; 0 or unset: never. */
  readonly idleSessionMs?: number
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
  /** With idleSessionMs: when each live session was last seen in use. */
  readonly #usedAt = new Map<Session, number>()
  readonly #idleMs: number
  #sweeper: NodeJS.Timeout | undefined

  constructor(options: HostOptions) {
    this.#options = options
    this.store = options.store ?? new MailStore()
    this.#idleMs = options.idleSessionMs ?? 0
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
    this.#usedAt.delete(s)
    if (this.#last?.s === s) this.#last = undefined
    return s.end()
  }

  #session(user: string, session: string | undefined, service: string | undefined): Session {
    const last = this.#last
    if (last !== undefined && last.user === user && last.session === session) {
      if (this.#idleMs > 0) this.#usedAt.set(last.s, performance.now())
      return last.s
    }
    const key = `${user}\u0000${session ?? ''}`
    let s = this.#sessions.get(key)
    if (s !== undefined) {
      // keep insertion order = recency, for eviction
      this.#sessions.delete(key)
      this.#sessions.set(key, s)
      this.#last = { user, session, s }
      if (this.#idleMs > 0) this.#usedAt.set(s, performance.now())
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
    if (this.#idleMs > 0) {
      this.#usedAt.set(s, performance.now())
      this.#sweeper ??= setInterval(() => this.#endIdle(), Math.max(10, Math.min(this.#idleMs / 4, 10_000))).unref()
    }
    return s
  }

  #evictIdle(): void {
    for (const [key, s] of this.#sessions) {
      if (s.busy) continue
      this.#end(key, s)
      return
    }
  }

  /**
   * The idleSessionMs sweep: a busy session counts as used now (its idle
   * time starts when its last transaction is over, give or take a sweep).
   */
  #endIdle(): void {
    const now = performance.now()
    for (const [key, s] of this.#sessions) {
      if (s.busy) {
        this.#usedAt.set(s, now)
        continue
      }
      const idle = now - (this.#usedAt.get(s) ?? now)
      if (idle >= this.#idleMs) {
        s.log.debug(`session ended after ${Math.round(idle / 1000)} s without a transaction (idle session limit)`)
        this.#end(key, s)
      }
    }
  }

  /** Ends a live session that is not running (script_deinit), in the background. */
  #end(key: string, s: Session): void {
    this.#sessions.delete(key)
    this.#usedAt.delete(s)
    if (this.#last?.s === s) this.#last = undefined
    const r = s.end()
    if (r instanceof Promise) {
      const p = r.finally(() => this.#ending.delete(p))
      this.#ending.add(p)
    }
  }

  /** Ends every session (script_deinit), after their pending transactions. */
  async close(): Promise<void> {
    clearInterval(this.#sweeper)
    this.#sweeper = undefined
    const sessions = [...this.#sessions.values()]
    this.#sessions.clear()
    this.#usedAt.clear()
    this.#last = undefined
    for (const s of sessions) await s.end()
    await Promise.all(this.#ending)
  }
}
