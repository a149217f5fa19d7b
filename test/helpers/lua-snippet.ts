// Runs a Lua snippet in a fresh state (wasmoon or fengari) with a temp
// directory as its `...`, and reads its results back as plain JS values.

import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterEach, beforeAll, beforeEach } from 'vitest'
import { createEngine, type EngineName, type LuaApi, type LuaEngine, LuaType, type LuaTypeTag } from '../../src/lua/engine.js'

export type Value = null | boolean | number | string

/** Converts a stack slot that is not nil, a boolean or a number (the per-test-file part of reading results). */
export type ReadOther = (api: LuaApi, i: number, t: LuaTypeTag) => Value

/** Runs `code` with `...` = arg on api.main; returns its results (nil/boolean/number as JS values, the rest through `other`). */
export function runSnippet(api: LuaApi, code: string, arg: string, other: ReadOther): Value[] {
  const L = api.main
  const base = api.gettop(L)
  if (api.load(L, new TextEncoder().encode(code), '=test', 't') !== 0) throw new Error(api.tostring(L, -1))
  api.pushstring(L, arg)
  if (api.pcall(L, 1, -1, 0) !== 0) {
    const msg = api.tostring(L, -1)
    api.settop(L, base)
    throw new Error(msg)
  }
  const out: Value[] = []
  for (let i = base + 1; i <= api.gettop(L); i++) {
    const t = api.type(L, i)
    if (t === LuaType.NIL) out.push(null)
    else if (t === LuaType.BOOLEAN) out.push(api.toboolean(L, i))
    else if (t === LuaType.NUMBER) out.push(api.tonumber(L, i))
    else out.push(other(api, i, t))
  }
  api.settop(L, base)
  return out
}

export interface SnippetState {
  /** The current test's temp directory (passed to every snippet as `...`). */
  readonly dir: string
  /** Runs a snippet in the current test's state. */
  lua(code: string): Value[]
}

/** Registers hooks giving each test a fresh state (set up by `register`) and a fresh temp dir, both removed after the test. */
export function useSnippetState(engineName: EngineName, register: (api: LuaApi, dir: string) => void, other: ReadOther): SnippetState {
  let engine: LuaEngine
  let api: LuaApi
  let dir: string
  beforeAll(async () => {
    engine = await createEngine(engineName)
  })
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dovepush-'))
    api = engine.newState()
    register(api, dir)
  })
  afterEach(() => {
    api.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })
  return {
    get dir() {
      return dir
    },
    lua: (code) => runSnippet(api, code, dir, other),
  }
}
