// Runs a scenario's steps against a real Dovecot: LMTP deliveries with
// nodemailer's LMTP client (dovecot-lda for `service: lda`; a Sieve script
// for a delivery into another folder or with flags), IMAP commands with imapflow (one connection per
// user and session label, as the simulator keeps one session), doveadm
// commands for `service: doveadm` steps. A MULTIAPPEND (several items) goes
// over a raw IMAP connection, since imapflow appends one message at a time.

import { spawn } from 'node:child_process'
import { connect } from 'node:net'
import { ImapFlow } from 'imapflow'
import nodemailer from 'nodemailer'
import type { Actor, AppendItem, MessageInput, UidSet } from '../mailstore/actions.js'
import { composeMessage, parseMessage } from '../mailstore/message.js'
import type { StepAction } from '../sources/scenario.js'
import { type DovecotInstance, PASSWORD } from './dovecot.js'

/** The message's bytes, exactly as the simulator reads them. */
export function messageBytes(m: MessageInput): Buffer {
  if (typeof m === 'string') return Buffer.from(m, 'utf8')
  if (m instanceof Uint8Array) return Buffer.from(m)
  return Buffer.from(composeMessage(m), 'utf8')
}

/** A delivery into another folder or with flags, as Sieve does it (fileinto, imap4flags); undefined for a plain delivery. */
export function sieveScript(mailbox: string | undefined, flags: readonly string[] | undefined): string | undefined {
  if (mailbox === undefined && flags === undefined) return undefined
  const q = (s: string): string => '"' + s.replace(/[\\"]/g, (c) => '\\' + c) + '"'
  const withFlags = flags !== undefined && flags.length > 0 ? ` :flags ${q(flags.join(' '))}` : ''
  const action = mailbox !== undefined && mailbox.toUpperCase() !== 'INBOX' ? `fileinto${withFlags} ${q(mailbox)};` : `keep${withFlags};`
  return `require ["fileinto", "imap4flags"];\n${action}\n`
}

function uidRange(uids: UidSet | undefined): string {
  if (uids === undefined || uids === 'all') return '1:*'
  if (typeof uids === 'number') return String(uids)
  if (typeof uids === 'string') return uids
  return uids.join(',')
}

const DOVECOT_LDA = '/usr/lib/dovecot/dovecot-lda'

export class RealDovecotDriver {
  readonly #dovecot: DovecotInstance
  readonly #imap = new Map<string, ImapFlow>()

  constructor(dovecot: DovecotInstance) {
    this.#dovecot = dovecot
  }

  /** Performs one step; resolves when Dovecot has answered. Returns an error text when Dovecot refused it. */
  async perform(a: StepAction): Promise<string | undefined> {
    try {
      if (a.kind === 'deliver') return await this.#deliver(a.args.to, a.args.message, a.args)
      if (a.args.service === 'doveadm') return await this.#doveadm(a)
      return await this.#imapStep(a)
    } catch (err) {
      return (err as Error).message
    }
  }

  async #deliver(to: string | readonly string[], message: MessageInput, o: { mailbox?: string; flags?: readonly string[]; service?: string }): Promise<string | undefined> {
    const rcpts = typeof to === 'string' ? [to] : [...to]
    const sieve = sieveScript(o.mailbox, o.flags)
    for (const u of rcpts) this.#dovecot.setSieve(u, sieve)
    const raw = messageBytes(message)
    const from = parseMessage(raw).from_address || 'sender@example.org'
    try {
      if (o.service === 'lda') {
        // one dovecot-lda process per recipient, as an MTA runs it; not spawnSync: the
        // in-process `dovepush serve` must answer the forwarder meanwhile
        for (const u of rcpts) {
          const failed = await lda(this.#dovecot.conf, u, from, raw)
          if (failed !== undefined) return failed
        }
        return undefined
      }
      const transport = nodemailer.createTransport({ host: '127.0.0.1', port: this.#dovecot.lmtpPort, lmtp: true, secure: false, ignoreTLS: true })
      try {
        const info = await transport.sendMail({ envelope: { from, to: rcpts }, raw })
        return info.rejected.length > 0 ? `rejected: ${info.rejected.join(', ')}` : undefined
      } finally {
        transport.close()
      }
    } finally {
      if (sieve !== undefined) for (const u of rcpts) this.#dovecot.setSieve(u, undefined)
    }
  }

  async #client(a: Actor): Promise<ImapFlow> {
    const key = `${a.user}\u0000${a.session ?? ''}`
    let c = this.#imap.get(key)
    if (c === undefined) {
      c = new ImapFlow({ host: '127.0.0.1', port: this.#dovecot.imapPort, secure: false, auth: { user: a.user, pass: PASSWORD }, logger: false, disableAutoIdle: true })
      await c.connect()
      this.#imap.set(key, c)
    }
    return c
  }

  async #selected(a: Actor & { mailbox: string }): Promise<ImapFlow> {
    const c = await this.#client(a)
    if (c.mailbox === false || c.mailbox.path !== a.mailbox) await c.mailboxOpen(a.mailbox)
    return c
  }

  async #imapStep(a: Exclude<StepAction, { kind: 'deliver' }>): Promise<string | undefined> {
    switch (a.kind) {
      case 'login':
        await this.#client(a.args)
        return undefined
      case 'logout': {
        const key = `${a.args.user}\u0000${a.args.session ?? ''}`
        const c = this.#imap.get(key)
        this.#imap.delete(key)
        await c?.logout()
        return undefined
      }
      case 'select':
        await (await this.#client(a.args)).mailboxOpen(a.args.mailbox)
        return undefined
      case 'append':
        return this.#append(a.args, a.args.items)
      case 'store': {
        const c = await this.#selected(a.args)
        const range = uidRange(a.args.uids)
        const flags = [...a.args.flags]
        if (a.args.op === '+') await c.messageFlagsAdd(range, flags, { uid: true })
        else if (a.args.op === '-') await c.messageFlagsRemove(range, flags, { uid: true })
        else await c.messageFlagsSet(range, flags, { uid: true })
        return undefined
      }
      case 'expunge': {
        const c = await this.#selected(a.args)
        // imapflow has no plain EXPUNGE (its messageDelete stores \Deleted first)
        if (a.args.uids === undefined) await command(c, 'EXPUNGE', false)
        else await command(c, 'UID EXPUNGE', [{ type: 'SEQUENCE', value: uidRange(a.args.uids) }])
        return undefined
      }
      case 'copy':
        await (await this.#selected(a.args)).messageCopy(uidRange(a.args.uids), a.args.to, { uid: true })
        return undefined
      case 'move':
        await (await this.#selected(a.args)).messageMove(uidRange(a.args.uids), a.args.to, { uid: true })
        return undefined
      case 'create':
        // imapflow's mailboxCreate SUBSCRIBEs too (an extra MailboxSubscribe): a plain CREATE
        await command(await this.#client(a.args), 'CREATE', [{ type: 'STRING', value: a.args.mailbox }])
        return undefined
      case 'rename':
        await (await this.#client(a.args)).mailboxRename(a.args.mailbox, a.args.to)
        return undefined
      case 'delete':
        await (await this.#client(a.args)).mailboxDelete(a.args.mailbox)
        return undefined
      // imapflow answers a NO to these with false
      case 'subscribe':
        return (await (await this.#client(a.args)).mailboxSubscribe(a.args.mailbox)) ? undefined : `SUBSCRIBE ${a.args.mailbox} refused`
      case 'unsubscribe':
        return (await (await this.#client(a.args)).mailboxUnsubscribe(a.args.mailbox)) ? undefined : `UNSUBSCRIBE ${a.args.mailbox} refused`
    }
  }

  /** APPEND of one message with imapflow; MULTIAPPEND over a raw connection of its own (logged out after). */
  async #append(a: Actor & { mailbox: string }, items: readonly AppendItem[]): Promise<string | undefined> {
    if (items.length === 1) {
      const r = await (await this.#client(a)).append(a.mailbox, messageBytes(items[0]!.message), [...(items[0]!.flags ?? [])])
      return r === false ? 'APPEND failed' : undefined
    }
    const parts = items.map((it, i) => {
      const body = messageBytes(it.message)
      return Buffer.concat([Buffer.from(`${i === 0 ? '' : ' '}(${(it.flags ?? []).join(' ')}) {${body.length}+}\r\n`), body])
    })
    const answer = await rawImap(this.#dovecot.imapPort, a.user, Buffer.concat([Buffer.from(`b APPEND "${a.mailbox}" `), ...parts, Buffer.from('\r\n')]))
    // the raw connection was its own session, already logged out
    this.#imap.delete(`${a.user}\u0000${a.session ?? ''}`)
    return /^b OK/m.test(answer) ? undefined : answer.split('\r\n').find((l) => l.startsWith('b ')) ?? answer
  }

  async #doveadm(a: Exclude<StepAction, { kind: 'deliver' }>): Promise<string | undefined> {
    const u = ['-u', a.args.user]
    const args = ((): string[] => {
      switch (a.kind) {
        case 'store':
          return ['flags', a.args.op === '+' ? 'add' : a.args.op === '-' ? 'remove' : 'replace', ...u, a.args.flags.join(' '), 'mailbox', a.args.mailbox, ...uidQuery(a.args.uids)]
        case 'create':
        case 'delete':
        case 'subscribe':
        case 'unsubscribe':
          return ['mailbox', a.kind, ...u, a.args.mailbox]
        case 'rename':
          return ['mailbox', 'rename', ...u, a.args.mailbox, a.args.to]
        case 'expunge':
          return ['expunge', ...u, 'mailbox', a.args.mailbox, 'deleted', ...(a.args.uids !== undefined ? uidQuery(a.args.uids) : [])]
        case 'copy':
        case 'move':
          return [a.kind, ...u, a.args.to, 'mailbox', a.args.mailbox, ...uidQuery(a.args.uids)]
        default:
          throw new Error(`${a.kind} has no doveadm form in the conformance driver`)
      }
    })()
    await this.#dovecot.doveadm(args)
    return undefined
  }

  /** Logs out every IMAP connection. */
  async close(): Promise<void> {
    const all = [...this.#imap.values()]
    this.#imap.clear()
    for (const c of all) await c.logout().catch(() => undefined)
  }
}

/** One IMAP command through imapflow's exec(), its command primitive (as its own commands use it: next() releases the queue). */
async function command(c: ImapFlow, name: string, attributes: unknown[] | false): Promise<void> {
  const exec = (c as unknown as { exec(cmd: string, attrs: unknown[] | false): Promise<{ next(): void }> }).exec.bind(c)
  const r = await exec(name, attributes)
  r.next()
}

function uidQuery(uids: UidSet | undefined): string[] {
  return uids === undefined || uids === 'all' ? ['all'] : ['uid', uidRange(uids)]
}

/** Delivers with dovecot-lda to one user; an error text when it fails. */
async function lda(conf: string, user: string, from: string, message: Buffer): Promise<string | undefined> {
  return new Promise((resolve) => {
    const child = spawn(DOVECOT_LDA, ['-c', conf, '-d', user, '-f', from], { stdio: ['pipe', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', (err) => resolve(`dovecot-lda: ${err.message}`))
    child.on('close', (code) => resolve(code === 0 ? undefined : `dovecot-lda -d ${user} exited ${code}: ${stderr.trim()}`))
    child.stdin.end(message)
  })
}

/** LOGIN, one command, LOGOUT over a plain connection; the whole conversation as text. */
async function rawImap(port: number, user: string, command: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1')
    let text = ''
    let stage = 0
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1')
      if (stage === 0 && text.includes('* OK')) {
        stage = 1
        s.write(`a LOGIN "${user}" "${PASSWORD}"\r\n`)
      } else if (stage === 1 && /^a (OK|NO|BAD)/m.test(text)) {
        stage = 2
        s.write(command)
      } else if (stage === 2 && /^b (OK|NO|BAD)/m.test(text)) {
        stage = 3
        s.write('c LOGOUT\r\n')
      } else if (stage === 3 && /^c OK/m.test(text)) s.end()
    })
    s.on('end', () => resolve(text))
    s.on('error', reject)
  })
}
