// dovepush's logger: pino, JSON lines or pretty through pino-pretty in a
// transport (a worker thread, so the per-event path never formats text).
// Lines read like Dovecot's: `imap(alice@example.test)<session>: Error: lua: …`.

import pino, { type DestinationStream, type Logger } from 'pino'

export type LogFormat = 'pretty' | 'json'
export const LOG_FORMATS: readonly LogFormat[] = ['pretty', 'json']
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

export interface LoggerOptions {
  readonly format: LogFormat
  readonly level: LogLevel
  /** Where JSON lines go (tests pass a stream); default stdout. */
  readonly destination?: DestinationStream
}

export function createLogger(options: LoggerOptions): Logger {
  const base = { level: options.level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }
  if (options.format === 'json') return pino(base, options.destination ?? pino.destination({ fd: 1, sync: false }))
  const transport = pino.transport({
    target: 'pino-pretty',
    options: {
      destination: 1,
      colorize: process.stdout.isTTY === true,
      translateTime: 'HH:MM:ss.l',
      // the prefix carries user/service/session; `error` repeats the message
      ignore: 'user,service,session,error',
      messageFormat: '{if user}{service}({user})<{session}>: {end}{msg}',
      singleLine: false,
    },
  })
  return pino(base, transport)
}
