// Runs a script in-process through the real Host and captures the log as
// parsed JSON lines (pino's test `sink()` idea), so tests assert exact fields.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Settings } from '../../src/config/settings.js'
import type { TransactionUnit } from '../../src/events/types.js'
import type { Host } from '../../src/host/host.js'
import { createLuaHost } from '../../src/drivers/lua.js'
import { createEngine, type EngineName, type LuaEngine } from '../../src/lua/engine.js'
import type { DovecotVersion } from '../../src/lua/env.js'
import { createLogger } from '../../src/log/logger.js'

export interface LogLine {
  level: number
  msg: string
  [k: string]: unknown
}

export const LEVEL = { debug: 20, info: 30, warn: 40, error: 50 } as const

const engines = new Map<EngineName, Promise<LuaEngine>>()
export function engine(name: EngineName): Promise<LuaEngine> {
  let e = engines.get(name)
  if (e === undefined) {
    e = createEngine(name)
    engines.set(name, e)
  }
  return e
}

export interface RunScriptOptions {
  engine?: EngineName
  dovecot?: DovecotVersion
  settings?: Settings
  callTimeoutMs?: number
  memoryLimit?: number
  /** When false, sessions stay open (call host.close() yourself). */
  close?: boolean
}

export interface ScriptRun {
  host: Host
  scriptPath: string
  logs: LogLine[]
  /** Log messages at or above a level. */
  messages(level?: number): string[]
}

/** Creates a Host on a script given as a path or as Lua source (written to a temp file). */
export async function makeHost(script: { path: string } | { source: string }, o: RunScriptOptions = {}): Promise<ScriptRun & { cleanup(): void }> {
  let dir: string | undefined
  let scriptPath: string
  if ('path' in script) scriptPath = script.path
  else {
    dir = mkdtempSync(join(tmpdir(), 'dovepush-test-'))
    scriptPath = join(dir, 'script.lua')
    writeFileSync(scriptPath, script.source)
  }
  const logs: LogLine[] = []
  const log = createLogger({ format: 'json', level: 'debug', destination: { write: (s: string) => void logs.push(JSON.parse(s) as LogLine) } })
  const host = createLuaHost({
    scriptPath,
    engine: await engine(o.engine ?? 'wasmoon'),
    dovecot: o.dovecot ?? '2.3',
    settings: o.settings ?? {},
    log,
    callTimeoutMs: o.callTimeoutMs ?? 5000,
    memoryLimit: o.memoryLimit ?? 64 * 1024 * 1024,
    defaultService: 'imap',
    maxSessions: 100,
  })
  return {
    host,
    logs,
    scriptPath,
    messages: (level = LEVEL.debug) => logs.filter((l) => l.level >= level).map((l) => l.msg),
    cleanup: () => {
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** Runs units through a fresh Host and closes it. */
export async function runScript(script: { path: string } | { source: string }, units: TransactionUnit[], o: RunScriptOptions = {}): Promise<ScriptRun> {
  const h = await makeHost(script, o)
  try {
    for (const u of units) await h.host.submit(u)
    if (o.close !== false) await h.host.close()
  } finally {
    if (o.close !== false) h.cleanup()
  }
  return h
}

/** A one-event committed transaction. */
export function txn(events: TransactionUnit extends never ? never : Array<Record<string, unknown>>, extra: Record<string, unknown> = {}): TransactionUnit {
  return { user: 'alice@example.test', committed: true, events, ...extra } as unknown as TransactionUnit
}
