// require/loadfile/dofile on the real disk: Lua 5.4 loadlib messages
// (checked against Debian 12's lua5.4) on wasmoon; fengari (5.3) where the
// two agree.

import * as fs from 'node:fs'
import * as path from 'node:path'
import { describe, expect, it } from 'vitest'
import { LuaType } from '../../../src/lua/engine.js'
import { DEBIAN_LUA_CPATH, registerPackage } from '../../../src/lua/stdlib/package.js'
import { type ReadOther, useSnippetState } from '../../helpers/lua-snippet.js'

/** Strings as they are; other values as their type name. */
const readOther: ReadOther = (api, i, t) => (t === LuaType.STRING ? (api.tostring(api.main, i) as string) : api.typename(api.main, t))

for (const engineName of ['wasmoon', 'fengari'] as const) {
  describe(`package on ${engineName}`, () => {
    const state = useSnippetState(engineName, (api, dir) => registerPackage(api, api.main, { path: `${dir}/?.lua;${dir}/?/init.lua` }), readOther)
    const { lua } = state
    const is54 = engineName === 'wasmoon'
    const write = (name: string, text: string): void => {
      fs.mkdirSync(path.dirname(path.join(state.dir, name)), { recursive: true })
      fs.writeFileSync(path.join(state.dir, name), text)
    }

    it('sets package.path and Debian 12 package.cpath', () => {
      expect(lua(`return package.path, package.cpath`)).toEqual([`${state.dir}/?.lua;${state.dir}/?/init.lua`, DEBIAN_LUA_CPATH])
    })

    it('requires a module from the path once, with its name and file as arguments', () => {
      write('mod.lua', '#!/usr/bin/lua\nloads = (loads or 0) + 1\nreturn { name = ..., file = select(2, ...), line = debug.getinfo(1, "l").currentline }')
      write('sub/init.lua', 'return "init"')
      expect(lua(`local m = require("mod") local again = require("mod")
        return m.name, m.file, m.line, again == m, package.loaded.mod == m, loads`))
        .toEqual(['mod', `${state.dir}/mod.lua`, 3, true, true, 1])
      expect(lua(`return (require("sub"))`)).toEqual(['init'])
      expect(lua(`package.preload.pre = function(name) return "preloaded " .. name end return require("pre")`)[0]).toBe('preloaded pre')
    })

    it('lists every file tried when a module is not found', () => {
      const tried = (...files: string[]): string => files.map((f) => `\n\tno file '${f}'`).join('')
      const cpath = DEBIAN_LUA_CPATH.split(';')
      expect(lua(`return pcall(require, "no.such")`)).toEqual([
        false,
        "module 'no.such' not found:\n\tno field package.preload['no.such']" +
          tried(`${state.dir}/no/such.lua`, `${state.dir}/no/such/init.lua`) +
          tried(...cpath.map((p) => p.replace('?', 'no/such'))) +
          tried(...cpath.map((p) => p.replace('?', 'no'))),
      ])
    })

    it('says a C module was found but cannot be loaded', () => {
      write('cmod.so', '')
      expect(lua(`package.cpath = ... .. "/?.so" return pcall(require, "cmod")`)).toEqual([
        false,
        `module 'cmod' not found:\n\tno field package.preload['cmod']\n\tno file '${state.dir}/cmod.lua'\n\tno file '${state.dir}/cmod/init.lua'` +
          `\n\tno C modules in dovepush: '${state.dir}/cmod.so'`,
      ])
    })

    it("gives Lua's error loading module for a syntax error", () => {
      write('bad.lua', 'return {\n x = = 1\n}')
      expect(lua(`return pcall(require, "bad")`)).toEqual([
        false,
        `error loading module 'bad' from file '${state.dir}/bad.lua':\n\t${state.dir}/bad.lua:2: unexpected symbol near '='`,
      ])
    })

    it.runIf(is54)('searchpath formats its misses as Lua 5.4', () => {
      write('a/b.y', '')
      expect(lua(`return package.searchpath("a.b", "?.x;" .. ... .. "/?.y")`)).toEqual([`${state.dir}/a/b.y`])
      expect(lua(`return package.searchpath("a.b", "?.x;;?.y", ".", "_")`)).toEqual([null, "no file 'a_b.x'\n\tno file ''\n\tno file 'a_b.y'"])
    })

    it('loadfile and dofile read real files, skip a # line and take an env', () => {
      write('chunk.lua', '# comment line\nlocal a = ...\nreturn a, x, debug.getinfo(1, "l").currentline')
      write('bad.lua', 'return {\n x = = 1\n}')
      expect(lua(`return loadfile(... .. "/chunk.lua")(7)`)).toEqual([7, null, 3])
      expect(lua(`x = "global" return loadfile(... .. "/chunk.lua", "t", { x = 5, debug = debug })(1)`)).toEqual([1, 5, 3])
      expect(lua(`return loadfile(... .. "/chunk.lua", "b")`)).toEqual([null, "attempt to load a text chunk (mode is 'b')"])
      expect(lua(`return loadfile(... .. "/nope.lua")`)).toEqual([null, `cannot open ${state.dir}/nope.lua: No such file or directory`])
      expect(lua(`return loadfile(...)`)).toEqual([null, `cannot read ${state.dir}: Is a directory`])
      expect(lua(`return loadfile(... .. "/bad.lua")`)).toEqual([null, `${state.dir}/bad.lua:2: unexpected symbol near '='`])
      expect(lua(`return dofile(... .. "/chunk.lua")`)).toEqual([null, "global", 3])
      expect(lua(`return pcall(dofile, ... .. "/nope.lua")`)).toEqual([false, `cannot open ${state.dir}/nope.lua: No such file or directory`])
      expect(lua(`return pcall(dofile, ... .. "/bad.lua")`)).toEqual([false, `${state.dir}/bad.lua:2: unexpected symbol near '='`])
    })
  })
}
