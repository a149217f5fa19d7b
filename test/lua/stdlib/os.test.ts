// os on the real machine: Lua 5.4 loslib results (checked against Debian
// 12's lua5.4), and os.exit refused without killing the state.

import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { describe, expect, it } from 'vitest'
import { registerOs } from '../../../src/lua/stdlib/os.js'
import { type ReadOther, useSnippetState } from '../../helpers/lua-snippet.js'

/** Every non-nil/boolean/number value (strings too) through __tostring. */
const readOther: ReadOther = (api, i) => api.tostringmeta(api.main, i)

for (const engineName of ['wasmoon', 'fengari'] as const) {
  describe(`os on ${engineName}`, () => {
    const state = useSnippetState(engineName, (api) => registerOs(api, api.main, { env: { DOVEPUSH_TEST: 'yes it is', EMPTY: '' } }), readOther)
    const { lua } = state

    it('reads the environment it was given', () => {
      expect(lua(`return os.getenv("DOVEPUSH_TEST"), os.getenv("EMPTY"), os.getenv("PATH")`)).toEqual(['yes it is', '', null])
      expect(lua(`return pcall(os.getenv)`)[0]).toBe(false)
    })

    it('removes files and empty directories, with luaL_fileresult failures', () => {
      fs.writeFileSync(path.join(state.dir, 'f'), 'x')
      fs.mkdirSync(path.join(state.dir, 'empty'))
      fs.mkdirSync(path.join(state.dir, 'full'))
      fs.writeFileSync(path.join(state.dir, 'full', 'g'), 'y')
      expect(lua(`local d = ... return os.remove(d .. "/f"), os.remove(d .. "/empty")`)).toEqual([true, true])
      expect(fs.existsSync(path.join(state.dir, 'f'))).toBe(false)
      expect(fs.existsSync(path.join(state.dir, 'empty'))).toBe(false)
      expect(lua(`return os.remove(... .. "/nope")`)).toEqual([null, `${state.dir}/nope: No such file or directory`, 2])
      expect(lua(`return os.remove(... .. "/full")`)).toEqual([null, `${state.dir}/full: Directory not empty`, 39])
    })

    it('renames files; a failure carries no file name (loslib os_rename)', () => {
      fs.writeFileSync(path.join(state.dir, 'a'), 'content')
      expect(lua(`local d = ... return os.rename(d .. "/a", d .. "/b")`)).toEqual([true])
      expect(fs.readFileSync(path.join(state.dir, 'b'), 'utf8')).toBe('content')
      expect(lua(`local d = ... return os.rename(d .. "/a", d .. "/c")`)).toEqual([null, 'No such file or directory', 2])
    })

    it('tmpname creates a new empty file, like mkstemp', () => {
      const [name] = lua(`return os.tmpname()`) as [string]
      try {
        expect(name.startsWith(path.join(os.tmpdir(), 'lua_'))).toBe(true)
        expect(fs.statSync(name).size).toBe(0)
        expect(lua(`return os.tmpname() ~= os.tmpname()`)).toEqual([true])
      } finally {
        fs.rmSync(name, { force: true })
      }
    })

    it('executes shell commands with Lua 5.4 results', () => {
      expect(lua(`return os.execute()`)).toEqual([true])
      expect(lua(`return os.execute("exit 0")`)).toEqual([true, 'exit', 0])
      expect(lua(`return os.execute("exit 3")`)).toEqual([null, 'exit', 3])
      expect(lua(`return os.execute("kill -9 $$")`)).toEqual([null, 'signal', 9])
      expect(lua(`return os.execute("echo hi > '" .. ... .. "/out'")`)).toEqual([true, 'exit', 0])
      expect(fs.readFileSync(path.join(state.dir, 'out'), 'utf8')).toBe('hi\n')
    })

    it('refuses os.exit with an error and the state goes on', () => {
      expect(lua(`return pcall(os.exit, 0)`)).toEqual([
        false,
        'os.exit() would end the whole Dovecot mail process; dovepush does not stop for it',
      ])
      expect(() => lua(`os.exit(1)`)).toThrow('test:1: os.exit() would end the whole Dovecot mail process')
      expect(lua(`return 1 + 1, type(os.time()), type(os.clock()), type(os.date())`)).toEqual([2, 'number', 'number', 'string'])
    })
  })
}
