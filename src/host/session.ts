// A session: one mail user's Lua state (Dovecot: one per mail user, created at
// login, destroyed at logout; spec §1.2). It owns its drivers and runs its
// transactions strictly in order.

import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import type { Transaction } from '../events/types.js'
import type { MailUser } from '../lua/dovecot/user.js'
import { varExpand23 } from '../lua/dovecot/var-expand.js'
import { hostname } from 'node:os'
import { type Settings, settingIsTrue } from '../config/settings.js'
import type { Driver } from './driver.js'
import type { UserStore } from '../mailstore/store.js'

/** A Dovecot-style session id: 16 random bytes, base64 without padding (22 characters, as recorded). */
export function newSessionId(): string {
  return randomBytes(16).toString('base64').replace(/=+$/, '')
}

export interface SessionUserInput {
  readonly username: string
  readonly sessionId: string
  readonly settings: Settings
  /** The user's simulated mail. */
  readonly mail: UserStore
}

/** Builds the session's user facts from the settings (see config/settings.ts for the keys). */
export function makeUser(input: SessionUserInput, service: string): MailUser {
  const { username, settings, sessionId } = input
  const num = (key: string, fallback: number): number => {
    const v = settings[key]
    return v !== undefined && /^\d+$/.test(v) ? Number(v) : fallback
  }
  const base = {
    username,
    home: undefined as string | undefined,
    service,
    sessionId,
    uid: num('mail_uid', process.getuid?.() ?? 0),
    gid: num('mail_gid', process.getgid?.() ?? 0),
    pid: process.pid,
    hostname: hostname(),
    userdb: (): undefined => undefined,
    env: (n: string) => process.env[n],
  }
  const home = settings.mail_home !== undefined ? varExpand23(settings.mail_home, base) : undefined
  const expanded = new Map<string, string | undefined>()
  return {
    username,
    home,
    uid: base.uid,
    gid: base.gid,
    service,
    sessionId,
    sessionCreateTime: Math.floor(Date.now() / 1000),
    mailDebug: settingIsTrue(settings.mail_debug),
    mail: input.mail,
    attributesEnabled: (settings.mail_attribute_dict ?? '').trim() !== '',
    // plugin settings are var-expanded when the user is created (mail_user_plugin_getenv)
    setting: (key) => {
      if (!expanded.has(key)) {
        const raw = settings[key]
        expanded.set(key, raw === undefined ? undefined : varExpand23(raw, { ...base, home }))
      }
      return expanded.get(key)
    },
  }
}

export class Session {
  readonly log: Logger
  readonly #drivers: Driver[]
  readonly #user: SessionUserInput
  #tail: Promise<void> | undefined
  #initialised: Promise<boolean> | boolean | undefined
  #users = new Map<string, MailUser>()

  constructor(user: SessionUserInput, drivers: Driver[], log: Logger) {
    this.#user = user
    this.#drivers = drivers
    this.log = log
  }

  /** True while a transaction of this session is still running. */
  get busy(): boolean {
    return this.#tail !== undefined
  }

  #userFor(service: string): MailUser {
    let u = this.#users.get(service)
    if (u === undefined) {
      u = makeUser(this.#user, service)
      this.#users.set(service, u)
    }
    return u
  }

  #init(): Promise<boolean> | boolean {
    if (this.#initialised === undefined) {
      const results = this.#drivers.map((d) => d.init())
      this.#initialised = results.some((r) => r instanceof Promise)
        ? Promise.all(results).then((all) => all.some(Boolean))
        : (results as boolean[]).some(Boolean)
    }
    return this.#initialised
  }

  /** Initialises the drivers now (they otherwise start with the first transaction). */
  start(): void | Promise<void> {
    if (this.#tail !== undefined) return this.#tail
    const init = this.#init()
    return init instanceof Promise ? this.#track(init.then(() => undefined)) : undefined
  }

  /** Runs a transaction after the ones before it; synchronous when nothing waits. */
  run(txn: readonly Transaction[], service: string): void | Promise<void> {
    if (this.#tail !== undefined) {
      const next = this.#tail.then(() => this.#run(txn, service))
      return this.#track(next)
    }
    const r = this.#run(txn, service)
    return r instanceof Promise ? this.#track(r) : undefined
  }

  #track(p: Promise<void>): Promise<void> {
    const tail: Promise<void> = p.finally(() => {
      if (this.#tail === tail) this.#tail = undefined
    })
    this.#tail = tail
    return tail
  }

  #run(txn: readonly Transaction[], service: string): void | Promise<void> {
    const init = this.#init()
    if (init instanceof Promise) return init.then(() => this.#drive(txn, service, 0))
    return this.#drive(txn, service, 0)
  }

  #drive(txn: readonly Transaction[], service: string, from: number): void | Promise<void> {
    const user = this.#userFor(service)
    for (let i = from; i < this.#drivers.length; i++) {
      const r = this.#drivers[i]!.transaction(txn, user)
      if (r instanceof Promise) return r.then(() => this.#drive(txn, service, i + 1))
    }
  }

  /**
   * Ends every driver (script_deinit) after the pending transactions;
   * synchronous when nothing is pending, so an evicted session is gone
   * before the next one starts.
   */
  end(): void | Promise<void> {
    if (this.#tail !== undefined) return this.#tail.then(() => this.end())
    const init = this.#initialised
    if (init === undefined) return
    if (init instanceof Promise) return init.then(() => this.#deinit(0))
    return this.#deinit(0)
  }

  #deinit(from: number): void | Promise<void> {
    for (let i = from; i < this.#drivers.length; i++) {
      const r = this.#drivers[i]!.deinit()
      if (r instanceof Promise) return r.then(() => this.#deinit(i + 1))
    }
  }
}
