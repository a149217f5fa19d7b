// Running a scenario (src/sources/scenario.ts loads it): a TestHost with its
// settings, the steps in order, and the expectations checked.
//
//   const r = await runScenario(loadScenario('fixtures/scenarios/webhook.yaml'), { engine: 'fengari' })
//   r.passed, r.failures      // never throws for a failing script

import { resolve } from 'node:path'
import { InvalidArgumentError, MailActionError, ScriptLoadError } from '../errors.js'
import type { TransactionUnit } from '../events/types.js'
import type { EngineName } from '../lua/engine.js'
import type { DovecotVersion } from '../lua/env.js'
import type { ActionResult } from '../mailstore/actions.js'
import type { Scenario, StepAction } from '../sources/scenario.js'
import { checkExpectations, type Mismatch } from './expect.js'
import { createTestHost, type LogLine, type ScriptCall, type SinkRequest, type TestHost } from './index.js'

export interface ScenarioFailure {
  /** The step's label, absent for the scenario-level `expect` and for setup. */
  readonly step?: string
  readonly message: string
  readonly diff?: string
}

export interface ScenarioResult {
  readonly name: string
  readonly file: string
  readonly passed: boolean
  readonly failures: readonly ScenarioFailure[]
  readonly requests: readonly SinkRequest[]
  readonly calls: readonly ScriptCall[]
  readonly logs: readonly LogLine[]
  readonly durationMs: number
}

export interface RunScenarioOptions {
  /** The script; wins over the scenario's `script`. */
  readonly script?: string
  readonly engine?: EngineName
  /** Wins over the scenario's `dovecot`. */
  readonly dovecot?: DovecotVersion
  /** Print the script's log lines to stderr. */
  readonly echoLogs?: boolean
  /** Per-call Lua limit, ms (default 5000). */
  readonly callTimeoutMs?: number
  /** Told of every transaction the actions hand the host (the conformance run compares them with a real Dovecot's). */
  readonly onTransaction?: (unit: TransactionUnit) => void
}

/** Runs one action on the host: undefined when done, the refusal text when Dovecot would have refused it. */
async function perform(t: TestHost, a: StepAction): Promise<string | undefined> {
  let r: ActionResult | undefined
  try {
    switch (a.kind) {
      case 'deliver':
        r = await t.deliver(a.args)
        break
      case 'login':
        r = await t.login(a.args)
        break
      case 'logout':
        await t.logout(a.args)
        break
      case 'select':
        r = await t.select(a.args)
        break
      case 'append':
        r = await t.append(a.args)
        break
      case 'store':
        r = await t.storeFlags(a.args)
        break
      case 'expunge':
        r = await t.expunge(a.args)
        break
      case 'copy':
        r = await t.copy(a.args)
        break
      case 'move':
        r = await t.move(a.args)
        break
      case 'create':
        r = await t.create(a.args)
        break
      case 'rename':
        r = await t.rename(a.args)
        break
      case 'delete':
        r = await t.delete(a.args)
        break
      case 'subscribe':
        r = await t.subscribe(a.args)
        break
      case 'unsubscribe':
        r = await t.unsubscribe(a.args)
        break
    }
  } catch (err) {
    if (err instanceof MailActionError) return err.message
    throw err
  }
  return r !== undefined && !r.ok ? (r.error ?? 'refused') : undefined
}

const asFailure = (m: Mismatch, step?: string): ScenarioFailure => ({ ...(step !== undefined ? { step } : {}), message: m.message, ...(m.diff !== undefined ? { diff: m.diff } : {}) })

/**
 * Runs a scenario: a TestHost with its settings, the steps in order (a
 * step's `expect` checked right after it, on what it alone produced), then
 * every session ended and the scenario's `expect` checked. A step refused
 * without `fails: true`, or an action that throws, stops the run (later steps
 * and the scenario's `expect` are skipped). The host is always closed.
 * Throws InvalidArgumentError when there is no script; a script that does
 * not compile is a failure of the scenario.
 */
export async function runScenario(scenario: Scenario, options: RunScenarioOptions = {}): Promise<ScenarioResult> {
  const started = performance.now()
  const script = options.script !== undefined ? resolve(options.script) : scenario.script
  if (script === undefined) throw new InvalidArgumentError(`${scenario.file}: no script: name one with "script" in the scenario, or give one on the command line`)
  const failures: ScenarioFailure[] = []
  const result = (t: TestHost | undefined): ScenarioResult => ({
    name: scenario.name,
    file: scenario.file,
    passed: failures.length === 0,
    failures,
    requests: t?.requests ?? [],
    calls: t?.calls ?? [],
    logs: t?.logs ?? [],
    durationMs: performance.now() - started,
  })
  let t: TestHost
  try {
    t = await createTestHost({
      script,
      settings: scenario.settings,
      users: scenario.users,
      dovecot: options.dovecot ?? scenario.dovecot ?? '2.3',
      ...(options.engine !== undefined ? { engine: options.engine } : {}),
      ...(options.echoLogs !== undefined ? { echoLogs: options.echoLogs } : {}),
      ...(options.callTimeoutMs !== undefined ? { callTimeoutMs: options.callTimeoutMs } : {}),
    })
  } catch (err) {
    if (!(err instanceof ScriptLoadError)) throw err
    failures.push({ message: `script: ${err.message}` })
    return result(undefined)
  }

  const onTransaction = options.onTransaction
  if (onTransaction !== undefined) {
    const submit = t.host.submit.bind(t.host)
    t.host.submit = (unit) => {
      onTransaction(unit)
      return submit(unit)
    }
  }
  let stopped = false
  try {
    for (const step of scenario.steps) {
      const r0 = t.requests.length
      const c0 = t.calls.length
      const l0 = t.logs.length
      let refused: string | undefined
      try {
        refused = await perform(t, step.action)
      } catch (err) {
        failures.push({ step: step.label, message: `${step.action.kind} failed: ${(err as Error).message}` })
        stopped = true
      }
      if (!stopped) {
        if (step.fails && refused === undefined) failures.push({ step: step.label, message: `expected the ${step.action.kind} to be refused (fails: true), but it succeeded` })
        else if (!step.fails && refused !== undefined) {
          failures.push({ step: step.label, message: `${step.action.kind} refused: ${refused}` })
          stopped = true
        } else if (step.expect !== undefined) {
          const got = { requests: t.requests.slice(r0), calls: t.calls.slice(c0), logs: t.logs.slice(l0), sinkUrl: t.sinkUrl }
          failures.push(...checkExpectations(got, step.expect).map((m) => asFailure(m, step.label)))
        }
      }
      if (stopped) {
        const rest = scenario.steps.length - step.index - 1
        if (rest > 0 || scenario.expect !== undefined) failures.push({ step: step.label, message: `stopped here: ${rest > 0 ? `${rest} later step${rest === 1 ? '' : 's'} and ` : ''}the scenario's expect not run` })
        break
      }
    }
  } finally {
    try {
      await t.close()
    } catch (err) {
      failures.push({ message: `closing the sessions failed: ${(err as Error).message}` })
    }
  }
  if (!stopped && scenario.expect !== undefined) failures.push(...checkExpectations(t, scenario.expect).map((m) => asFailure(m)))
  return result(t)
}
