// The built-in socket.url module: LuaSocket 3.0's behaviour (escape's safe
// set and lowercase hex, parse/build), RFC 3986 §5.4 for absolute().

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { LuaEnvironment } from '../../../src/lua/environment.js'
import { runChunk, useEnvironment } from '../../helpers/lua-env.js'

/** Runs a chunk (with a `url` local) and returns its results through tostring. */
function lua(env: LuaEnvironment, src: string): string[] {
  return runChunk(env, src, 'local url = require "socket.url"')
}

/** A Lua string literal for a JS string of ASCII text. */
const q = (s: string): string => JSON.stringify(s)

/** url.parse(u) as a plain object of its fields. */
function parse(env: LuaEnvironment, u: string): Record<string, string> {
  const [dump] = lua(env, `
    local t = assert(url.parse(${q(u)}))
    local out = {}
    for k, v in pairs(t) do out[#out + 1] = k .. "=" .. tostring(v) end
    table.sort(out)
    return table.concat(out, "\\n")`)
  return Object.fromEntries(dump.split('\n').filter((l) => l !== '').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]))
}

const BASE = 'http://a/b/c/d;p?q'
// RFC 3986 §5.4.1 (normal) and §5.4.2 (abnormal), as the RFC lists them.
const RFC3986_NORMAL: [string, string][] = [
  ['g:h', 'g:h'],
  ['g', 'http://a/b/c/g'],
  ['./g', 'http://a/b/c/g'],
  ['g/', 'http://a/b/c/g/'],
  ['/g', 'http://a/g'],
  ['//g', 'http://g'],
  ['?y', 'http://a/b/c/d;p?y'],
  ['g?y', 'http://a/b/c/g?y'],
  ['#s', 'http://a/b/c/d;p?q#s'],
  ['g#s', 'http://a/b/c/g#s'],
  ['g?y#s', 'http://a/b/c/g?y#s'],
  [';x', 'http://a/b/c/;x'],
  ['g;x', 'http://a/b/c/g;x'],
  ['g;x?y#s', 'http://a/b/c/g;x?y#s'],
  ['', 'http://a/b/c/d;p?q'],
  ['.', 'http://a/b/c/'],
  ['./', 'http://a/b/c/'],
  ['..', 'http://a/b/'],
  ['../', 'http://a/b/'],
  ['../g', 'http://a/b/g'],
  ['../..', 'http://a/'],
  ['../../', 'http://a/'],
  ['../../g', 'http://a/g'],
]
const RFC3986_ABNORMAL: [string, string][] = [
  ['../../../g', 'http://a/g'],
  ['../../../../g', 'http://a/g'],
  ['/./g', 'http://a/g'],
  ['/../g', 'http://a/g'],
  ['g.', 'http://a/b/c/g.'],
  ['.g', 'http://a/b/c/.g'],
  ['g..', 'http://a/b/c/g..'],
  ['..g', 'http://a/b/c/..g'],
  ['./../g', 'http://a/b/g'],
  ['./g/.', 'http://a/b/c/g/'],
  ['g/./h', 'http://a/b/c/g/h'],
  ['g/../h', 'http://a/b/c/h'],
  ['g;x=1/./y', 'http://a/b/c/g;x=1/y'],
  ['g;x=1/../y', 'http://a/b/c/y'],
  ['g?y/./x', 'http://a/b/c/g?y/./x'],
  ['g?y/../x', 'http://a/b/c/g?y/../x'],
  ['g#s/./x', 'http://a/b/c/g#s/./x'],
  ['g#s/../x', 'http://a/b/c/g#s/../x'],
  ['http:g', 'http:g'],
]

/** LuaSocket's escape: bytes other than ASCII letters, digits and "_" as %xx (lowercase). */
function escaped(bytes: Uint8Array): string {
  let s = ''
  for (const b of bytes) {
    const c = String.fromCharCode(b)
    s += /[A-Za-z0-9_]/.test(c) ? c : `%${b.toString(16).padStart(2, '0')}`
  }
  return s
}

