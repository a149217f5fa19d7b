// `dovepush forwarder`: prints the forwarder Lua script (src/forwarder/script.ts)
// for a real Dovecot, configured with where to send or write the transactions.

import { readFileSync, writeFileSync } from 'node:fs'
import { isAbsolute } from 'node:path'
import { InvalidArgumentError } from '../errors.js'
import { type ForwarderDovecot, forwarderScript, isIpHost, resolveForwarderUrl } from '../forwarder/script.js'

/**
 * The value of a string flag exactly as typed: the option parser turns
 * numeric-looking values into numbers ("0123" → 123), which would change a
 * token or a file name. Last occurrence wins, as with the parser.
 */
function rawFlag(argv: readonly string[], name: string): string | undefined {
  let value: string | undefined
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a === '--') break
    if (a === `--${name}` && i + 1 < argv.length) value = argv[++i]
    else if (a.startsWith(`--${name}=`)) value = a.slice(name.length + 3)
  }
  return value
}

function str(flags: Record<string, unknown>, argv: readonly string[], key: string, name: string): string | undefined {
  const v = flags[key]
  if (v === undefined || v === false) return undefined
  if (v === true) throw new InvalidArgumentError(`--${name} needs a value`)
  if (Array.isArray(v)) throw new InvalidArgumentError(`--${name} given more than once`)
  return rawFlag(argv, name) ?? String(v)
}

/** Runs the command; returns the exit code. `argv` is the whole command line (for exact string values). */
export async function forwarderCommand(flags: Record<string, unknown>, argv: readonly string[], out: { write(s: string): unknown } = process.stdout, err: { write(s: string): unknown } = process.stderr): Promise<number> {
  const bad = (e: unknown): never => {
    throw new InvalidArgumentError(e instanceof Error ? e.message : String(e))
  }
  const urlGiven = str(flags, argv, 'url', 'url')
  const toFile = str(flags, argv, 'toFile', 'to-file')
  const output = str(flags, argv, 'output', 'output')
  let token = str(flags, argv, 'token', 'token')
  const tokenFile = str(flags, argv, 'tokenFile', 'token-file')
  if (token !== undefined && tokenFile !== undefined) bad('give --token or --token-file, not both')
  if (tokenFile !== undefined) {
    try {
      token = readFileSync(tokenFile, 'utf8').split(/\r?\n/)[0]!.trim()
    } catch (e) {
      bad(`--token-file: ${(e as Error).message}`)
    }
  }
  if (urlGiven === undefined && toFile === undefined) bad('give --url (dovepush serve) and/or --to-file PATH')
  if (token !== undefined && urlGiven === undefined) bad('--token needs --url')
  if (toFile !== undefined && !isAbsolute(toFile)) bad(`--to-file: give an absolute path (Dovecot's mail processes run in the user's home), got ${toFile}`)
  if (toFile !== undefined && /[\u0000\r\n]/.test(toFile)) bad('--to-file: no NUL or line breaks in the path')
  const dovecot = String(rawFlag(argv, 'dovecot') ?? flags.dovecot ?? 'auto')
  if (dovecot !== '2.3' && dovecot !== '2.4' && dovecot !== 'auto') bad(`--dovecot: 2.3, 2.4 or auto, got ${dovecot}`)
  const timeoutMs = Number(flags.timeout ?? 2000)
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 3_600_000) bad(`--timeout: an integer number of milliseconds from 1 to 3600000, got ${String(flags.timeout)}`)

  let url: string | undefined
  let script = ''
  try {
    url = urlGiven === undefined ? undefined : resolveForwarderUrl(urlGiven)
    script = forwarderScript({ url, token, toFile, dovecot: dovecot as ForwarderDovecot, timeoutMs, version: packageVersion() })
  } catch (e) {
    bad(e)
  }

  if (output === undefined) out.write(script)
  else {
    writeFileSync(output, script, { mode: 0o600 })
    err.write(`dovepush: wrote ${output}${token !== undefined ? ' (it contains the token: make it readable by the mail user only, e.g. chown root:vmail; chmod 0640)' : ''}\n`)
  }
  if (url !== undefined && dovecot !== '2.4' && !isIpHost(url)) {
    err.write(`dovepush: note: Dovecot 2.3.19 (Debian 12) cannot resolve host names in dovecot.http (fixed in 2.3.20); use an IP address in --url there\n`)
  }
  return 0
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}
