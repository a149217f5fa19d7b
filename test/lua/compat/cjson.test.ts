// The built-in cjson / cjson.safe modules: lua-cjson 2.1's behaviour and
// messages, on both engines (fengari: 32-bit integers, see src/lua/compat/cjson.ts).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { formatG } from '../../../src/lua/compat/cjson.js'
import { createEnvironment, type LuaEnvironment } from '../../../src/lua/environment.js'
import { engine } from '../../helpers/run-script.js'
import pino from 'pino'
import { runChunk, useEnvironment } from '../../helpers/lua-env.js'

/** Runs a chunk (with `cjson` and `safe` locals) and returns its results through tostring. */
function lua(env: LuaEnvironment, src: string): string[] {
  return runChunk(env, src, 'local cjson = require "cjson"; local safe = require "cjson.safe"')
}

/** The error message of `fn(arg)` raised inside Lua (pcall), e.g. err('cjson.encode', 'print'). */
const err = (env: LuaEnvironment, call: string): string => lua(env, `local ok, e = pcall(${call}); assert(not ok); return e`)[0]

for (const engineName of ['wasmoon', 'fengari'] as const) {
  describe(`cjson (${engineName})`, () => {
    let env: LuaEnvironment
    let dir: string
    useEnvironment(engineName, 'dovepush-cjson-', (e, d) => {
      env = e
      dir = d
    })

    it('round-trips a push-notification payload (keys in next order, floats without .0)', () => {
      const [same, json, event, uid, flag, subject, nflags] = lua(env, `
        local t = {event = "MessageNew", uid = 7.0, flags = {"\\\\Seen"}, subject = "Grüße"}
        local enc = {event = '"MessageNew"', uid = '7', flags = '["\\\\\\\\Seen"]', subject = '"Grüße"'}
        local parts = {}
        for k in pairs(t) do parts[#parts + 1] = '"' .. k .. '":' .. enc[k] end
        local json = cjson.encode(t)
        local d = cjson.decode(json)
        return json == "{" .. table.concat(parts, ",") .. "}", json, d.event, math.type(d.uid) .. " " .. d.uid,
          d.flags[1], d.subject == "Grüße", #d.flags`)
      expect(same).toBe('true')
      expect(json).toContain('"uid":7')
      expect(json).toContain('"flags":["\\\\Seen"]')
      expect(json).toContain('"subject":"Grüße"')
      expect([event, uid, flag, subject, nflags]).toEqual(['MessageNew', 'integer 7', '\\Seen', 'true', '1'])
    })

    it('encodes integers as integers and floats with %.14g', () => {
      expect(lua(env, 'return cjson.encode(1), cjson.encode(1.0), cjson.encode(0.1), cjson.encode(-2.5), cjson.encode(1/3), cjson.encode(1e300), cjson.encode(-0.0), cjson.encode(1e-5), cjson.encode(123456.789e3)'))
        .toEqual(['1', '1', '0.1', '-2.5', '0.33333333333333', '1e+300', '-0', '1e-05', '123456789'])
      // %.14g rounds the exact binary value half to even (glibc), not half up as JS does
      expect(lua(env, 'return cjson.encode(123456789012345.0), cjson.encode(1e15 + 0.0), cjson.encode(3000000000.0)')).toEqual(['1.2345678901234e+14', '1e+15', '3000000000'])
      expect(lua(env, 'return cjson.encode({2^53})')[0]).toBe('[9.007199254741e+15]') // a float: 2^53 is float in Lua
      if (engineName === 'wasmoon') {
        expect(lua(env, 'return cjson.encode(math.maxinteger), cjson.encode(math.mininteger), cjson.encode(9007199254740993)')).toEqual(['9223372036854775807', '-9223372036854775808', '9007199254740993'])
      } else {
        expect(lua(env, 'return cjson.encode(math.maxinteger), cjson.encode(math.mininteger)')).toEqual(['2147483647', '-2147483648'])
      }
    })

    it('encode_number_precision changes the digits (per instance)', () => {
      expect(lua(env, `local c = cjson.new()
        return c.encode_number_precision(3), c.encode(math.pi), c.encode(2.5), c.encode_number_precision(1), c.encode(2.5), c.encode(3.5), c.encode(0.15), cjson.encode(math.pi), cjson.encode_number_precision()`))
        .toEqual(['3', '3.14', '2.5', '1', '2', '4', '0.1', '3.1415926535898', '14'])
      expect(err(env, 'cjson.encode_number_precision, 0')).toMatch(/^bad argument #1 to '(cjson\.)?encode_number_precision' \(expected integer between 1 and 16\)$/)
    })

    it('refuses NaN and Infinity unless encode_invalid_numbers says otherwise', () => {
      expect(err(env, 'cjson.encode, 0/0')).toBe('Cannot serialise number: must not be NaN or Infinity')
      expect(err(env, 'cjson.encode, {x = -math.huge}')).toBe('Cannot serialise number: must not be NaN or Infinity')
      expect(lua(env, `local c = cjson.new()
        local a = c.encode_invalid_numbers(true)
        local r1 = c.encode({math.huge, -math.huge, 0/0})
        return a, r1, c.encode_invalid_numbers("null"), c.encode({math.huge}), c.encode_invalid_numbers()`)).toEqual(['true', '[Infinity,-Infinity,NaN]', 'null', '[null]', 'null'])
    })

    it('escapes strings as lua-cjson does and passes bytes >= 0x80 through', () => {
      expect(lua(env, 'return cjson.encode("a\\"b\\\\c/d\\n\\r\\t\\b\\f\\1\\31\\127 é\\0")')[0]).toBe('"a\\"b\\\\c\\/d\\n\\r\\t\\b\\f\\u0001\\u001f\\u007f é\\u0000"')
      expect(lua(env, 'return cjson.encode("\\xff\\xfe") == "\\"\\xff\\xfe\\"", cjson.decode(cjson.encode("\\xff\\0x")) == "\\xff\\0x"')).toEqual(['true', 'true'])
      expect(lua(env, 'local c = cjson.new(); return c.encode_escape_forward_slash(false), c.encode("a/b")')).toEqual(['false', '"a/b"'])
    })

    it('tells arrays from objects; empty tables, empty_array and empty_array_mt', () => {
      expect(lua(env, `return cjson.encode({1, 2, 3}), cjson.encode({1, nil, 3}), cjson.encode({[2] = "b"}), cjson.encode({[1.5] = 1}),
        cjson.encode({[-1] = true}), cjson.encode({a = {}}), cjson.encode({}), cjson.encode(cjson.empty_array),
        cjson.encode(setmetatable({}, cjson.empty_array_mt)), cjson.encode({list = cjson.empty_array}), cjson.encode({{}, {1}}),
        cjson.encode(setmetatable({}, {})), cjson.encode(setmetatable({1, 2}, cjson.empty_array_mt)), cjson.encode("s"), cjson.encode(true), cjson.encode(nil)`))
        .toEqual(['[1,2,3]', '[1,null,3]', '[null,"b"]', '{"1.5":1}', '{"-1":true}', '{"a":{}}', '{}', '[]', '[]', '{"list":[]}', '[{},[1]]', '{}', '[1,2]', '"s"', 'true', 'null'])
      expect(lua(env, 'local t = cjson.decode(cjson.encode({1, 2, x = "y"})); return t["1"], t["2"], t.x, t[1]')).toEqual(['1', '2', 'y', 'nil'])
      expect(lua(env, 'return type(cjson.empty_array), type(cjson.empty_array_mt), cjson.encode(setmetatable({}, cjson.array_mt))')).toEqual(['userdata', 'table', '[]'])
    })

    it('encode_empty_table_as_object(false) and cjson.new() give independent settings', () => {
      expect(lua(env, 'local c = cjson.new(); return c.encode_empty_table_as_object(false), c.encode({}), c.encode({a = {}}), cjson.encode({}), cjson.encode_empty_table_as_object()'))
        .toEqual(['false', '[]', '{"a":[]}', '{}', 'true'])
    })

    it('raises on excessively sparse arrays unless encode_sparse_array converts them', () => {
      expect(err(env, 'cjson.encode, {[1] = 1, [20] = 2}')).toBe('Cannot serialise table: excessively sparse array')
      expect(lua(env, 'return cjson.encode({[1] = 1, [10] = 2}), cjson.encode_sparse_array()')).toEqual(['[1,null,null,null,null,null,null,null,null,2]', 'false', '2', '10'])
      expect(lua(env, `local c = cjson.new()
        local a, b, s = c.encode_sparse_array(true)
        local t = c.decode(c.encode({[1] = 1, [20] = 2}))
        return a, b, s, c.encode({[20] = "x"}), t["1"], t["20"], select("#", c.encode_sparse_array(false, 0)), c.encode({[30] = 1}):sub(1, 10), c.encode_sparse_array()`))
        .toEqual(['true', '2', '10', '{"20":"x"}', '1', '2', '3', '[null,null', 'false', '0', '10'])
    })

    it('raises for keys and values it cannot serialise', () => {
      expect(err(env, 'cjson.encode, {[true] = 1}')).toBe('Cannot serialise boolean: table key must be a number or string')
      expect(err(env, 'cjson.encode, {[{}] = 1}')).toBe('Cannot serialise table: table key must be a number or string')
      expect(err(env, 'cjson.encode, print')).toBe('Cannot serialise function: type not supported')
      expect(err(env, 'cjson.encode, {f = print}')).toBe('Cannot serialise function: type not supported')
      expect(err(env, 'cjson.encode, coroutine.create(print)')).toBe('Cannot serialise thread: type not supported')
      expect(err(env, 'cjson.encode, io.stdout')).toBe('Cannot serialise userdata: type not supported')
      expect(err(env, 'cjson.encode')).toContain('bad argument #1 to ')
      expect(err(env, 'cjson.encode')).toContain('(expected 1 argument)')
    })

    it('limits nesting to 1000 levels both ways', () => {
      expect(lua(env, 'local t = {} for i = 1, 999 do t = {t} end return #cjson.encode(t)')).toEqual(['2000'])
      expect(err(env, 'cjson.encode, (function() local t = {} for i = 1, 1000 do t = {t} end return t end)()')).toBe('Cannot serialise, excessive nesting (1001)')
      expect(err(env, 'cjson.encode, (function() local t = {} t.t = t return t end)()')).toBe('Cannot serialise, excessive nesting (1001)')
      expect(lua(env, 'local c = cjson.new(); return c.encode_max_depth(2), pcall(c.encode, {{{}}})')).toEqual(['2', 'false', 'Cannot serialise, excessive nesting (3)'])
      expect(lua(env, 'return #cjson.decode(string.rep("[", 1000) .. string.rep("]", 1000))')).toEqual(['1'])
      expect(err(env, 'cjson.decode, string.rep(\'{"a":\', 1001) .. "1" .. string.rep("}", 1001)')).toBe('Found too many nested data structures (1001) at character 5001')
      expect(err(env, 'cjson.decode, string.rep("[", 1001) .. string.rep("]", 1001)')).toBe('Found too many nested data structures (1001) at character 1001')
      expect(lua(env, 'pcall(cjson.decode, "[[[[") pcall(cjson.encode, {{print}}) return cjson.encode(cjson.decode("[[1]]"))')).toEqual(['[[1]]']) // no state left behind
    })

    it('writes cjson.null as null and decodes null to it', () => {
      expect(lua(env, `return cjson.encode(cjson.null), cjson.encode({cjson.null, 1}), cjson.decode("null") == cjson.null, cjson.decode("[null]")[1] == cjson.null,
        cjson.decode('{"a":null}').a == cjson.null, type(cjson.null), safe.null == cjson.null, cjson.new().null == cjson.null, safe.new().empty_array == cjson.empty_array`))
        .toEqual(['null', '[null,1]', 'true', 'true', 'true', 'userdata', 'true', 'true', 'true'])
    })

    it('decodes numbers to integers or floats like OpenResty lua-cjson', () => {
      expect(lua(env, `local function t(s) local v = cjson.decode(s) return math.type(v) .. " " .. tostring(v) end
        return t("7"), t("-3"), t("7.0"), t("1e2"), t("-0"), t("0.5"), t("1E-2"), t("123456789012345678901234567890")`))
        .toEqual(['integer 7', 'integer -3', 'float 7.0', 'float 100.0', 'integer 0', 'float 0.5', 'float 0.01', 'float 1.2345678901235e+29'])
      // lua-cjson's default decode_invalid_numbers(true): strtod's extra forms
      expect(lua(env, 'local a = cjson.decode("[0x10, Infinity, -inf, +5]") return math.type(a[1]) .. " " .. a[1], a[2] == math.huge, a[3] == -math.huge, math.type(a[4]) .. " " .. a[4], cjson.decode("NaN") ~= cjson.decode("NaN")'))
        .toEqual(['float 16.0', 'true', 'true', 'integer 5', 'true'])
      expect(lua(env, 'local c = cjson.new(); c.decode_invalid_numbers(false) return pcall(c.decode, "0x10")')).toEqual(['false', 'Expected value but found invalid number at character 1'])
      if (engineName === 'wasmoon') {
        expect(lua(env, 'local v = cjson.decode("[9007199254740993, 3000000000, -9223372036854775808]") return math.type(v[1]), v[1] == 9007199254740993, math.type(v[2]), v[3] == math.mininteger'))
          .toEqual(['integer', 'true', 'integer', 'true'])
      } else {
        // fengari: integers are 32-bit, larger ones decode as floats
        expect(lua(env, 'local v = cjson.decode("[2147483647, 3000000000]") return math.type(v[1]), math.type(v[2]), v[2] == 3e9')).toEqual(['integer', 'float', 'true'])
      }
    })

    it('decodes strings with escapes and surrogate pairs to UTF-8 bytes', () => {
      expect(lua(env, `return cjson.decode('"\\\\u00e9\\\\ud83d\\\\ude00\\\\n\\\\/\\\\t\\\\"\\\\\\\\"') == "é😀\\n/\\t\\"\\\\", cjson.decode('"\\\\u0000"') == "\\0", cjson.decode('"Grüße"') == "Grüße"`))
        .toEqual(['true', 'true', 'true'])
      expect(lua(env, 'local t = cjson.decode(\' { "a" : [ 1 , true , false , "x" ] , "b" : { } } \') return #t.a, tostring(t.a[2]), tostring(t.a[3]), t.a[4], next(t.b)'))
        .toEqual(['4', 'true', 'false', 'x', 'nil'])
    })

    it('raises lua-cjson\'s parse errors with 1-based positions', () => {
      const cases: [string, string][] = [
        ['x', 'Expected value but found invalid token at character 1'],
        ['', 'Expected value but found T_END at character 1'],
        ['{"a":1', 'Expected comma or object end but found T_END at character 7'],
        ['[1,2', 'Expected comma or array end but found T_END at character 5'],
        ['"a" "b"', 'Expected the end but found T_STRING at character 5'],
        ['[1] x', 'Expected the end but found invalid token at character 5'],
        ['{"a" true}', 'Expected colon but found T_BOOLEAN at character 6'],
        ['{true:1}', 'Expected object key string but found T_BOOLEAN at character 2'],
        ['[1,]', 'Expected value but found T_ARR_END at character 4'],
        ['"abc', 'Expected value but found unexpected end of string at character 5'],
        ['"a\\qb"', 'Expected value but found invalid escape code at character 3'],
        ['"\\ud800"', 'Expected value but found invalid unicode escape code at character 2'],
        ['"\\u12"', 'Expected value but found invalid unicode escape code at character 2'],
        ['tru', 'Expected value but found invalid token at character 1'],
        ['-', 'Expected value but found invalid number at character 1'],
        ['{"a":1}}', 'Expected the end but found T_OBJ_END at character 8'],
      ]
      for (const [text, msg] of cases) {
        expect(lua(env, `local ok, e = pcall(cjson.decode, ${JSON.stringify(text)}) return e`)[0], text).toBe(msg)
      }
      expect(err(env, 'cjson.decode, "\\0\\0"')).toBe('JSON parser does not support UTF-16 or UTF-32')
      expect(err(env, 'cjson.decode, {}')).toContain('string expected, got table')
      expect(lua(env, 'return cjson.decode(42)')).toEqual(['42'])
    })

    it('cjson.safe returns nil and the message instead of raising', () => {
      expect(lua(env, 'return safe.encode(print)')).toEqual(['nil', 'Cannot serialise function: type not supported'])
      expect(lua(env, 'return safe.decode("[1,")')).toEqual(['nil', 'Expected value but found T_END at character 4'])
      expect(lua(env, 'return safe.decode(\'{"a":[1]}\').a[1], safe.encode({1}), safe.encode({{{}}})')).toEqual(['1', '[1]', '[[{}]]'])
      expect(lua(env, 'local s = safe.new() s.encode_max_depth(1) return s.encode({{}})')).toEqual(['nil', 'Cannot serialise, excessive nesting (2)'])
      expect(err(env, 'safe.decode')).toContain('(expected 1 argument)') // argument errors still raise, as in lua-cjson
      expect(lua(env, 'return safe ~= cjson, safe._NAME, cjson._VERSION')).toEqual(['true', 'cjson', '2.1.0'])
    })

    it('answers the configuration functions with their settings', () => {
      expect(lua(env, `local c = cjson.new()
        return c.encode_max_depth(), c.decode_max_depth(), c.encode_keep_buffer(), c.encode_keep_buffer(false), c.decode_invalid_numbers(), c.encode_invalid_numbers(), c.decode_array_with_array_mt()`))
        .toEqual(['1000', '1000', 'true', 'false', 'true', 'false', 'false'])
      expect(err(env, 'cjson.encode_max_depth, 1, 2')).toContain('(found too many arguments)')
      expect(err(env, 'cjson.encode_keep_buffer, "maybe"')).toContain("(invalid option 'maybe')")
      expect(lua(env, 'local c = cjson.new() c.decode_array_with_array_mt(true) local a = c.decode("[]") return getmetatable(a) == cjson.array_mt, c.encode(a)')).toEqual(['true', '[]'])
    })

    it('a cjson.lua on package.path wins over the built-in', async () => {
      writeFileSync(join(dir, 'cjson.lua'), 'return { encode = function() return "from disk" end }')
      const local = createEnvironment({ engine: await engine(engineName), scriptPath: join(dir, 'script.lua'), dovecot: '2.3', log: pino({ level: 'silent' }), debug: false, callTimeoutMs: 0, memoryLimit: 0 })
      try {
        const { api, L } = local
        expect(api.load(L, new TextEncoder().encode('return require("cjson").encode({}), require("cjson.safe").encode({})'), '=t', 't')).toBe(0)
        expect(api.pcall(L, 0, 2, 0)).toBe(0)
        expect([api.tostring(L, -2), api.tostring(L, -1)]).toEqual(['from disk', '{}'])
      } finally {
        local.api.close()
        rmSync(join(dir, 'cjson.lua'))
      }
    })
  })
}

describe('formatG (%.Ng)', () => {
  it('matches C printf', () => {
    expect(formatG(0.1, 14)).toBe('0.1')
    expect(formatG(100, 14)).toBe('100')
    expect(formatG(1e14, 14)).toBe('1e+14')
    expect(formatG(99999999999999.9, 14)).toBe('1e+14')
    expect(formatG(0.0001, 14)).toBe('0.0001')
    expect(formatG(0.00001234, 14)).toBe('1.234e-05')
    expect(formatG(-1.5, 14)).toBe('-1.5')
    expect(formatG(5e-324, 14)).toBe('4.9406564584125e-324')
    expect(formatG(1.7976931348623157e308, 14)).toBe('1.7976931348623e+308')
    expect(formatG(0.5, 1)).toBe('0.5')
    expect(formatG(2.5, 1)).toBe('2')
    expect(formatG(9.5, 1)).toBe('1e+01')
    expect(formatG(1 / 3, 16)).toBe('0.3333333333333333')
  })
})
