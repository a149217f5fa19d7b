// io on the real disk: Lua 5.4 liolib results and messages (checked against
// Debian 12's lua5.4), on wasmoon; the engine-neutral part on fengari too.

import * as fs from 'node:fs'
import * as path from 'node:path'
import { describe, expect, it } from 'vitest'
import { LuaType } from '../../../src/lua/engine.js'
import { formatG14, registerIo } from '../../../src/lua/stdlib/io.js'
import { type ReadOther, useSnippetState } from '../../helpers/lua-snippet.js'

/** Strings as latin1, one char per byte; other values through __tostring. */
const readOther: ReadOther = (api, i, t) =>
  t === LuaType.STRING ? Buffer.from(api.tobytes(api.main, i) as Uint8Array).toString('latin1') : api.tostringmeta(api.main, i)

for (const engineName of ['wasmoon', 'fengari'] as const) {
  describe(`io on ${engineName}`, () => {
    const state = useSnippetState(engineName, (api) => registerIo(api, api.main), readOther)
    const { lua } = state
    const is54 = engineName === 'wasmoon'

    it('writes a binary-safe file Node reads back, and reads one Node wrote', () => {
      expect(lua(`
        local f = assert(io.open(... .. "/out.bin", "wb"))
        assert(f:write("a\\0b\\255", 12, " ", 1.5, "\\n") == f)
        return f:close()`)).toEqual([true])
      expect(fs.readFileSync(path.join(state.dir, 'out.bin'))).toEqual(Buffer.from([0x61, 0, 0x62, 0xff, 0x31, 0x32, 0x20, 0x31, 0x2e, 0x35, 0x0a]))
      fs.writeFileSync(path.join(state.dir, 'in.bin'), Buffer.from([0, 0xff, 0x80, 10, 0x41]))
      expect(lua(`local f = io.open(... .. "/in.bin", "rb") local s = f:read("a") f:close() return #s, s:byte(1, -1)`))
        .toEqual([5, 0, 0xff, 0x80, 10, 0x41])
    })

    it('reads with the formats l, L, n, a, counts and 5.3-style *formats', () => {
      fs.writeFileSync(path.join(state.dir, 'f'), '12 0x1F -3.5e2 abc\nline2\r\n\nlast')
      expect(lua(`local f = io.open(... .. "/f") return f:read("n", "*n", "n", "n")`)).toEqual([12, 31, -350, null])
      expect(lua(`local f = io.open(... .. "/f") f:read("l") return f:read("L", "*l", "l", "l")`))
        .toEqual(['line2\r\n', '', 'last', null])
      expect(lua(`local f = io.open(... .. "/f") return f:read(2, 0, "*a", "a", 0, 5)`))
        .toEqual(['12', '', ' 0x1F -3.5e2 abc\nline2\r\n\nlast', '', null])
      expect(lua(`local f = io.open(... .. "/f") return f:read()`)).toEqual(['12 0x1F -3.5e2 abc'])
      expect(lua(`io.input(... .. "/f") return io.read("n", "l")`)).toEqual([12, ' 0x1F -3.5e2 abc'])
    })

    it('iterates lines() and closes the file io.lines opened at the end', () => {
      fs.writeFileSync(path.join(state.dir, 'f'), 'one\ntwo\n\nthree')
      expect(lua(`local t = {} for l in io.lines(... .. "/f") do t[#t + 1] = "[" .. l .. "]" end return table.concat(t)`))
        .toEqual(['[one][two][][three]'])
      expect(lua(`local t = {} for a, b in io.lines(... .. "/f", 2, "L") do t[#t + 1] = a .. "|" .. tostring(b) end return table.concat(t, ",")`))
        .toEqual(['on|e\n,tw|o\n,\nt|hree'])
      expect(lua(`local f = io.open(... .. "/f") local it = f:lines("n") local r = it() f:close() return r, io.type(f), pcall(it)`))
        .toEqual([null, 'closed file', false, 'file is already closed'])
      expect(lua(`local f = io.open(... .. "/f") local it = f:lines() f:close()
        return pcall(function() for l in it do end end)`)).toEqual([false, 'test:2: file is already closed'])
      expect(lua(`local it, _, _, f = io.lines(... .. "/f") while it() do end return io.type(f)`)).toEqual(['closed file'])
      expect(() => lua(`io.lines(... .. "/nope")`)).toThrow(`cannot open file '${state.dir}/nope' (No such file or directory)`)
    })

    it('seeks, appends at the end and reads a+ from the start', () => {
      expect(lua(`
        local f = io.open(... .. "/s", "w+")
        f:write("0123456789")
        local a, b = f:seek(), f:seek("set", 2)
        local c = f:read(3)
        local d, e = f:seek("cur"), f:seek("end", -1)
        f:write("X")
        f:seek("set")
        return a, b, c, d, e, f:read("a"), f:seek("cur", -100)`)).toEqual([10, 2, '234', 5, 9, '012345678X', null, 'Invalid argument', 22])
      fs.writeFileSync(path.join(state.dir, 'a'), 'first\n')
      expect(lua(`
        local f = io.open(... .. "/a", "a+")
        local l = f:read("l")
        f:write("second\\n")
        local pos = f:seek()
        f:seek("set")
        return l, pos, f:read("a")`)).toEqual(['first', 13, 'first\nsecond\n'])
      expect(lua(`local f = io.open(... .. "/a", "a") f:write("third") f:close()`)).toEqual([])
      expect(fs.readFileSync(path.join(state.dir, 'a'), 'utf8')).toBe('first\nsecond\nthird')
    })

    it('reports open failures as luaL_fileresult and rejects invalid modes', () => {
      expect(lua(`return io.open(... .. "/nope/x")`)).toEqual([null, `${state.dir}/nope/x: No such file or directory`, 2])
      expect(lua(`return io.open(..., "w")`)).toEqual([null, `${state.dir}: Is a directory`, 21])
      expect(lua(`return pcall(io.open, "x", "rw")`)).toEqual([false, "bad argument #2 to 'io.open' (invalid mode)"])
      expect(lua(`return io.type(io.open(... .. "/m", "r+b")), io.type(io.open(... .. "/m", "wbb"))`)).toEqual([null, 'file'])
    })

    it('raises on closed files and tells file types apart', () => {
      expect(lua(`
        local f = io.open(... .. "/c", "w")
        local t1 = tostring(f):match("^file %(0x%x+%)$") ~= nil
        f:close()
        local ok1, e1 = pcall(f.read, f)
        local ok2, e2 = pcall(f.write, f, "x")
        return t1, tostring(f), io.type(f), io.type(io.stdout), io.type(42), ok1, e1, ok2, e2`))
        .toEqual([true, 'file (closed)', 'closed file', 'file', null, false, 'attempt to use a closed file', false, 'attempt to use a closed file'])
      expect(lua(`return io.stdout:close()`)).toEqual([null, 'cannot close standard file'])
      expect(lua(`return io.open(... .. "/c"):write("x")`)).toEqual([null, 'Bad file descriptor', 9])
    })

    it('sets the default input and output, and io.write returns the file', () => {
      expect(lua(`
        local out = io.output(... .. "/o")
        local r = io.write("a", 1, "b") == out
        io.close()
        return r, io.type(out), pcall(io.write, "x")`)).toEqual([true, 'closed file', false, 'default output file is closed'])
      expect(fs.readFileSync(path.join(state.dir, 'o'), 'utf8')).toBe('a1b')
    })

    it('has tmpfile, setvbuf, flush and a clear popen error', () => {
      expect(lua(`local f = io.tmpfile() f:write("tmp") f:seek("set") return f:read("a"), f:setvbuf("no"), f:flush(), io.flush()`))
        .toEqual(['tmp', true, true, true])
      expect(lua(`return pcall(io.popen, "ls")`)).toEqual([false, "'popen' not supported"])
      expect(lua(`return io.stdin, io.stdout, io.stderr`).map((s) => typeof s === 'string' && s.startsWith('file (0x'))).toEqual([true, true, true])
    })

    it.runIf(is54)('closes files the script dropped when they are collected (__gc)', () => {
      fs.writeFileSync(path.join(state.dir, 'g'), 'x')
      const before = fs.readdirSync('/proc/self/fd').length
      lua(`for i = 1, 200 do local f = io.open(... .. "/g") end collectgarbage() collectgarbage()`)
      expect(fs.readdirSync('/proc/self/fd').length).toBeLessThan(before + 10)
    })

    it.runIf(is54)('formats floats as %.14g and reports argument errors as Lua 5.4', () => {
      expect(lua(`
        local f = io.open(... .. "/n", "w+")
        f:write(1.0, " ", 0.1, " ", 1e100, " ", -0.0, " ", 1/0, " ", 2^53, " ", 123456789012345.0, " ", math.maxinteger)
        f:seek("set")
        return f:read("a"), pcall(f.read, f, "x")`)).toEqual([
        '1 0.1 1e+100 -0 inf 9.007199254741e+15 1.2345678901234e+14 9223372036854775807',
        false,
        "bad argument #2 to '?' (invalid format)",
      ])
      expect(formatG14(1234567890123.25)).toBe('1234567890123.2')
      expect(formatG14(5e-324)).toBe('4.9406564584125e-324')
    })
  })
}
