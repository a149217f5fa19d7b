// `npm run conformance`: each scenario of fixtures/scenarios/ against a real
// Dovecot 2.3.19 and against dovepush's simulator, compared.
//
// Per scenario: a private Dovecot (dovecot.ts) whose push driver is the
// forwarder (`dovepush forwarder`), pointed at an in-process `dovepush serve`
// that runs the scenario's own script, whose HTTP requests go to a local
// sink. The steps are driven over LMTP, IMAP and doveadm (drive.ts). The same
// scenario then runs in the simulator (runScenario). Compared:
//   1. the transactions: what the real Dovecot handed the forwarder vs what
//      the simulator handed its host (session ids and UIDVALIDITY aside);
//   2. the live mirror: the requests the script made in `serve`, fed by the
//      real Dovecot, vs those it made in the simulator (sink address aside).
// Everything started is stopped. Exit 0: no differences (or only the known
// divergences listed in KNOWN_DIVERGENCES); 1: differences; 2: cannot run
// (no dovecot and not root to install it).

import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join, relative } from 'node:path'
import { createLogger } from '../log/logger.js'
import type { TransactionUnit } from '../events/types.js'
import { forwarderScript, resolveForwarderUrl } from '../forwarder/script.js'
import { CaptureSink, type CapturedRequest } from '../http/capture-sink.js'
import { startServe } from '../serve/server.js'
import { loadScenario, type Scenario } from '../sources/scenario.js'
import { runScenario } from '../testing/run-scenario.js'
import { findScenarioFiles } from '../cli/test.js'
import { expandSink } from '../testing/index.js'
import { DovecotInstance, dovecotMissing, ensureDovecot } from './dovecot.js'
import { RealDovecotDriver } from './drive.js'

const out = (s: string): void => void process.stdout.write(s + '\n')

/**
 * Differences that are understood and accepted, by scenario file name (also
 * listed in the README). The script requests of the live mirror differ where
 * the script reads mailbox state: `dovepush serve` gets only the events, and
 * its simulated store is empty, while in the simulator it holds the
 * scenario's mail.
 */
const KNOWN_DIVERGENCES: Readonly<Record<string, { readonly requests?: string }>> = {
  'unseen-count.yaml': { requests: "the script reads mailbox:status(); fed live through serve it sees serve's empty store, not the real Dovecot's mailbox" },
}

/** The users a scenario touches (all get the password `pass`). */
function usersOf(s: Scenario): string[] {
  const users = new Set<string>(Object.keys(s.users))
  for (const st of s.steps) {
    if (st.action.kind === 'deliver') for (const u of typeof st.action.args.to === 'string' ? [st.action.args.to] : st.action.args.to) users.add(u)
    else users.add(st.action.args.user)
  }
  return [...users]
}

// ---- normalising ---------------------------------------------------------------------

interface Line {
  readonly user: string
  readonly service: string
  readonly session: string
  readonly transactions: readonly { committed: boolean; events: readonly Record<string, unknown>[] }[]
}

export function toLine(u: TransactionUnit | Record<string, unknown>): Line {
  const o = u as Record<string, unknown>
  const txns = (o.transactions as Record<string, unknown>[] | undefined) ?? [o]
  return {
    user: String(o.user),
    service: String(o.service ?? ''),
    session: String(o.session ?? ''),
    transactions: txns.map((t) => ({ committed: t.committed !== false, events: (t.events as Record<string, unknown>[]) ?? [] })),
  }
}

/** Text lines to diff: session ids as S1, S2… in order of appearance, UIDVALIDITY left out, keys sorted. */
export function render(lines: readonly Line[]): string[] {
  const sessions = new Map<string, string>()
  return lines.map((l) => {
    if (!sessions.has(l.session)) sessions.set(l.session, `S${sessions.size + 1}`)
    const txns = l.transactions.map((t) => ({
      committed: t.committed,
      events: t.events.map((e) => Object.fromEntries(Object.keys(e).filter((k) => k !== 'uid_validity').sort().map((k) => [k, e[k]]))),
    }))
    return `${l.user} ${l.service} ${sessions.get(l.session)} ${JSON.stringify(txns.length === 1 ? txns[0] : txns)}`
  })
}

export function renderRequests(rs: readonly { method: string; url: string; headers: ReadonlyArray<readonly [string, string]>; body: string }[]): string[] {
  return rs.map((r) => {
    const u = new URL(r.url)
    const headers = r.headers.filter(([n]) => !/^(host|date|content-length|connection|user-agent)$/i.test(n)).map(([n, v]) => `${n.toLowerCase()}: ${v}`)
    return `${r.method} ${u.pathname}${u.search} ${headers.join('; ')} ${canonicalBody(r.body)}`
  })
}

/** A JSON body with its keys sorted (a Lua table's key order differs between Lua states); other bodies as they are. */
function canonicalBody(body: string): string {
  const sortKeys = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(sortKeys) : v !== null && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])])) : v
  try {
    return JSON.stringify(sortKeys(JSON.parse(body)))
  } catch {
    return body
  }
}

/** A line diff (LCS), `-` real Dovecot, `+` dovepush. */
export function diffLines(real: readonly string[], sim: readonly string[]): string[] {
  const n = real.length
  const m = sim.length
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0))
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) lcs[i]![j] = real[i] === sim[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!)
  const outLines: string[] = []
  let i = 0
  let j = 0
  while (i < n || j < m) {
    if (i < n && j < m && real[i] === sim[j]) {
      i++
      j++
    } else if (j < m && (i === n || lcs[i]![j + 1]! >= lcs[i + 1]![j]!)) outLines.push(`+ ${sim[j++]}`)
    else outLines.push(`- ${real[i++]}`)
  }
  return outLines
}

