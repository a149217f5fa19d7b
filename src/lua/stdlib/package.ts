// require, loadfile and dofile on the real disk, after Lua 5.4's loadlib.c
// and lauxlib.c (luaL_loadfilex).
//
// Under Dovecot a script requires modules from its own folder or from
// /usr/share/lua/5.4; wasmoon's loadlib only sees emscripten's in-memory
// file system. The engine's `require` (ll_require) is kept: it reads
// package.searchers on every call, so replacing the searchers is enough.
// C modules cannot be loaded here; the C searchers only say what they found
// so that "module 'x' not found:" lists the same places Lua would.
//
// Lua strings are handled as latin1 JS strings (one char per byte) so file
// names survive byte for byte.

import * as fs from 'node:fs'
import { type LuaApi, type LuaThread, LuaType } from '../engine.js'
import { checkBytes, cPath, strerror, sysError } from './os.js'

/** Debian 12's package.cpath for lua5.4 (liblua5.4-0 5.4.4-3+deb12u1, read from the library). */
export const DEBIAN_LUA_CPATH =
  '/usr/local/lib/lua/5.4/?.so;/usr/lib/x86_64-linux-gnu/lua/5.4/?.so;/usr/lib/lua/5.4/?.so;' +
  '/usr/local/lib/lua/5.4/loadall.so;./?.so'

export interface PackageOptions {
  readonly path: string
}

const bin = (b: Uint8Array): string => Buffer.from(b).toString('latin1')
const bytes = (s: string): Buffer => Buffer.from(s, 'latin1')
const utf8 = (s: string): string => bytes(s).toString()

/** loadlib readable(): fopen(name, "r") succeeds (a directory does, on Linux). */
function readable(name: string): boolean {
  try {
    fs.closeSync(fs.openSync(cPath(bytes(name)), 'r'))
    return true
  } catch {
    return false
  }
}

// dofile runs the chunk with a tail call, so a script function it loads can
// still wait (yield) as under luaB_dofile's lua_callk continuation.
const DOFILE = `
local load, error = ...
return function(filename)
  local dofile = load -- argument errors then name 'dofile'
  local f, msg = dofile(filename)
  if not f then error(msg, 0) end
  return f()
end
`