for (const engineName of ['wasmoon', 'fengari'] as const) {
  describe(`socket.url (${engineName})`, () => {
    let env: LuaEnvironment
    let dir: string
    useEnvironment(engineName, 'dovepush-url-', (e, d) => {
      env = e
      dir = d
    })

    it('is a table of functions with LuaSocket\'s _VERSION', () => {
      expect(lua(env, 'return url._VERSION, type(url.escape), type(url.absolute), require("socket.url") == url')).toEqual(['URL 1.0.3', 'function', 'function', 'true'])
    })

    it('escapes every byte but letters, digits and "_" as %xx in lowercase (the manual\'s example)', () => {
      expect(lua(env, 'return url.escape("/#?;")')).toEqual(['%2f%23%3f%3b'])
      expect(lua(env, 'return url.escape("a b-_.!~*\'()é")')).toEqual(['a%20b%2d_%2e%21%7e%2a%27%28%29%c3%a9'])
      expect(lua(env, 'return url.escape(""), url.escape("\\0\\255"), url.escape(123)')).toEqual(['', '%00%ff', '123'])
      const all = Uint8Array.from({ length: 256 }, (_, i) => i)
      expect(lua(env, 'local t = {} for b = 0, 255 do t[#t + 1] = string.char(b) end return url.escape(table.concat(t))')).toEqual([escaped(all)])
      const text = 'From: Zoë <zoe@example.com> — 件名 ✓ 100% & more'
      expect(lua(env, `return url.escape(${q(text)})`)).toEqual([escaped(new TextEncoder().encode(text))])
    })

    it('unescapes %xx in either case and leaves anything else', () => {
      expect(lua(env, 'return url.unescape("%41%4a%4A%zz%4%%25"), url.unescape("a+b%20c"), url.unescape("%e2%9c%93")')).toEqual(['AJJ%zz%4%%', 'a+b c', '✓'])
    })

    it('round-trips any bytes through escape and unescape', () => {
      expect(lua(env, `
        local all = {} for b = 0, 255 do all[#all + 1] = string.char(b) end
        local samples = { "", " ", "hello world", "a+b=c&d", ${q('héllo wörld ✓ 件名')}, "\\0\\1\\r\\n", table.concat(all), string.rep(table.concat(all), 3) }
        for i, s in ipairs(samples) do
          local e = url.escape(s)
          if url.unescape(e) ~= s then return "sample " .. i end
          if e:find("[^%w_%%]") then return "unsafe output " .. i end
        end
        return "ok"`)).toEqual(['ok'])
    })

    it('parses a URL with userinfo, port, query and fragment', () => {
      expect(parse(env, 'http://user:pw@host:8080/p/a?q=1#f')).toEqual({
        scheme: 'http', authority: 'user:pw@host:8080', userinfo: 'user:pw', user: 'user', password: 'pw', host: 'host', port: '8080', path: '/p/a', query: 'q=1', fragment: 'f',
      })
      expect(lua(env, 'return type(url.parse("http://h:8080").port)')).toEqual(['string'])
    })

    it('parses URLs without some parts, with params, and IPv6 literal hosts', () => {
      expect(parse(env, 'http://www.example.com/cgilua/index.lua?a=2#there')).toEqual({ scheme: 'http', authority: 'www.example.com', host: 'www.example.com', path: '/cgilua/index.lua', query: 'a=2', fragment: 'there' })
      expect(parse(env, 'ftp://root:passwd@unsafe.org/pub/virus.exe;type=i')).toEqual({
        scheme: 'ftp', authority: 'root:passwd@unsafe.org', userinfo: 'root:passwd', user: 'root', password: 'passwd', host: 'unsafe.org', path: '/pub/virus.exe', params: 'type=i',
      })
      expect(parse(env, 'http://[::1]:8080/x')).toEqual({ scheme: 'http', authority: '[::1]:8080', host: '::1', port: '8080', path: '/x' })
      expect(parse(env, 'https://[2001:db8::7]/')).toEqual({ scheme: 'https', authority: '[2001:db8::7]', host: '2001:db8::7', path: '/' })
      expect(parse(env, 'http://example.com')).toEqual({ scheme: 'http', authority: 'example.com', host: 'example.com' })
      expect(parse(env, 'http://u@h/')).toEqual({ scheme: 'http', authority: 'u@h', userinfo: 'u', user: 'u', host: 'h', path: '/' })
      expect(parse(env, 'http://a:b:c@h:1')).toEqual({ scheme: 'http', authority: 'a:b:c@h:1', userinfo: 'a:b:c', user: 'a:b', password: 'c', host: 'h', port: '1' })
      expect(parse(env, 'http://h:/x')).toEqual({ scheme: 'http', authority: 'h:', host: 'h', port: '', path: '/x' })
      expect(parse(env, 'http://h/a;b;c?d;e#f?g')).toEqual({ scheme: 'http', authority: 'h', host: 'h', path: '/a', params: 'b;c', query: 'd;e', fragment: 'f?g' })
      expect(parse(env, 'http://h/p?#')).toEqual({ scheme: 'http', authority: 'h', host: 'h', path: '/p', query: '', fragment: '' })
      expect(parse(env, 'file:///etc/hosts')).toEqual({ scheme: 'file', authority: '', path: '/etc/hosts' })
      expect(parse(env, 'mailto:a@b.example')).toEqual({ scheme: 'mailto', path: 'a@b.example' })
      expect(parse(env, '//h/p')).toEqual({ authority: 'h', host: 'h', path: '/p' })
      expect(parse(env, '/p?q')).toEqual({ path: '/p', query: 'q' })
    })

    it('rejects an empty URL and copies the default table', () => {
      expect(lua(env, 'return url.parse("")')).toEqual(['nil', 'invalid url'])
      expect(lua(env, 'return url.parse(nil)')).toEqual(['nil', 'invalid url'])
      expect(lua(env, `
        local d = { scheme = "https", port = "443", path = "/default" }
        local t = url.parse("//h/p", d)
        return t.scheme, t.port, t.host, t.path, d.host, d.path, t ~= d`)).toEqual(['https', '443', 'h', '/p', 'nil', '/default', 'true'])
    })

    it('builds a parsed URL back into the same string', () => {
      const urls = [
        'http://user:pw@host:8080/p/a?q=1#f', 'http://[::1]:8080/x', 'https://example.com/', 'http://example.com',
        'ftp://root:passwd@unsafe.org/pub/virus.exe;type=i', 'mailto:a@b.example', 'file:///etc/hosts', '/p?q#f', '//h/p',
        'http://u@h', 'http://:p@h', 'http://h/a;b;c?d;e#f?g', 'https://push.example.com/v1/notify?user=a%40b&x=1',
      ]
      for (const u of urls) expect(lua(env, `return url.build(url.parse(${q(u)}))`)).toEqual([u])
    })

    it('builds from host, port, user and password before userinfo and authority', () => {
      expect(lua(env, 'return url.build{ scheme = "http", host = "::1", port = 80, path = "/x", user = "u", password = "p", userinfo = "zz", authority = "ignored" }')).toEqual(['http://u:p@[::1]:80/x'])
      expect(lua(env, 'return url.build{ host = "h", userinfo = "ui", path = "/p" }, url.build{ authority = "au", path = "/p" }, url.build{ host = "h", password = "pw" }, url.build{}')).toEqual(['//ui@h/p', '//au/p', '//h', ''])
      expect(lua(env, 'return url.build{ scheme = "https", host = "h", path = "/p", params = "a", query = "b", fragment = "c" }')).toEqual(['https://h/p;a?b#c'])
    })

    it('resolves the RFC 3986 §5.4.1 normal examples', () => {
      for (const [ref, target] of RFC3986_NORMAL) expect([ref, ...lua(env, `return url.absolute(${q(BASE)}, ${q(ref)})`)]).toEqual([ref, target])
    })

    it('resolves the RFC 3986 §5.4.2 abnormal examples', () => {
      for (const [ref, target] of RFC3986_ABNORMAL) expect([ref, ...lua(env, `return url.absolute(${q(BASE)}, ${q(ref)})`)]).toEqual([ref, target])
    })

    it('resolves against a parsed base table and in other cases', () => {
      expect(lua(env, `return url.absolute(url.parse(${q(BASE)}), "../g")`)).toEqual(['http://a/b/g'])
      expect(lua(env, 'return url.absolute({ scheme = "http", host = "a", path = "/b/c" }, "d")')).toEqual(['http://a/b/d'])
      expect(lua(env, 'return url.absolute("http://a", "g"), url.absolute("http://a", "?x"), url.absolute("http://a/b/c/d;p?q", "//g/../x?y")')).toEqual(['http://a/g', 'http://a?x', 'http://g/x?y'])
      expect(lua(env, 'return url.absolute("https://u:p@[::1]:8443/api/v1/", "notify?x=1")')).toEqual(['https://u:p@[::1]:8443/api/v1/notify?x=1'])
      expect(lua(env, 'return url.absolute("", "g"), url.absolute("http://a/b#f", "")')).toEqual(['g', 'http://a/b#f'])
    })

    it('splits a path into unescaped segments', () => {
      expect(lua(env, `
        local p = url.parse_path("/a/b%20c/d%2Fe/")
        return #p, p[1], p[2], p[3], p.is_absolute, p.is_directory`)).toEqual(['3', 'a', 'b c', 'd/e', '1', '1'])
      expect(lua(env, 'local p = url.parse_path("a//b") return #p, p[1], p[2], p.is_absolute, p.is_directory')).toEqual(['2', 'a', 'b', 'nil', 'nil'])
      expect(lua(env, 'local p = url.parse_path("") return #p, p.is_absolute, p.is_directory')).toEqual(['0', 'nil', 'nil'])
      expect(lua(env, 'local p = url.parse_path("/") return #p, p.is_absolute, p.is_directory')).toEqual(['0', '1', '1'])
      expect(lua(env, 'local p = url.parse_path("a/./b/../c") return table.concat(p, ",")')).toEqual(['a,.,b,..,c'])
    })

    it('builds a path, protecting reserved characters unless told not to', () => {
      expect(lua(env, 'local p = url.parse_path("/a/b%20c/d/") return url.build_path(p), url.build_path(p, true)')).toEqual(['/a/b%20c/d/', '/a/b c/d/'])
      expect(lua(env, `return url.build_path({ "a b", "c/d", ${q('é')}, "x:@&=+$,-_.!~*'()", "%?#;" })`)).toEqual(["a%20b/c%2Fd/%C3%A9/x:@&=+$,-_.!~*'()/%25%3F%23%3B"])
      expect(lua(env, 'return url.build_path({ "a b", "c/d" }, 1), url.build_path({ "a b" }, false)')).toEqual(['a b/c/d', 'a%20b'])
      expect(lua(env, 'return url.build_path({ "a", "", "b", is_absolute = 1, is_directory = 1 }), url.build_path({ "x", is_directory = 1 })')).toEqual(['/a//b/', 'x/'])
      expect(lua(env, 'return url.build_path({}), url.build_path({ is_absolute = 1 }), url.build_path({ is_directory = 1 })')).toEqual(['', '/', ''])
      expect(lua(env, 'local s = "/x/a%20b/%C3%A9/" return url.build_path(url.parse_path(s)) == s')).toEqual(['true'])
    })
  })
}
