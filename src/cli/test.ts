// `dovepush test [FILES|DIRS...]`: runs scenario files and reports.
// `dovepush run SCRIPT --scenario FILE` runs one scenario with that script.
// Exit codes: 0 all passed, 1 a scenario failed, 2 bad usage or an
// unreadable / invalid scenario file (the valid ones still run).

import { readdirSync, statSync, writeFileSync } from 'node:fs'
import { extname, isAbsolute, join, resolve } from 'node:path'
import { InputError, InvalidArgumentError, isDovepushError } from '../errors.js'
import { ENGINE_NAMES, type EngineName } from '../lua/engine.js'
import { DOVECOT_VERSIONS, type DovecotVersion } from '../lua/env.js'
import { loadScenario } from '../sources/scenario.js'
import { runScenario, type RunScenarioOptions, type ScenarioFailure, type ScenarioResult } from '../testing/run-scenario.js'

/** Where the commands write (tests pass their own). */
export interface CliIo {
  readonly stdout: { write(s: string): unknown }
  readonly stderr: { write(s: string): unknown }
  /** Relative paths are resolved against it, and files are shown relative to it (default process.cwd()). */
  readonly cwd?: string
}

const processIo: CliIo = { stdout: process.stdout, stderr: process.stderr }

/** What became of one scenario file: its result, or why it could not run. */
export type ScenarioOutcome =
  | { readonly kind: 'result'; readonly file: string; readonly result: ScenarioResult }
  | { readonly kind: 'error'; readonly file: string; readonly code: string; readonly message: string }

export const SCENARIO_EXTENSIONS: readonly string[] = ['.yaml', '.yml', '.json']
export const DEFAULT_SCENARIO_DIR = 'fixtures/scenarios'

// ---- files ------------------------------------------------------------------------

/**
 * The scenario files under `paths`: files as given (any extension), and in
 * directories, recursively, *.yaml, *.yml and *.json, sorted; directories
 * named `failing` (scenarios meant to fail), node_modules and dot
 * directories are skipped unless given themselves. No paths: the default
 * directory fixtures/scenarios. Throws InvalidArgumentError for a path that
 * does not exist or a directory without scenarios.
 */
export function findScenarioFiles(paths: readonly string[], cwd: string = process.cwd()): string[] {
  const given = paths.length > 0 ? paths : [DEFAULT_SCENARIO_DIR]
  const out: string[] = []
  for (const p of given) {
    const abs = resolve(cwd, p)
    let st
    try {
      st = statSync(abs)
    } catch {
      throw new InvalidArgumentError(
        paths.length === 0 ? `no scenario files given, and ${DEFAULT_SCENARIO_DIR} does not exist here (${cwd})` : `${p}: no such file or directory`,
      )
    }
    if (st.isFile()) {
      out.push(p)
      continue
    }
    const found: string[] = []
    walk(abs, p, found)
    if (found.length === 0) throw new InvalidArgumentError(`${p}: no scenario files (${SCENARIO_EXTENSIONS.map((e) => `*${e}`).join(', ')}) in it`)
    out.push(...found)
  }
  return [...new Set(out)]
}

function walk(abs: string, shown: string, out: string[]): void {
  const entries = readdirSync(abs, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  for (const e of entries) {
    const childAbs = join(abs, e.name)
    const childShown = join(shown, e.name)
    if (e.isDirectory()) {
      if (e.name === 'failing' || e.name === 'node_modules' || e.name.startsWith('.')) continue
      walk(childAbs, childShown, out)
    } else if ((e.isFile() || e.isSymbolicLink()) && SCENARIO_EXTENSIONS.includes(extname(e.name).toLowerCase())) out.push(childShown)
  }
}

// ---- options ----------------------------------------------------------------------

function oneOf<T extends string>(flag: string, value: unknown, allowed: readonly T[]): T {
  const v = String(value)
  if (!(allowed as readonly string[]).includes(v)) throw new InvalidArgumentError(`${flag}: expected one of ${allowed.join(', ')}, got "${v}"`)
  return v as T
}

/** --script, --engine, --dovecot (and run's --call-timeout), validated once. */
function runOptions(flags: Record<string, unknown>, cwd: string, script?: string): RunScenarioOptions {
  const s = script ?? (flags.script !== undefined ? String(flags.script) : undefined)
  let scriptPath: string | undefined
  if (s !== undefined) {
    scriptPath = resolve(cwd, s)
    let ok = false
    try {
      ok = statSync(scriptPath).isFile()
    } catch {
      ok = false
    }
    if (!ok) throw new InvalidArgumentError(`${script !== undefined ? 'script' : '--script'} ${s}: no such file`)
  }
  const o: { -readonly [K in keyof RunScenarioOptions]: RunScenarioOptions[K] } = {}
  if (scriptPath !== undefined) o.script = scriptPath
  if (flags.engine !== undefined) o.engine = oneOf<EngineName>('--engine', flags.engine, ENGINE_NAMES)
  if (flags.dovecot !== undefined) o.dovecot = oneOf<DovecotVersion>('--dovecot', flags.dovecot, DOVECOT_VERSIONS)
  if (flags.callTimeout !== undefined) {
    const n = Number(flags.callTimeout)
    if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`--call-timeout: expected a non-negative number, got "${String(flags.callTimeout)}"`)
    o.callTimeoutMs = n
  }
  if (flags.verbose === true) o.echoLogs = true
  return o
}

