// The built-in ltn12 module: LTN012 sources, sinks, filters and pumps as
// LuaSocket 3.0 documents them, on both engines, including real files.

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { LuaEnvironment } from '../../../src/lua/environment.js'
import { runChunk, useEnvironment } from '../../helpers/lua-env.js'

// Filters used below: upper-cases; wraps each non-empty chunk in <>; pairs
// up characters ("ab|cd"), keeping an odd one until the end ("[e]").
const PRELUDE = `local ltn12 = require "ltn12"
local function upper(c) return c and c:upper() end
local function angle(c) if c == nil or c == "" then return c end return "<" .. c .. ">" end
local function pairer()
  local buf = ""
  return function(c)
    if c == nil then
      if buf == "" then return nil end
      local r = "[" .. buf .. "]"
      buf = ""
      return r
    end
    buf = buf .. c
    local out = {}
    while #buf >= 2 do out[#out + 1] = buf:sub(1, 2); buf = buf:sub(3) end
    return table.concat(out, "|")
  end
end
local function collect(src)
  local t = {}
  local ok, err = ltn12.pump.all(src, (ltn12.sink.table(t)))
  return table.concat(t), ok, err
end
`

/** Runs a chunk (with `ltn12` and the helpers above) and returns its results through tostring. */
function lua(env: LuaEnvironment, src: string): string[] {
  return runChunk(env, src, PRELUDE)
}

const q = (s: string): string => JSON.stringify(s)

