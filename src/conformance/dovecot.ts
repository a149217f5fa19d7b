// A private Dovecot 2.3 instance for the conformance run: Debian's packages,
// a generated config in a temp dir, IMAP and LMTP on free loopback ports, a
// static user list, the Lua push driver. Nothing listens beyond 127.0.0.1;
// the distribution's own service is never started.

import { execFile, execFileSync, spawnSync } from 'node:child_process'
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

// dovecot-sieve: deliveries into another folder or with flags (`deliver: {mailbox, flags}`) are Sieve's fileinto / imap4flags
export const DOVECOT_PACKAGES = ['dovecot-core', 'dovecot-imapd', 'dovecot-lmtpd', 'dovecot-sieve'] as const
const SIEVE_PLUGIN = '/usr/lib/dovecot/modules/lib90_sieve_plugin.so'
export const PASSWORD = 'pass'

/** Why dovecot cannot run here, or undefined when it can. */
export function dovecotMissing(): string | undefined {
  try {
    execFileSync('dovecot', ['--version'], { stdio: 'pipe' })
  } catch {
    return `dovecot is not installed (needs the Debian packages ${DOVECOT_PACKAGES.join(' ')})`
  }
  return existsSync(SIEVE_PLUGIN) ? undefined : `Dovecot's Sieve plugin is not installed (needs the Debian package dovecot-sieve)`
}

/**
 * Installs the packages with apt-get when missing (root only), with a
 * policy-rc.d that forbids the package from starting the system service.
 * Returns the installed version, or throws saying what is needed.
 */
export function ensureDovecot(log: (line: string) => void): string {
  if (dovecotMissing() !== undefined) {
    if (process.getuid?.() !== 0) {
      throw new Error(`dovecot is not installed and installing it needs root: run as root, or install it yourself: apt-get install ${DOVECOT_PACKAGES.join(' ')}`)
    }
    log(`installing ${DOVECOT_PACKAGES.join(' ')} (apt-get)`)
    const policy = '/usr/sbin/policy-rc.d'
    const ownPolicy = !existsSync(policy)
    if (ownPolicy) writeFileSync(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 })
    try {
      execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' })
      execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...DOVECOT_PACKAGES], {
        stdio: 'inherit',
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      })
    } finally {
      if (ownPolicy) rmSync(policy, { force: true })
    }
  }
  return execFileSync('dovecot', ['--version'], { encoding: 'utf8' }).trim()
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const port = (srv.address() as { port: number }).port
  await new Promise<void>((resolve) => srv.close(() => resolve()))
  return port
}

/** The system user owning the test mail (created when missing). */
function mailOwner(): { uid: number; gid: number } {
  try {
    execFileSync('id', ['vmail'], { stdio: 'pipe' })
  } catch {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', 'vmail'])
  }
  const uid = Number(execFileSync('id', ['-u', 'vmail'], { encoding: 'utf8' }).trim())
  const gid = Number(execFileSync('id', ['-g', 'vmail'], { encoding: 'utf8' }).trim())
  return { uid, gid }
}

export interface DovecotOptions {
  readonly users: readonly string[]
  /** The Lua push script (the forwarder). */
  readonly pushScript: string
  /** Extra plugin {} settings. */
  readonly plugin?: Readonly<Record<string, string>>
}

export class DovecotInstance {
  readonly dir: string
  readonly conf: string
  readonly imapPort: number
  readonly lmtpPort: number
  readonly #owner: { uid: number; gid: number }
  #started = false

  private constructor(dir: string, imapPort: number, lmtpPort: number, owner: { uid: number; gid: number }) {
    this.#owner = owner
    this.dir = dir
    this.conf = join(dir, 'dovecot.conf')
    this.imapPort = imapPort
    this.lmtpPort = lmtpPort
  }