// ---- running ----------------------------------------------------------------------

/** Loads and runs one scenario file; never throws for a bad file or a failing script. */
export async function runScenarioFile(file: string, options: RunScenarioOptions, cwd: string = process.cwd()): Promise<ScenarioOutcome> {
  try {
    const scenario = loadScenario(isAbsolute(file) ? file : resolve(cwd, file))
    const result = await runScenario({ ...scenario, file }, options)
    return { kind: 'result', file, result }
  } catch (err) {
    if (err instanceof InputError || err instanceof InvalidArgumentError) {
      // the ScenarioError names the absolute path: show the file as given
      const abs = isAbsolute(file) ? file : resolve(cwd, file)
      return { kind: 'error', file, code: err.code, message: err.message.replaceAll(`${abs}: `, `${file}: `) }
    }
    const failure: ScenarioFailure = { message: `crashed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}` }
    return {
      kind: 'result',
      file,
      result: { name: file, file, passed: false, failures: [failure], requests: [], calls: [], logs: [], durationMs: 0 },
    }
  }
}

// ---- reports ----------------------------------------------------------------------

const time = (ms: number): string => (ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`)

const indent = (text: string, by: string): string =>
  text
    .split('\n')
    .map((l) => (l === '' ? l : by + l))
    .join('\n')

/** One failure as text: `steps[2] store: message`, further message lines and the diff indented. */
export function formatFailure(f: ScenarioFailure): string {
  const [first = '', ...more] = f.message.split('\n')
  const lead = f.step !== undefined ? `${f.step}: ` : ''
  const lines = [lead + first, ...more.map((l) => (lead !== '' ? ' '.repeat(2) : '') + l)]
  if (f.diff !== undefined) lines.push(f.diff)
  return lines.join('\n')
}

/** The report: a line per scenario (✓/✗ name, file, time), then the failures with their diffs, the invalid files, and a total line. */
export function formatReport(outcomes: readonly ScenarioOutcome[], totalMs: number): string {
  const out: string[] = []
  for (const o of outcomes) {
    if (o.kind === 'error') out.push(`! ${o.file}: not run (invalid)`)
    else out.push(`${o.result.passed ? '✓' : '✗'} ${o.result.name}  ${o.file}  (${time(o.result.durationMs)})`)
  }
  const failed = outcomes.filter((o): o is Extract<ScenarioOutcome, { kind: 'result' }> => o.kind === 'result' && !o.result.passed)
  const errors = outcomes.filter((o): o is Extract<ScenarioOutcome, { kind: 'error' }> => o.kind === 'error')
  if (failed.length > 0) {
    out.push('', 'Failures:')
    for (const o of failed) {
      out.push('', `✗ ${o.result.name} (${o.file})`)
      for (const f of o.result.failures) out.push(indent(formatFailure(f), '  '))
    }
  }
  if (errors.length > 0) {
    out.push('', 'Invalid scenario files:')
    for (const o of errors) out.push(indent(o.message, '  '))
  }
  const passed = outcomes.filter((o) => o.kind === 'result' && o.result.passed).length
  const parts = [`${passed} passed`, `${failed.length} failed`, ...(errors.length > 0 ? [`${errors.length} invalid`] : [])]
  out.push('', `${outcomes.length} scenario${outcomes.length === 1 ? '' : 's'}: ${parts.join(', ')} (${time(totalMs)})`)
  return out.join('\n') + '\n'
}

// ---- JUnit ------------------------------------------------------------------------

/** Text for XML 1.0: markup escaped, characters XML cannot hold dropped; in attributes, line breaks and tabs as references. */
export function xmlEscape(s: string, attribute = false): string {
  // eslint-disable-next-line no-control-regex
  const clean = s.replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '')
  const out = clean.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
  return attribute ? out.replace(/"/g, '&quot;').replace(/'/g, '&apos;').replace(/\n/g, '&#10;').replace(/\r/g, '&#13;').replace(/\t/g, '&#9;') : out
}

const seconds = (ms: number): string => (ms / 1000).toFixed(3)

/** JUnit XML: one testsuite, one testcase per scenario file, <failure> for a failed scenario, <error> for an invalid file. */
export function junitXml(outcomes: readonly ScenarioOutcome[], totalMs: number): string {
  const failures = outcomes.filter((o) => o.kind === 'result' && !o.result.passed).length
  const errors = outcomes.filter((o) => o.kind === 'error').length
  const counts = `tests="${outcomes.length}" failures="${failures}" errors="${errors}" time="${seconds(totalMs)}"`
  const a = (s: string): string => xmlEscape(s, true)
  const lines = ['<?xml version="1.0" encoding="UTF-8"?>', `<testsuites name="dovepush" ${counts}>`, `  <testsuite name="dovepush scenarios" ${counts} skipped="0">`]
  for (const o of outcomes) {
    const classname = o.file.replace(/\\/g, '/').replace(/\.(ya?ml|json)$/i, '')
    if (o.kind === 'error') {
      const first = o.message.split('\n')[0] ?? ''
      lines.push(`    <testcase name="${a(o.file)}" classname="${a(classname)}" file="${a(o.file)}" time="0.000">`)
      lines.push(`      <error message="${a(first)}" type="${a(o.code)}">${xmlEscape(o.message)}</error>`)
      lines.push('    </testcase>')
      continue
    }
    const r = o.result
    const head = `    <testcase name="${a(r.name)}" classname="${a(classname)}" file="${a(o.file)}" time="${seconds(r.durationMs)}"`
    if (r.passed) {
      lines.push(`${head}/>`)
      continue
    }
    const first = r.failures[0]
    const message = first !== undefined ? `${first.step !== undefined ? `${first.step}: ` : ''}${first.message.split('\n')[0]}` : 'failed'
    const text = r.failures.map(formatFailure).join('\n\n')
    lines.push(`${head}>`)
    lines.push(`      <failure message="${a(message)}" type="${r.failures.length === 1 ? 'expectation' : `${r.failures.length} expectations`}">${xmlEscape(text)}</failure>`)
    lines.push('    </testcase>')
  }
  lines.push('  </testsuite>', '</testsuites>')
  return lines.join('\n') + '\n'
}

// ---- commands ---------------------------------------------------------------------

function usageError(io: CliIo, err: unknown): number {
  if (isDovepushError(err)) io.stderr.write(`dovepush: ${err.code}: ${err.message}\n`)
  else throw err
  return 2
}

/** `dovepush test [paths...] [--script F] [--engine E] [--dovecot V] [--junit F] [--verbose]`: the exit code. */
export async function testCommand(paths: readonly string[], flags: Record<string, unknown>, io: CliIo = processIo): Promise<number> {
  const cwd = io.cwd ?? process.cwd()
  let files: string[]
  let options: RunScenarioOptions
  try {
    options = runOptions(flags, cwd)
    files = findScenarioFiles(paths, cwd)
  } catch (err) {
    return usageError(io, err)
  }
  const started = performance.now()
  const outcomes: ScenarioOutcome[] = []
  for (const file of files) {
    const o = await runScenarioFile(file, options, cwd)
    outcomes.push(o)
    if (flags.verbose === true) io.stderr.write(`${o.kind === 'error' ? '!' : o.result.passed ? '✓' : '✗'} ${o.file}\n`)
  }
  const totalMs = performance.now() - started
  io.stdout.write(formatReport(outcomes, totalMs))
  if (flags.junit !== undefined) {
    const out = resolve(cwd, String(flags.junit))
    try {
      writeFileSync(out, junitXml(outcomes, totalMs))
    } catch (err) {
      return usageError(io, new InvalidArgumentError(`--junit ${String(flags.junit)}: cannot write: ${(err as Error).message}`))
    }
  }
  if (outcomes.some((o) => o.kind === 'error')) return 2
  return outcomes.some((o) => o.kind === 'result' && !o.result.passed) ? 1 : 0
}

/** `dovepush run SCRIPT --scenario FILE`: one scenario with that script (its log echoed to stderr), the report on stdout; the exit code. */
export async function scenarioRunCommand(script: string, file: string, flags: Record<string, unknown>, io: CliIo = processIo): Promise<number> {
  const cwd = io.cwd ?? process.cwd()
  let options: RunScenarioOptions
  try {
    if (flags.events !== undefined) throw new InvalidArgumentError('--scenario and --events: give one (a scenario makes its own transactions)')
    options = { ...runOptions({ ...flags, verbose: flags.verbose ?? true }, cwd, script) }
    const st = statSync(resolve(cwd, file), { throwIfNoEntry: false })
    if (st === undefined) throw new InvalidArgumentError(`--scenario ${file}: no such file`)
    if (!st.isFile()) throw new InvalidArgumentError(`--scenario ${file}: not a file`)
  } catch (err) {
    return usageError(io, err)
  }
  const started = performance.now()
  const o = await runScenarioFile(file, options, cwd)
  io.stdout.write(formatReport([o], performance.now() - started))
  if (o.kind === 'error') return 2
  return o.result.passed ? 0 : 1
}