for (const engineName of ['wasmoon', 'fengari'] as const) {
  describe(`ltn12 (${engineName})`, () => {
    let env: LuaEnvironment
    let dir: string
    useEnvironment(engineName, 'dovepush-ltn12-', (e, d) => {
      env = e
      dir = d
    })

    it('has LuaSocket\'s _VERSION, BLOCKSIZE and namespaces', () => {
      expect(lua(env, 'return ltn12._VERSION, ltn12.BLOCKSIZE, type(ltn12.filter.chain), type(ltn12.source.cat), type(ltn12.sink.table), type(ltn12.pump.all)'))
        .toEqual(['LTN12 1.0.3', '2048', 'function', 'function', 'function', 'function'])
    })

    it('pumps a string into a table sink', () => {
      expect(lua(env, `
        local t = {}
        local snk, same = ltn12.sink.table(t)
        local ok = ltn12.pump.all(ltn12.source.string("hello"), snk)
        return ok, table.concat(t), #t, same == t`)).toEqual(['1', 'hello', '1', 'true'])
      expect(lua(env, 'local snk, t = ltn12.sink.table() ltn12.pump.all(ltn12.source.string("x"), snk) return t[1]')).toEqual(['x'])
    })

    it('cuts a string source into BLOCKSIZE chunks', () => {
      expect(lua(env, `
        local t = {}
        ltn12.pump.all(ltn12.source.string(string.rep("a", 5000)), (ltn12.sink.table(t)))
        return #t, #t[1], #t[2], #t[3]`)).toEqual(['3', '2048', '2048', '904'])
      expect(lua(env, `
        local old = ltn12.BLOCKSIZE
        ltn12.BLOCKSIZE = 3
        local t = {}
        ltn12.pump.all(ltn12.source.string("abcdefgh"), (ltn12.sink.table(t)))
        ltn12.BLOCKSIZE = old
        return table.concat(t, ",")`)).toEqual(['abc,def,gh'])
      expect(lua(env, 'local s = ltn12.source.string("") return s(), ltn12.source.string(nil)()')).toEqual(['nil', 'nil'])
    })

    it('steps one chunk at a time', () => {
      expect(lua(env, `
        local t = {}
        local src, snk = ltn12.source.string("ab"), ltn12.sink.table(t)
        local a = ltn12.pump.step(src, snk)
        local b, err = ltn12.pump.step(src, snk)
        return a, b, err, t[1]`)).toEqual(['1', 'nil', 'nil', 'ab'])
    })

    it('concatenates sources', () => {
      expect(lua(env, 'return collect(ltn12.source.cat(ltn12.source.string("ab"), ltn12.source.empty(), ltn12.source.string("cd"), ltn12.source.table({ "e", "f" })))'))
        .toEqual(['abcdef', '1', 'nil'])
      expect(lua(env, 'return collect(ltn12.source.cat())')).toEqual(['', '1', 'nil'])
    })

    it('chains filters on a source, on a sink and with filter.chain', () => {
      expect(lua(env, 'return collect(ltn12.source.chain(ltn12.source.string("hello"), upper))')).toEqual(['HELLO', '1', 'nil'])
      expect(lua(env, 'return collect(ltn12.source.chain(ltn12.source.string("ab"), ltn12.filter.chain(upper, angle)))')).toEqual(['<AB>', '1', 'nil'])
      expect(lua(env, 'return collect(ltn12.source.chain(ltn12.source.cat(ltn12.source.string("ab"), ltn12.source.string("cd")), upper, angle))')).toEqual(['<AB><CD>', '1', 'nil'])
      expect(lua(env, `
        local t = {}
        local ok = ltn12.pump.all(ltn12.source.string("hello"), ltn12.sink.chain(ltn12.filter.chain(upper, angle), (ltn12.sink.table(t))))
        return ok, table.concat(t)`)).toEqual(['1', '<HELLO>'])
      expect(lua(env, `
        local t = {}
        local ok = ltn12.pump.all(ltn12.source.string("hello"), ltn12.sink.chain(upper, angle, (ltn12.sink.table(t))))
        return ok, table.concat(t)`)).toEqual(['1', '<HELLO>'])
      expect(lua(env, 'local f = ltn12.filter.chain(upper, angle) return f("x"), f(""), f(nil), f(nil)')).toEqual(['<X>', '', 'nil', 'nil'])
    })

    it('flushes what a filter keeps until the end', () => {
      expect(lua(env, 'return collect(ltn12.source.chain(ltn12.source.string("abcde"), pairer()))')).toEqual(['ab|cd[e]', '1', 'nil'])
      expect(lua(env, 'return collect(ltn12.source.chain(ltn12.source.string("abcde"), pairer(), upper))')).toEqual(['AB|CD[E]', '1', 'nil'])
      expect(lua(env, `
        local t = {}
        ltn12.pump.all(ltn12.source.string("abcde"), ltn12.sink.chain(pairer(), upper, (ltn12.sink.table(t))))
        return table.concat(t)`)).toEqual(['AB|CD[E]'])
      expect(lua(env, 'local f = ltn12.filter.chain(upper, pairer()) return f("abc"), f(nil), f(nil)')).toEqual(['AB', '[C]', 'nil'])
    })

    it('cycles a low-level filter through its context', () => {
      expect(lua(env, `
        local f = ltn12.filter.cycle(function(ctx, chunk, extra)
          if chunk == nil then return nil, ctx end
          return ctx .. chunk .. extra, ctx + 1
        end, 0, "!")
        return f("a"), f("b"), f(nil)`)).toEqual(['0a!', '1b!', 'nil'])
    })

    it('passes errors from sources and sinks through the pump', () => {
      expect(lua(env, 'return ltn12.pump.all(ltn12.source.error("msg"), (ltn12.sink.table({})))')).toEqual(['nil', 'msg'])
      expect(lua(env, 'return ltn12.pump.all(ltn12.source.string("x"), ltn12.sink.error("msg"))')).toEqual(['nil', 'msg'])
      expect(lua(env, 'return ltn12.pump.step(ltn12.source.error("msg"), ltn12.sink.null())')).toEqual(['nil', 'msg'])
      expect(lua(env, 'return ltn12.source.error("msg")()')).toEqual(['nil', 'msg'])
      expect(lua(env, 'return ltn12.sink.error("msg")("x")')).toEqual(['nil', 'msg'])
      expect(lua(env, 'return collect(ltn12.source.cat(ltn12.source.string("a"), ltn12.source.error("mid"), ltn12.source.string("b")))')).toEqual(['a', 'nil', 'mid'])
      expect(lua(env, 'return collect(ltn12.source.chain(ltn12.source.error("inner"), upper))')).toEqual(['', 'nil', 'inner'])
      expect(lua(env, 'return ltn12.pump.all(ltn12.source.string("x"), ltn12.sink.chain(upper, ltn12.sink.error("down")))')).toEqual(['nil', 'down'])
      // the sink hears of the source's error
      expect(lua(env, `
        local seen
        local ok, err = ltn12.pump.all(ltn12.source.error("e"), function(chunk, err) seen = err return 1 end)
        return ok, err, seen`)).toEqual(['nil', 'e', 'e'])
    })

    it('has empty, null, table, rewind and simplify helpers', () => {
      expect(lua(env, 'local s = ltn12.source.empty() return s(), ltn12.sink.null()("x"), ltn12.sink.null()(nil)')).toEqual(['nil', '1', '1'])
      expect(lua(env, 'local s = ltn12.source.table({ "a", "b" }) return s(), s(), s()')).toEqual(['a', 'b', 'nil'])
      expect(lua(env, 'local r = ltn12.source.rewind(ltn12.source.string("zz")) r("a") r("b") return r(), r(), r(), r()')).toEqual(['b', 'a', 'zz', 'nil'])
      expect(lua(env, `
        local s = ltn12.source.simplify(function() return "x", function() return nil, "later" end end)
        return s(), s()`)).toEqual(['x', 'nil', 'later'])
      expect(lua(env, `
        local t = {}
        local second = function(chunk) if chunk then t[#t + 1] = "2:" .. chunk end return 1 end
        local snk = ltn12.sink.simplify(function(chunk) if chunk then t[#t + 1] = "1:" .. chunk end return 1, second end)
        snk("a") snk("b")
        local failing = ltn12.sink.simplify(function() return nil, "no" end)
        return table.concat(t, ","), failing("c")`)).toEqual(['1:a,2:b', 'nil', 'no'])
    })

    it('copies real files with source.file and sink.file, closing them', () => {
      const inPath = join(dir, 'in.bin')
      const outPath = join(dir, 'out.bin')
      const data = Buffer.alloc(5000)
      for (let i = 0; i < data.length; i++) data[i] = (i * 7) % 256
      writeFileSync(inPath, data)
      expect(lua(env, `
        local inf = assert(io.open(${q(inPath)}, "rb"))
        local outf = assert(io.open(${q(outPath)}, "wb"))
        local ok, err = ltn12.pump.all(ltn12.source.file(inf), ltn12.sink.file(outf))
        return ok, err, io.type(inf), io.type(outf)`)).toEqual(['1', 'nil', 'closed file', 'closed file'])
      expect(readFileSync(outPath).equals(data)).toBe(true)
      expect(lua(env, `
        local f = assert(io.open(${q(outPath)}, "wb"))
        local ok = ltn12.pump.all(ltn12.source.chain(ltn12.source.string("hello file"), upper), ltn12.sink.file(f))
        return ok, io.type(f)`)).toEqual(['1', 'closed file'])
      expect(readFileSync(outPath, 'utf8')).toBe('HELLO FILE')
      expect(lua(env, `
        local chunks = {}
        local src = ltn12.source.file(assert(io.open(${q(inPath)}, "rb")))
        for chunk in src do chunks[#chunks + 1] = #chunk end
        return table.concat(chunks, ","), src()`)).toEqual(['2048,2048,904', 'nil'])
    })

    it('turns a failed io.open into an error source or sink', () => {
      const missing = join(dir, 'missing', 'x.txt')
      const [ok, err] = lua(env, `return ltn12.pump.all(ltn12.source.file(io.open(${q(missing)}, "rb")), ltn12.sink.null())`)
      expect(ok).toBe('nil')
      expect(err).toBe(`${missing}: No such file or directory`)
      expect(lua(env, `return ltn12.pump.all(ltn12.source.string("x"), ltn12.sink.file(io.open(${q(missing)}, "wb")))`)).toEqual(['nil', `${missing}: No such file or directory`])
      expect(existsSync(missing)).toBe(false)
      expect(lua(env, 'return ltn12.source.file(nil)()')).toEqual(['nil', 'unable to open file'])
      expect(lua(env, 'return ltn12.sink.file(nil)("x")')).toEqual(['nil', 'unable to open file'])
    })

    it('closes the file of a sink when the source fails', () => {
      const outPath = join(dir, 'partial.txt')
      expect(lua(env, `
        local f = assert(io.open(${q(outPath)}, "wb"))
        local ok, err = ltn12.pump.all(ltn12.source.cat(ltn12.source.string("part"), ltn12.source.error("broken")), ltn12.sink.file(f))
        return ok, err, io.type(f)`)).toEqual(['nil', 'broken', 'closed file'])
      expect(readFileSync(outPath, 'utf8')).toBe('part')
    })
  })
}
