// The driver contract, modelled on Dovecot's push_notification_driver_vfuncs
// (src/plugins/push-notification/push-notification-drivers.h). A driver is
// what `push_notification_driver = <name>:…` names; one instance runs per
// session (Dovecot: per mail user). dovepush hands a driver a whole
// transaction at once: Dovecot's begin_txn/process_*/end_txn calls for one
// transaction always arrive together at commit (spec §1.4).

import type { Logger } from 'pino'
import type { Settings } from '../config/settings.js'
import type { Transaction } from '../events/types.js'
import type { MailUser } from '../lua/dovecot/user.js'
import type { RunStats } from './stats.js'

/** What a driver instance knows of its session when it is made. */
export interface DriverContext {
  readonly user: string
  readonly sessionId: string
  /** The session's logger (user, service, session bindings). */
  readonly log: Logger
  readonly stats: RunStats
  readonly settings: Settings
}

/**
 * Makes the drivers of a new session, in push_notification_driver,
 * push_notification_driver2, … order. The Host knows drivers only through
 * this: it never imports a driver by name.
 */
export type DriverFactory = (ctx: DriverContext) => Driver[]

export interface Driver {
  /**
   * Prepares the driver for the session's user (Dovecot: init, at mail user
   * creation). Returns false when the driver cannot run for this user; it has
   * then logged why, and gets no transactions (Dovecot's behaviour: the mail
   * operation goes on without this driver).
   */
  init(): boolean | Promise<boolean>
  /**
   * Runs the mailbox transactions of one unit: begin for each, then for each
   * in order the events (when committed) and end. A single transaction is a
   * unit of one; several overlap as in an IMAP MOVE. Script errors are logged
   * and counted here and never thrown; a thrown error is a dovepush bug.
   */
  transaction(txns: readonly Transaction[], user: MailUser): void | Promise<void>
  /** Ends the session (Dovecot: deinit at mail user deinit; the Lua driver calls script_deinit). */
  deinit(): void | Promise<void>
}
