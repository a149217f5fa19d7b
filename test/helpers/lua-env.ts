// A real session environment (what a script gets) for tests that run Lua
// chunks directly: made before a file's tests, closed after them.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { afterAll, beforeAll } from 'vitest'
import type { EngineName } from '../../src/lua/engine.js'
import { createEnvironment, type LuaEnvironment } from '../../src/lua/environment.js'
import { engine } from './run-script.js'

const encoder = new TextEncoder()

/** Registers hooks that create an environment (script in a fresh temp dir) and hand it over through `set`. */
export function useEnvironment(engineName: EngineName, prefix: string, set: (env: LuaEnvironment, dir: string) => void): void {
  let env: LuaEnvironment | undefined
  let dir: string | undefined
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), prefix))
    env = createEnvironment({ engine: await engine(engineName), scriptPath: join(dir, 'script.lua'), dovecot: '2.3', log: pino({ level: 'silent' }), debug: false, callTimeoutMs: 0, memoryLimit: 0 })
    set(env, dir)
  })
  afterAll(() => {
    env?.api.close()
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })
}

/** Runs `prelude` + `src` on the main thread and returns the results through tostring; a Lua error throws. */
export function runChunk(env: LuaEnvironment, src: string, prelude = ''): string[] {
  const { api, L } = env
  const base = api.gettop(L)
  if (api.load(L, encoder.encode(prelude === '' ? src : `${prelude}\n${src}`), '=t', 't') !== 0) throw new Error(api.tostring(L, -1))
  const status = api.pcall(L, 0, -1, 0)
  const out: string[] = []
  for (let i = base + 1; i <= api.gettop(L); i++) out.push(api.tostringmeta(L, i))
  api.settop(L, base)
  if (status !== 0) throw new Error(out[0])
  return out
}