// ---- one scenario --------------------------------------------------------------------

interface Outcome {
  readonly file: string
  readonly name: string
  readonly transactions: string[]
  readonly requests: string[]
  readonly notes: string[]
  readonly counts: { transactions: number; requests: number }
}

async function conform(file: string): Promise<Outcome> {
  const scenario = loadScenario(file)
  if (scenario.script === undefined) throw new Error(`${file}: the scenario names no script`)
  const work = mkdtempSync(join(tmpdir(), 'dovepush-conformance-'))
  chmodSync(work, 0o755)
  const notes: string[] = []
  const sink = new CaptureSink({ redact: false })
  const target = await sink.start()
  const sinkUrl = `http://${target.host}:${target.port}`
  const log = createLogger({ format: 'json', level: 'error', destination: { write: (s: string) => void notes.push(`serve: ${(JSON.parse(s) as { msg: string }).msg}`) } })
  const users = Object.fromEntries(Object.entries(scenario.users).map(([u, st]) => [u, expandSink({ ...scenario.settings, ...st }, sinkUrl)]))
  const serve = await startServe({ script: scenario.script, settings: expandSink(scenario.settings, sinkUrl), users, port: 0, log, dovecot: '2.3' })
  const recorded = join(work, 'forwarded.ndjson')
  writeFileSync(recorded, '', { mode: 0o666 })
  chmodSync(recorded, 0o666)
  const forwarder = join(work, 'forwarder.lua')
  writeFileSync(forwarder, forwarderScript({ url: resolveForwarderUrl(serve.url), toFile: recorded, dovecot: '2.3', timeoutMs: 5000, version: 'conformance' }), { mode: 0o644 })
  let dovecot: DovecotInstance | undefined
  let driver: RealDovecotDriver | undefined
  try {
    dovecot = await DovecotInstance.create({ users: usersOf(scenario), pushScript: forwarder })
    await dovecot.start()
    driver = new RealDovecotDriver(dovecot)
    for (const step of scenario.steps) {
      const refused = await driver.perform(step.action)
      if ((refused !== undefined) !== step.fails) notes.push(`${step.label}: real Dovecot ${refused !== undefined ? `refused it: ${refused}` : 'did it, but the step says fails: true'}`)
    }
    await driver.close()
    driver = undefined
    await new Promise((r) => setTimeout(r, 300)) // session ends (script_deinit) land after the last answer
  } finally {
    await driver?.close()
    const errors = dovecot?.log().split('\n').filter((l) => /Error|Panic|Fatal/.test(l)) ?? []
    for (const e of errors.slice(0, 5)) notes.push(`dovecot: ${e}`)
    await dovecot?.stop()
    await serve.close()
  }
  const realLines = readFileSync(recorded, 'utf8').split('\n').filter(Boolean).map((l) => toLine(JSON.parse(l) as Record<string, unknown>))
  const realRequests: CapturedRequest[] = [...sink.requests]
  await sink.close()
  rmSync(work, { recursive: true, force: true })

  const simUnits: TransactionUnit[] = []
  const sim = await runScenario(scenario, { onTransaction: (u) => simUnits.push(u) })
  for (const f of sim.failures) notes.push(`simulator: ${f.step !== undefined ? `${f.step}: ` : ''}${f.message}`)
  return {
    file,
    name: scenario.name,
    transactions: diffLines(render(realLines), render(simUnits.map(toLine))),
    requests: diffLines(renderRequests(realRequests), renderRequests(sim.requests)),
    notes,
    counts: { transactions: realLines.length, requests: realRequests.length },
  }
}

// ---- main ------------------------------------------------------------------------------

export async function main(argv: readonly string[]): Promise<number> {
  const missing = dovecotMissing()
  if (missing !== undefined && process.getuid?.() !== 0) {
    out(`conformance: cannot run: ${missing}, and installing it needs root (apt-get install dovecot-core dovecot-imapd dovecot-lmtpd).`)
    return 2
  }
  out(`conformance: ${ensureDovecot(out)}`)
  const files = findScenarioFiles(argv.length > 0 ? [...argv] : ['fixtures/scenarios'], process.cwd())
  let failed = 0
  for (const file of files) {
    const started = performance.now()
    let o: Outcome
    try {
      o = await conform(file)
    } catch (err) {
      failed++
      out(`✗ ${relative(process.cwd(), file)}: ${(err as Error).message}`)
      continue
    }
    const known = KNOWN_DIVERGENCES[basename(o.file)]
    const requestsKnown = o.requests.length > 0 && known?.requests !== undefined
    const ok = o.transactions.length === 0 && (o.requests.length === 0 || requestsKnown)
    if (!ok) failed++
    const ms = Math.round(performance.now() - started)
    out(`${ok ? '✓' : '✗'} ${o.name}  ${relative(process.cwd(), o.file)}  (${o.counts.transactions} transactions, ${o.counts.requests} script requests, ${ms} ms)`)
    if (o.transactions.length > 0) out(['  transactions (- real Dovecot, + dovepush):', ...o.transactions.map((l) => '    ' + l)].join('\n'))
    if (requestsKnown) out(`  script requests differ, a known divergence: ${known!.requests!}`)
    else if (o.requests.length > 0) out(['  script requests (- fed by real Dovecot through serve, + simulator):', ...o.requests.map((l) => '    ' + l)].join('\n'))
    for (const n of o.notes) out(`  note: ${n}`)
  }
  out(`\n${files.length} scenarios: ${files.length - failed} identical, ${failed} with differences`)
  return failed > 0 ? 1 : 0
}
