// The wasmoon engine's lua_Alloc in WebAssembly (src/lua/wasm-alloc.ts):
// it validates, gets installed, and counts and caps memory per state.

import { describe, expect, it } from 'vitest'
import { LuaStatus } from '../../src/lua/engine.js'
import { engine } from '../helpers/run-script.js'

describe('the WebAssembly allocator (wasmoon)', () => {
  it('is the allocator of wasmoon states (not the JS fallback)', async () => {
    const e = await engine('wasmoon')
    expect((e as { allocator?: string }).allocator).toBe('wasm')
  })

  it('counts bytes in use per state, and refuses growth past the limit only while script code runs', async () => {
    const api = (await engine('wasmoon')).newState({ memoryLimit: 4 * 1024 * 1024 })
    const other = (await engine('wasmoon')).newState({})
    try {
      const L = api.main
      const base = api.memoryUsed()
      expect(base).toBeGreaterThan(10_000)
      // outside a resume the cap does not apply (a failure there would abort the module)
      api.load(L, new TextEncoder().encode('big = string.rep("x", 5 * 1024 * 1024)'), '=t', 't')
      api.call(L, 0, 0)
      expect(api.memoryUsed()).toBeGreaterThan(base + 5 * 1024 * 1024)
      expect(other.memoryUsed()).toBeLessThan(base * 2) // another state's count is its own
      api.load(L, new TextEncoder().encode('big = nil collectgarbage()'), '=t', 't')
      api.call(L, 0, 0)
      expect(api.memoryUsed()).toBeLessThan(base + 100_000)
      // inside one it does: Lua's "not enough memory"
      const T = api.newthread(L)
      api.load(T, new TextEncoder().encode('local t = {} for i = 1, 100 do t[i] = string.rep("y", 100000 + i) end'), '=t', 't')
      expect(api.resume(T, null, 0)).toBe(LuaStatus.ERRMEM)
      expect(api.tostring(T, -1)).toBe('not enough memory')
    } finally {
      api.close()
      other.close()
    }
  })
})
