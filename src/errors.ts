// Errors a JS caller of dovepush sees (the CLI, the testing kit). Errors a
// Lua script sees use Dovecot's own wording instead (src/lua/dovecot/args.ts).
// Codes are public API: document them, never rename one.

const BRAND = Symbol.for('dovepush.error')

export class DovepushError extends Error {
  readonly code: string
  readonly [BRAND] = true

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'DovepushError'
    this.code = code
  }
}

/** A bad option or argument given to dovepush (CLI exit code 2). */
export class InvalidArgumentError extends DovepushError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('DOVEPUSH_ERR_INVALID_ARG', message, options)
    this.name = 'InvalidArgumentError'
  }
}

/** A bad line of input: `line` (1-based) and the offending `field` path, when known. */
export class InputError extends DovepushError {
  readonly line: number | undefined
  readonly field: string | undefined
  /** The message without the line and field. */
  readonly detail: string
  constructor(detail: string, where: { line?: number; field?: string } = {}, options?: { cause?: unknown }) {
    const at = [where.line !== undefined ? `line ${where.line}` : '', where.field ?? ''].filter(Boolean).join(': ')
    super('DOVEPUSH_ERR_INPUT', at ? `${at}: ${detail}` : detail, options)
    this.name = 'InputError'
    this.line = where.line
    this.field = where.field
    this.detail = detail
  }
}

/** The script could not be loaded or initialised (CLI exit code 1). */
export class ScriptLoadError extends DovepushError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('DOVEPUSH_ERR_SCRIPT_LOAD', message, options)
    this.name = 'ScriptLoadError'
  }
}

/** A mail action Dovecot would refuse (IMAP NO/BAD, e.g. a missing mailbox); the store is unchanged. */
export class MailActionError extends DovepushError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('DOVEPUSH_ERR_MAIL_ACTION', message, options)
    this.name = 'MailActionError'
  }
}

export function isDovepushError(err: unknown): err is DovepushError {
  return typeof err === 'object' && err !== null && (err as Record<symbol, unknown>)[BRAND] === true
}