export function registerPackage(api: LuaApi, L: LuaThread, options: PackageOptions): void {
  // Lua 5.4 searchers return "no file 'a'\n\tno file 'b'" and findloader adds
  // the "\n\t" before each; 5.3's (fengari) carry their own "\n\t" prefix.
  const v53 = api.version === 'Lua 5.3'
  const entry = v53 ? '\n\t' : ''

  if (api.getglobal(L, 'package') !== LuaType.TABLE) throw new Error('dovepush: the package library is not open')
  api.pushstring(L, options.path)
  api.setfield(L, -2, 'path')
  api.pushstring(L, DEBIAN_LUA_CPATH)
  api.setfield(L, -2, 'cpath')
  api.pushvalue(L, -1)
  const packageRef = api.ref(L)

  /** searchpath: the first readable file, or Lua's "no file" list. */
  const searchPath = (name: string, path: string, sep: string, rep: string): { file?: string; tried: string } => {
    if (sep !== '' && name.includes(sep[0] as string)) name = name.split(sep).join(rep)
    let names = path.split('?').join(name).split(';')
    if (v53) names = names.filter((n) => n !== '') // 5.3 pushnexttemplate skips empty templates
    const tried: string[] = []
    for (const n of names) {
      if (readable(n)) return { file: n, tried: '' }
      tried.push(n)
    }
    return { tried: v53 ? tried.map((n) => `\n\tno file '${n}'`).join('') : `no file '${tried.join("'\n\tno file '")}'` }
  }

  /** findfile: searches package[pname] (read from the package table itself, as loadlib's upvalue). */
  const findFile = (FL: LuaThread, name: string, pname: string): { file?: string; tried: string } => {
    api.pushref(FL, packageRef)
    api.getfield(FL, -1, pname)
    const path = api.tobytes(FL, -1)
    api.pop(FL, 2)
    if (path === undefined) return api.raise(FL, `'package.${pname}' must be a string`)
    return searchPath(name, bin(path), '.', '/')
  }

  /** luaL_loadfilex's reading: the chunk (BOM and '#' first line skipped) or the errfile message. */
  const readChunk = (filename: string | undefined): { chunk: Uint8Array; chunkname: string } | { error: string } => {
    let data: Buffer
    let fd = 0
    try {
      if (filename !== undefined) fd = fs.openSync(cPath(bytes(filename)), 'r')
    } catch (err) {
      return { error: `cannot open ${filename}: ${strerror(sysError(err))}` }
    }
    try {
      data = fs.readFileSync(fd)
    } catch (err) {
      return { error: `cannot read ${filename ?? 'stdin'}: ${strerror(sysError(err))}` }
    } finally {
      if (filename !== undefined) fs.closeSync(fd)
    }
    let i = data[0] === 0xef && data[1] === 0xbb && data[2] === 0xbf ? 3 : 0
    let comment = false
    if (data[i] === 0x23) {
      // skipcomment: drop the first line, keep its newline so line numbers stay right
      const nl = data.indexOf(10, i)
      i = nl < 0 ? data.length : nl + 1
      comment = true
    }
    let chunk: Uint8Array = data.subarray(i)
    if (comment && data[i] !== 0x1b) chunk = Buffer.concat([Buffer.from('\n'), chunk])
    return { chunk, chunkname: filename === undefined ? '=stdin' : `@${utf8(filename)}` }
  }

  /** luaL_loadfilex: pushes the function or the error message; returns the status. */
  const loadFile = (FL: LuaThread, filename: string | undefined, mode: string): number => {
    const r = readChunk(filename)
    if ('error' in r) {
      api.pushbytes(FL, bytes(r.error))
      return 6 // LUA_ERRFILE
    }
    return api.load(FL, r.chunk, r.chunkname, mode as 'bt')
  }

  const optBin = (FL: LuaThread, arg: number): string | undefined =>
    api.type(FL, arg) <= LuaType.NIL ? undefined : bin(checkBytes(api, FL, arg))

  api.pushfunction(L, (FL) => {
    const name = bin(checkBytes(api, FL, 1))
    const path = bin(checkBytes(api, FL, 2))
    const r = searchPath(name, path, optBin(FL, 3) ?? '.', optBin(FL, 4) ?? '/')
    if (r.file !== undefined) {
      api.pushbytes(FL, bytes(r.file))
      return 1
    }
    api.pushnil(FL)
    api.pushbytes(FL, bytes(r.tried))
    return 2
  }, 'package.searchpath')
  api.setfield(L, -2, 'searchpath')

  // package.searchers: the engine's preload searcher, then Lua files, C files, C roots (loadlib's order).
  api.createtable(L, 4, 0)
  if (api.getfield(L, -2, 'searchers') === LuaType.TABLE) api.rawgeti(L, -1, 1)
  else api.pushnil(L)
  api.remove(L, -2)
  api.rawseti(L, -2, 1)

  const notFound = (FL: LuaThread, tried: string): number => {
    api.pushbytes(FL, bytes(tried))
    return 1
  }
  const noCModule = (FL: LuaThread, file: string): number => {
    api.pushbytes(FL, bytes(`${entry}no C modules in dovepush: '${file}'`))
    return 1
  }
  const searchers: Array<(FL: LuaThread) => number> = [
    (FL) => {
      const name = bin(checkBytes(api, FL, 1))
      const r = findFile(FL, name, 'path')
      if (r.file === undefined) return notFound(FL, r.tried)
      if (loadFile(FL, r.file, 'bt') !== 0) {
        // checkload: the searcher raises, require does not go on
        const msg = bin(api.tobytes(FL, -1) ?? new Uint8Array())
        api.pushbytes(FL, bytes(`error loading module '${name}' from file '${r.file}':\n\t${msg}`))
        return api.error(FL)
      }
      api.pushbytes(FL, bytes(r.file)) // the loader's second argument
      return 2
    },
    (FL) => {
      const r = findFile(FL, bin(checkBytes(api, FL, 1)), 'cpath')
      return r.file === undefined ? notFound(FL, r.tried) : noCModule(FL, r.file)
    },
    (FL) => {
      const name = bin(checkBytes(api, FL, 1))
      const dot = name.indexOf('.')
      if (dot < 0) return 0 // a root name: nothing to say
      const r = findFile(FL, name.slice(0, dot), 'cpath')
      return r.file === undefined ? notFound(FL, r.tried) : noCModule(FL, r.file)
    },
  ]
  searchers.forEach((fn, i) => {
    api.pushfunction(L, fn, `package.searchers[${i + 2}]`)
    api.rawseti(L, -2, i + 2)
  })
  api.setfield(L, -2, 'searchers')
  api.pop(L, 1)

  // loadfile(filename, mode, env): luaB_loadfile + load_aux. With env, the
  // engine's own `load` sets it as the chunk's first upvalue (_ENV), which
  // needs no lua_setupvalue in the engine interface.
  api.getglobal(L, 'load')
  const loadRef = api.ref(L)
  const loadfile = (FL: LuaThread): number => {
    const filename = optBin(FL, 1)
    const mode = optBin(FL, 2) ?? 'bt'
    if (api.type(FL, 3) === LuaType.NONE) {
      if (loadFile(FL, filename, mode) === 0) return 1
      api.pushnil(FL)
      api.insert(FL, -2)
      return 2
    }
    const r = readChunk(filename)
    if ('error' in r) {
      api.pushnil(FL)
      api.pushbytes(FL, bytes(r.error))
      return 2
    }
    const top = api.gettop(FL)
    api.pushref(FL, loadRef)
    api.pushbytes(FL, r.chunk)
    api.pushstring(FL, r.chunkname)
    api.pushbytes(FL, bytes(mode))
    api.pushvalue(FL, 3)
    api.call(FL, 4, -1)
    return api.gettop(FL) - top
  }
  api.pushfunction(L, loadfile, 'loadfile')
  api.setglobal(L, 'loadfile')

  if (api.load(L, new TextEncoder().encode(DOFILE), '=[dovepush dofile]', 't') !== 0) {
    throw new Error(`dovepush dofile wrapper failed to load: ${api.tostring(L, -1)}`)
  }
  api.pushfunction(L, (FL) => {
    api.settop(FL, 1)
    return loadfile(FL)
  }, 'dofile')
  api.getglobal(L, 'error')
  api.call(L, 2, 1)
  api.setglobal(L, 'dofile')
}
