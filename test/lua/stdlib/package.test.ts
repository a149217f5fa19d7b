// require/loadfile/dofile on the real disk: Lua 5.4 loadlib messages
// (checked against Debian 12's lua5.4) on wasmoon; fengari (5.3) where the
// two agree.

import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { createEngine, type LuaApi, type LuaEngine, LuaType } from '../../../src/lua/engine.js'
import { DEBIAN_LUA_CPATH, registerPackage } from '../../../src/lua/stdlib/package.js'

type Value = null | boolean | number | string

function run(api: LuaApi, code: string, dir: string): Value[] {
  const L = api.main
  const base = api.gettop(L)
  if (api.load(L, new TextEncoder().encode(code), '=test', 't') !== 0) throw new Error(api.tostring(L, -1))
  api.pushstring(L, dir)
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
    else if (t === LuaType.STRING) out.push(api.tostring(L, i) as string)
    else out.push(api.typename(L, t))
  }
  api.settop(L, base)
  return out
}

for (const engineName of ['wasmoon', 'fengari'] as const) {
  describe(`package on ${engineName}`, () => {
    let engine: LuaEngine
    let api: LuaApi
    let dir: string
    const lua = (code: string): Value[] => run(api, code, dir)
    const is54 = engineName === 'wasmoon'
    const write = (name: string, text: string): void => {
      fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true })
      fs.writeFileSync(path.join(dir, name), text)
    }

    beforeAll(async () => {
      engine = await createEngine(engineName)
    })
    beforeEach(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dovepush-'))
      api = engine.newState()
      registerPackage(api, api.main, { path: `${dir}/?.lua;${dir}/?/init.lua` })
    })
    afterEach(() => {
      api.close()
      fs.rmSync(dir, { recursive: true, force: true })
    })

    it('sets package.path and Debian 12 package.cpath', () => {
      expect(lua(`return package.path, package.cpath`)).toEqual([`${dir}/?.lua;${dir}/?/init.lua`, DEBIAN_LUA_CPATH])
    })

    it('requires a module from the path once, with its name and file as arguments', () => {
      write('mod.lua', '#!/usr/bin/lua\nloads = (loads or 0) + 1\nreturn { name = ..., file = select(2, ...), line = debug.getinfo(1, "l").currentline }')
      write('sub/init.lua', 'return "init"')
      expect(lua(`local m = require("mod") local again = require("mod")
        return m.name, m.file, m.line, again == m, package.loaded.mod == m, loads`))
        .toEqual(['mod', `${dir}/mod.lua`, 3, true, true, 1])
      expect(lua(`return (require("sub"))`)).toEqual(['init'])
      expect(lua(`package.preload.pre = function(name) return "preloaded " .. name end return require("pre")`)[0]).toBe('preloaded pre')
    })

    it('lists every file tried when a module is not found', () => {
      const tried = (...files: string[]): string => files.map((f) => `\n\tno file '${f}'`).join('')
      const cpath = DEBIAN_LUA_CPATH.split(';')
      expect(lua(`return pcall(require, "no.such")`)).toEqual([
        false,
        "module 'no.such' not found:\n\tno field package.preload['no.such']" +
          tried(`${dir}/no/such.lua`, `${dir}/no/such/init.lua`) +
          tried(...cpath.map((p) => p.replace('?', 'no/such'))) +
          tried(...cpath.map((p) => p.replace('?', 'no'))),
      ])
    })

    it('says a C module was found but cannot be loaded', () => {
      write('cmod.so', '')
      expect(lua(`package.cpath = ... .. "/?.so" return pcall(require, "cmod")`)).toEqual([
        false,
        `module 'cmod' not found:\n\tno field package.preload['cmod']\n\tno file '${dir}/cmod.lua'\n\tno file '${dir}/cmod/init.lua'` +
          `\n\tno C modules in dovepush: '${dir}/cmod.so'`,
      ])
    })

    it("gives Lua's error loading module for a syntax error", () => {
      write('bad.lua', 'return {\n x = = 1\n}')
      expect(lua(`return pcall(require, "bad")`)).toEqual([
        false,
        `error loading module 'bad' from file '${dir}/bad.lua':\n\t${dir}/bad.lua:2: unexpected symbol near '='`,
      ])
    })

    it.runIf(is54)('searchpath formats its misses as Lua 5.4', () => {
      write('a/b.y', '')
      expect(lua(`return package.searchpath("a.b", "?.x;" .. ... .. "/?.y")`)).toEqual([`${dir}/a/b.y`])
      expect(lua(`return package.searchpath("a.b", "?.x;;?.y", ".", "_")`)).toEqual([null, "no file 'a_b.x'\n\tno file ''\n\tno file 'a_b.y'"])
    })

    it('loadfile and dofile read real files, skip a # line and take an env', () => {
      write('chunk.lua', '# comment line\nlocal a = ...\nreturn a, x, debug.getinfo(1, "l").currentline')
      write('bad.lua', 'return {\n x = = 1\n}')
      expect(lua(`return loadfile(... .. "/chunk.lua")(7)`)).toEqual([7, null, 3])
      expect(lua(`x = "global" return loadfile(... .. "/chunk.lua", "t", { x = 5, debug = debug })(1)`)).toEqual([1, 5, 3])
      expect(lua(`return loadfile(... .. "/chunk.lua", "b")`)).toEqual([null, "attempt to load a text chunk (mode is 'b')"])
      expect(lua(`return loadfile(... .. "/nope.lua")`)).toEqual([null, `cannot open ${dir}/nope.lua: No such file or directory`])
      expect(lua(`return loadfile(...)`)).toEqual([null, `cannot read ${dir}: Is a directory`])
      expect(lua(`return loadfile(... .. "/bad.lua")`)).toEqual([null, `${dir}/bad.lua:2: unexpected symbol near '='`])
      expect(lua(`return dofile(... .. "/chunk.lua")`)).toEqual([null, "global", 3])
      expect(lua(`return pcall(dofile, ... .. "/nope.lua")`)).toEqual([false, `cannot open ${dir}/nope.lua: No such file or directory`])
      expect(lua(`return pcall(dofile, ... .. "/bad.lua")`)).toEqual([false, `${dir}/bad.lua:2: unexpected symbol near '='`])
    })
  })
}
