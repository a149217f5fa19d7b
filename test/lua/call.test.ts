// The call layer: calls on a reused thread, the sentinel-yield that lets a
// host function wait for a JS promise (what dovecot.http's submit() needs),
// the per-call time limit and the memory cap.

import { describe, expect, it } from 'vitest'
import pino from 'pino'
import { createEnvironment } from '../../src/lua/environment.js'
import type { LuaThread } from '../../src/lua/engine.js'
import { engine as getEngine } from '../helpers/run-script.js'

const silent = pino({ level: 'silent' })

async function setup(engineName: 'wasmoon' | 'fengari', o: { callTimeoutMs?: number; memoryLimit?: number } = {}) {
  const env = createEnvironment({
    engine: await getEngine(engineName),
    scriptPath: 'test.lua',
    dovecot: '2.3',
    log: silent,
    debug: false,
    callTimeoutMs: o.callTimeoutMs ?? 0,
    memoryLimit: o.memoryLimit ?? 0,
  })
  const { api, L, caller } = env
  // wait(v): suspends the script until a timer resolves, then returns v .. "!"
  let waits = 0
  api.pushfunction(L, (WL) => {
    const v = api.tostring(WL, 1) ?? ''
    waits++
    return caller.suspend(WL, 'wait()', new Promise((resolve) => setTimeout(() => resolve((RL: LuaThread) => (api.pushstring(RL, v + '!'), 1)), 1)))
  }, 'wait')
  api.setglobal(L, 'wait')
  const run = async (source: string): Promise<{ ok: boolean; value: string }> => {
    if (api.load(L, new TextEncoder().encode(source), '=test', 't') !== 0) throw new Error(api.tostring(L, -1))
    const ref = api.ref(L)
    const outcome = await caller.call((T) => (api.pushref(T, ref), 0))
    api.unref(L, ref)
    if (!outcome.ok) return { ok: false, value: outcome.message }
    return { ok: true, value: outcome.nresults > 0 ? api.tostringmeta(outcome.thread, 1) : '' }
  }
  return { env, api, caller, run, waits: () => waits }
}

for (const engineName of ['wasmoon', 'fengari'] as const) {
  describe(`LuaCaller (${engineName})`, () => {
    it('a call that never waits completes synchronously', async () => {
      const { env, api } = await setup(engineName)
      const { L, caller } = env
      api.load(L, new TextEncoder().encode('return 1 + 1'), '=t', 't')
      const ref = api.ref(L)
      const outcome = caller.call((T) => (api.pushref(T, ref), 0))
      expect(outcome).not.toBeInstanceOf(Promise)
      expect((outcome as { ok: boolean }).ok).toBe(true)
    })

    it('a host function waits for a promise and the script sees a plain return value', async () => {
      const { run, waits } = await setup(engineName)
      expect(await run('local a = wait("x"); local b = wait("y"); return a .. b')).toEqual({ ok: true, value: 'x!y!' })
      expect(waits()).toBe(2)
    })

    it('waits inside pcall', async () => {
      const { run } = await setup(engineName)
      expect(await run('local ok, v = pcall(wait, "p"); return tostring(ok) .. v')).toEqual({ ok: true, value: 'truep!' })
    })

    it('waits inside coroutines the script made (resume and wrap), which still work as coroutines', async () => {
      const { run } = await setup(engineName)
      const src = `
        local co = coroutine.create(function(a)
          local x = wait(a)
          local y = coroutine.yield(x .. "|yielded")
          return wait(y)
        end)
        local ok1, r1 = coroutine.resume(co, "c")
        local ok2, r2 = coroutine.resume(co, "d")
        local gen = coroutine.wrap(function() coroutine.yield(wait("w")); return "done" end)
        return table.concat({ tostring(ok1), r1, tostring(ok2), r2, gen(), gen(), coroutine.status(co) }, ",")`
      expect(await run(src)).toEqual({ ok: true, value: 'true,c!|yielded,true,d!,w!,done,dead' })
    })

    it('waits inside a metamethod', async () => {
      const { run } = await setup(engineName)
      expect(await run('local t = setmetatable({}, { __index = function(_, k) return wait(k) end }); return t.m')).toEqual({ ok: true, value: 'm!' })
    })

    it('gives a clear Lua error where Lua cannot suspend (a table.sort comparator)', async () => {
      const { run } = await setup(engineName)
      const r = await run('local ok, err = pcall(table.sort, {3, 1, 2}, function(a, b) wait("s"); return a < b end); return err')
      expect(r.ok).toBe(true)
      expect(r.value).toContain('wait() cannot wait here: it was called from a function Lua cannot suspend (such as a table.sort comparator or a string.gsub callback)')
    })

    it('a plain coroutine.yield at the top of a call is an error, as under lua_pcall', async () => {
      const { run } = await setup(engineName)
      expect(await run('coroutine.yield(1)')).toEqual({ ok: false, value: 'attempt to yield from outside a coroutine' })
    })

    it('stops a runaway call after the call timeout, and the state keeps working', async () => {
      const { run } = await setup(engineName, { callTimeoutMs: 50 })
      const t0 = performance.now()
      const r = await run('while true do end')
      expect(r.ok).toBe(false)
      expect(r.value).toMatch(/^dovepush: script call exceeded the call timeout of 50 ms\nstack traceback:\n\ttest:1: in main chunk/)
      expect(performance.now() - t0).toBeLessThan(5000) // it stopped (a loose bound, not a timing test)
      expect(await run('return "alive"')).toEqual({ ok: true, value: 'alive' })
    })

    it('a runaway loop that catches the timeout error with pcall is stopped all the same', async () => {
      const { run } = await setup(engineName, { callTimeoutMs: 50 })
      const r = await run('while true do pcall(function() while true do end end) end')
      expect(r.ok).toBe(false)
      expect(r.value).toContain('exceeded the call timeout of 50 ms')
    })
  })
}

describe('memory cap (wasmoon)', () => {
  it('an allocation past --memory-limit fails with "not enough memory" and the state survives', async () => {
    const { run, env } = await setup('wasmoon', { memoryLimit: 8 * 1024 * 1024 })
    const r = await run('local t = {} for i = 1, 1e7 do t[i] = ("x"):rep(100) .. i end return #t')
    expect(r).toEqual({ ok: false, value: 'not enough memory' })
    expect(await run('collectgarbage() return "alive"')).toEqual({ ok: true, value: 'alive' })
    expect(env.api.memoryUsed()).toBeLessThan(8 * 1024 * 1024)
  })
})