  /** Writes a fresh instance (config, users, empty mail) in a new temp dir; starts nothing. */
  static async create(o: DovecotOptions): Promise<DovecotInstance> {
    const dir = mkdtempSync(join(tmpdir(), 'dovepush-dovecot-'))
    chmodSync(dir, 0o755)
    const owner = mailOwner()
    const { uid, gid } = owner
    const d = new DovecotInstance(dir, await freePort(), await freePort(), owner)
    for (const sub of ['mail', 'state', 'log', 'run']) mkdirSync(join(dir, sub))
    chownSync(join(dir, 'mail'), uid, gid)
    const users = o.users.map((u) => `${u}:{PLAIN}${PASSWORD}:${uid}:${gid}::${d.home(u)}::`)
    writeFileSync(join(dir, 'users'), users.join('\n') + '\n', { mode: 0o644 })
    const plugin = Object.entries(o.plugin ?? {})
      .map(([k, v]) => `  ${k} = ${v}`)
      .join('\n')
    writeFileSync(
      d.conf,
      `# dovepush conformance: a private Dovecot instance (generated)
instance_name = dovepush-conformance-${d.imapPort}
base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${dir}/log/dovecot.log
mail_debug = no
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = dovecot
default_login_user = dovenull
mail_uid = vmail
mail_gid = vmail
first_valid_uid = ${uid}
last_valid_uid = ${uid}
first_valid_gid = ${gid}
mail_location = maildir:~/Maildir
namespace inbox {
  inbox = yes
  separator = /
  prefix =
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${dir}/users
}
userdb {
  driver = passwd-file
  args = username_format=%u ${dir}/users
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${d.imapPort}
  }
  inet_listener imaps {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = ${d.lmtpPort}
  }
}
service stats {
  unix_listener stats-writer {
    mode = 0666
  }
}
lmtp_save_to_detail_mailbox = no
mail_plugins = $mail_plugins notify push_notification push_notification_lua mail_lua
protocol imap {
  mail_plugins = $mail_plugins
}
protocol lmtp {
  mail_plugins = $mail_plugins sieve
}
protocol lda {
  mail_plugins = $mail_plugins sieve
}
protocol doveadm {
  mail_plugins = $mail_plugins
}
plugin {
  sieve = file:~/sieve;active=~/.dovecot.sieve
  push_notification_driver = lua:file=${o.pushScript}
${plugin}
}
`,
    )
    await run('doveconf', ['-c', d.conf, '-n'])
    return d
  }

  /** The user's home (its Maildir and Sieve script live there). */
  home(user: string): string {
    const [local, domain = ''] = user.split('@')
    return join(this.dir, 'mail', domain, local!)
  }

  /** Installs (or, with undefined, removes) the user's active Sieve script; it runs at the next delivery. */
  setSieve(user: string, script: string | undefined): void {
    const home = this.home(user)
    const file = join(home, '.dovecot.sieve')
    rmSync(file, { force: true })
    rmSync(join(home, '.dovecot.svbin'), { force: true })
    if (script === undefined) return
    mkdirSync(home, { recursive: true })
    for (let p = home; p.startsWith(join(this.dir, 'mail')); p = dirname(p)) chownSync(p, this.#owner.uid, this.#owner.gid)
    writeFileSync(file, script)
    chownSync(file, this.#owner.uid, this.#owner.gid)
  }

  async start(): Promise<void> {
    // the master daemonizes: with inherited pipes, execFile would wait for it to exit
    const r = spawnSync('dovecot', ['-c', this.conf], { stdio: 'ignore' })
    if (r.status !== 0) throw new Error(`dovecot -c ${this.conf} failed (exit ${r.status}); its log:\n${this.log()}`)
    this.#started = true
    await waitForPort(this.imapPort)
    await waitForPort(this.lmtpPort)
  }

  /** doveadm with this instance's config; resolves with stdout, rejects with stderr. */
  async doveadm(args: readonly string[]): Promise<string> {
    const { stdout } = await run('doveadm', ['-c', this.conf, ...args])
    return stdout
  }

  log(): string {
    try {
      return readFileSync(join(this.dir, 'log', 'dovecot.log'), 'utf8')
    } catch {
      return ''
    }
  }

  /** Stops the instance (if started) and removes its directory. */
  async stop(): Promise<void> {
    if (this.#started) {
      this.#started = false
      await run('doveadm', ['-c', this.conf, 'stop']).catch(() => undefined)
      await waitForPortClosed(this.imapPort)
    }
    rmSync(this.dir, { recursive: true, force: true })
  }
}

async function waitForPort(port: number, ms = 10_000): Promise<void> {
  const until = Date.now() + ms
  for (;;) {
    if (await connects(port)) return
    if (Date.now() > until) throw new Error(`dovecot did not listen on 127.0.0.1:${port} within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

async function waitForPortClosed(port: number, ms = 10_000): Promise<void> {
  const until = Date.now() + ms
  while ((await connects(port)) && Date.now() < until) await new Promise((r) => setTimeout(r, 100))
}

async function connects(port: number): Promise<boolean> {
  const { connect } = await import('node:net')
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1')
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}
