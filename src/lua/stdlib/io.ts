// The io library on the real disk, after Lua 5.4's liolib.c.
//
// wasmoon's liolib works on emscripten's in-memory file system; under Dovecot
// io reaches the machine. Files are full userdata sharing one "FILE*"
// metatable; a weak-keyed registry table maps each userdata to the id of its
// JS state (fd, position, read-ahead buffer), so the state lives exactly as
// long as the userdata (__gc drops it). Reads and writes use explicit
// positions (pread/pwrite) on regular files, as stdio's single position
// would; append-mode writes go to the end (O_APPEND). Writes are unbuffered.
// Longer than most files here: it is one port of liolib.c's function table;
// the buffered file itself is in io-file.ts.

import * as fs from 'node:fs'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { type LuaApi, type LuaThread, LuaType } from '../engine.js'
import { type SysError, checkBytes, cPath, pushFileResult, strerror, sysError } from './os.js'
import { dropBuffer, EMPTY, type LFile, MODE, openFlags, peek, readChars, readLine, scanNumber, formatG14, writeBytes } from './io-file.js'

export { formatG14 } from './io-file.js'

const MAXARGLINE = 250
const IO_INPUT = '_IO_input'
const IO_OUTPUT = '_IO_output'
const { O_RDWR, O_CREAT, O_EXCL } = fs.constants

// The iterator of lines() is a Lua closure so that it keeps the file (and its
// formats) alive for the GC; the reading is done by the host `readline`.
const HELPERS = `
local readline, select, unpack, tonumber = ...
local function lines(f, toclose, ...)
  local n, fmts = select('#', ...), { ... }
  return function() return readline(f, toclose, n, unpack(fmts, 1, n)) end
end
return lines, tonumber
`

/** `onOpen` is told of every file opened by the script (not the standard ones). */
export function registerIo(api: LuaApi, L: LuaThread, onOpen: () => void = () => {}): void {
  const files = new Map<number, LFile>()
  let nextId = 1
  const R = api.REGISTRYINDEX

  api.createtable(L, 0, 0)
  api.createtable(L, 0, 1)
  api.pushstring(L, 'k')
  api.setfield(L, -2, '__mode')
  api.setmetatable(L, -2)
  const weakRef = api.ref(L)

  /** The state of the FILE* at idx, or undefined when the value is not one of our files. */
  const lookup = (FL: LuaThread, idx: number): LFile | undefined => {
    const i = api.absindex(FL, idx)
    api.pushref(FL, weakRef)
    api.pushvalue(FL, i)
    api.rawget(FL, -2)
    const id = api.tointeger(FL, -1)
    api.pop(FL, 2)
    return id === undefined ? undefined : files.get(id)
  }
  /** liolib tofile: luaL_checkudata plus the closed check. */
  const tofile = (FL: LuaThread, idx = 1): LFile => {
    const f = lookup(FL, idx)
    if (f === undefined) return api.typeerror(FL, idx, 'FILE*')
    if (f.closed) return api.raise(FL, 'attempt to use a closed file')
    return f
  }

  let mtRef = 0
  /** Pushes a new FILE* for fd. */
  const newFile = (FL: LuaThread, fd: number, std: boolean, append: boolean, positional: boolean): LFile => {
    if (!std) onOpen()
    const id = nextId++
    const f: LFile = { id, fd, std, positional, append, closed: false, pos: 0, buf: EMPTY, start: 0, eof: false }
    files.set(id, f)
    api.newuserdata(FL)
    api.pushref(FL, mtRef)
    api.setmetatable(FL, -2)
    api.pushref(FL, weakRef)
    api.pushvalue(FL, -2)
    api.pushinteger(FL, id)
    api.rawset(FL, -3)
    api.pop(FL, 1)
    return f
  }

  /** fopen + push; a SysError when it failed (nothing pushed). */
  const open = (FL: LuaThread, name: Uint8Array, mode: string): SysError | undefined => {
    let fd: number
    let positional: boolean
    try {
      fd = fs.openSync(cPath(name), openFlags(mode), 0o666)
      try {
        const st = fs.fstatSync(fd)
        positional = st.isFile() || st.isBlockDevice()
      } catch (err) {
        fs.closeSync(fd)
        throw err
      }
    } catch (err) {
      return sysError(err)
    }
    newFile(FL, fd, false, mode[0] === 'a', positional)
    return undefined
  }
  /** liolib opencheckfile: open or raise. */
  const openCheck = (FL: LuaThread, name: Uint8Array, mode: string): void => {
    const e = open(FL, name, mode)
    if (e !== undefined) api.raise(FL, `cannot open file '${Buffer.from(name).toString()}' (${strerror(e)})`)
  }

  /** aux_close: pushes its results and returns their count. */
  const auxClose = (FL: LuaThread, f: LFile): number => {
    if (f.std) {
      api.pushnil(FL)
      api.pushstring(FL, 'cannot close standard file')
      return 2
    }
    f.closed = true
    f.buf = EMPTY
    try {
      fs.closeSync(f.fd)
    } catch (err) {
      return pushFileResult(api, FL, sysError(err))
    }
    api.pushboolean(FL, true)
    return 1
  }

  const optString = (FL: LuaThread, arg: number, def: string): string =>
    api.type(FL, arg) <= LuaType.NIL ? def : Buffer.from(checkBytes(api, FL, arg)).toString()
  const checkInteger = (FL: LuaThread, arg: number): number => {
    const n = api.tointeger(FL, arg)
    if (n !== undefined) return n
    if (api.isnumber(FL, arg)) return api.argerror(FL, arg, 'number has no integer representation')
    return api.typeerror(FL, arg, 'number')
  }
  const optInteger = (FL: LuaThread, arg: number, def: number): number =>
    api.type(FL, arg) <= LuaType.NIL ? def : checkInteger(FL, arg)
  const checkOption = (FL: LuaThread, arg: number, def: string | undefined, names: string[]): string => {
    const name = def !== undefined ? optString(FL, arg, def) : Buffer.from(checkBytes(api, FL, arg)).toString()
    if (!names.includes(name)) api.argerror(FL, arg, `invalid option '${name}'`)
    return name
  }

  let tonumberRef = 0
  /** g_read: formats at first..first+nargs-1; pushes the results and returns their count. */
  const gread = (FL: LuaThread, f: LFile, first: number, nargs: number): number => {
    const base = api.gettop(FL)
    f.eof = false
    let failure: SysError | undefined
    const io = <T>(op: () => T): T | undefined => {
      try {
        return op()
      } catch (err) {
        failure = sysError(err)
        return undefined
      }
    }
    const pushOpt = (b: Uint8Array | undefined): boolean => {
      if (b === undefined) api.pushnil(FL)
      else api.pushbytes(FL, b)
      return b !== undefined
    }
    let success = true
    let n = first
    api.checkstack(FL, nargs + 20)
    if (nargs === 0) {
      success = pushOpt(io(() => readLine(f, false)))
      n = first + 1
    } else {
      for (; nargs-- > 0 && success && failure === undefined; n++) {
        if (api.type(FL, n) === LuaType.NUMBER) {
          const l = checkInteger(FL, n)
          if (l === 0) {
            success = io(() => peek(f) >= 0) ?? false // test_eof
            api.pushstring(FL, '')
          } else {
            const b = io(() => readChars(f, l < 0 ? Infinity : l))
            success = pushOpt(b !== undefined && b.length > 0 ? b : undefined)
          }
          continue
        }
        const p = Buffer.from(checkBytes(api, FL, n)).toString('latin1')
        const fmt = p[0] === '*' ? p[1] : p[0] // 5.3-style "*l" still accepted
        if (fmt === 'n') {
          const s = io(() => scanNumber(f)) ?? ''
          api.pushref(FL, tonumberRef)
          api.pushstring(FL, s)
          api.call(FL, 1, 1)
          success = api.type(FL, -1) !== LuaType.NIL
        } else if (fmt === 'l' || fmt === 'L') {
          success = pushOpt(io(() => readLine(f, fmt === 'L')))
        } else if (fmt === 'a') {
          api.pushbytes(FL, io(() => readChars(f, Infinity)) ?? EMPTY)
        } else {
          return api.argerror(FL, n, 'invalid format')
        }
      }
    }
    if (failure !== undefined) {
      api.settop(FL, base)
      return pushFileResult(api, FL, failure)
    }
    if (!success) {
      api.pop(FL, 1)
      api.pushnil(FL)
    }
    return n - first
  }

  /** g_write: values at arg..top-1, the file on top (returned on success). */
  const gwrite = (FL: LuaThread, f: LFile, arg: number): number => {
    let nargs = api.gettop(FL) - arg
    let failure: SysError | undefined
    for (; nargs-- > 0; arg++) {
      let b: Uint8Array
      if (api.type(FL, arg) === LuaType.NUMBER) {
        // LUA_INTEGER_FMT ("%lld", what lua_tolstring gives) or LUA_NUMBER_FMT ("%.14g", no ".0" added)
        // (a NaN's sign does not survive the trip to JS: keep the engine's own "-nan" when it has one)
        b = api.tobytes(FL, arg) as Uint8Array
        if (!api.isinteger(FL, arg) && !/^-?nan$/.test(Buffer.from(b).toString('latin1'))) {
          b = Buffer.from(formatG14(api.tonumber(FL, arg)))
        }
      } else {
        b = checkBytes(api, FL, arg)
      }
      if (failure !== undefined) continue
      try {
        writeBytes(f, b)
      } catch (err) {
        failure = sysError(err)
      }
    }
    return failure === undefined ? 1 : pushFileResult(api, FL, failure)
  }

  /** getiofile: pushes the default file and returns its state. */
  const getiofile = (FL: LuaThread, key: string): LFile => {
    api.getfield(FL, R, key)
    const f = lookup(FL, -1)
    if (f === undefined || f.closed) return api.raise(FL, `default ${key.slice(4)} file is closed`)
    return f
  }
  /** g_iofile: io.input / io.output. */
  const giofile = (key: string, mode: string) => (FL: LuaThread): number => {
    if (api.type(FL, 1) > LuaType.NIL) {
      const t = api.type(FL, 1)
      if (t === LuaType.STRING || t === LuaType.NUMBER) openCheck(FL, checkBytes(api, FL, 1), mode)
      else {
        tofile(FL, 1)
        api.pushvalue(FL, 1)
      }
      api.setfield(FL, R, key)
    }
    api.getfield(FL, R, key)
    return 1
  }

  let linesRef = 0
  /** aux_lines: the file at 1, formats at 2..top; pushes the iterator. */
  const auxLines = (FL: LuaThread, toclose: boolean): void => {
    const n = api.gettop(FL) - 1
    if (n > MAXARGLINE) api.argerror(FL, MAXARGLINE + 2, 'too many arguments')
    api.checkstack(FL, n + 4)
    api.pushref(FL, linesRef)
    api.pushvalue(FL, 1)
    api.pushboolean(FL, toclose)
    for (let i = 2; i <= n + 1; i++) api.pushvalue(FL, i)
    api.call(FL, n + 2, 1)
  }

  const methods: Record<string, (FL: LuaThread) => number> = {
    read: (FL) => gread(FL, tofile(FL), 2, api.gettop(FL) - 1),
    write: (FL) => {
      const f = tofile(FL)
      api.pushvalue(FL, 1)
      return gwrite(FL, f, 2)
    },
    lines: (FL) => {
      tofile(FL)
      auxLines(FL, false)
      return 1
    },
    close: (FL) => auxClose(FL, tofile(FL)),
    flush: (FL) => {
      tofile(FL)
      api.pushboolean(FL, true) // writes are unbuffered: fflush has nothing to do
      return 1
    },
    seek: (FL) => {
      const f = tofile(FL)
      const whence = checkOption(FL, 2, 'cur', ['set', 'cur', 'end'])
      const offset = optInteger(FL, 3, 0)
      if (!f.positional) return pushFileResult(api, FL, { code: 'ESPIPE', errno: 29 })
      dropBuffer(f)
      let base = 0
      try {
        base = whence === 'set' ? 0 : whence === 'cur' ? f.pos : fs.fstatSync(f.fd).size
      } catch (err) {
        return pushFileResult(api, FL, sysError(err))
      }
      if (base + offset < 0) return pushFileResult(api, FL, { code: 'EINVAL', errno: 22 })
      f.pos = base + offset
      api.pushinteger(FL, f.pos)
      return 1
    },
    setvbuf: (FL) => {
      tofile(FL)
      checkOption(FL, 2, undefined, ['no', 'full', 'line'])
      optInteger(FL, 3, 0)
      api.pushboolean(FL, true)
      return 1
    },
  }

  // The shared FILE* metatable (luaL_newmetatable also records it in the registry).
  api.createtable(L, 0, 5)
  api.pushstring(L, 'FILE*')
  api.setfield(L, -2, '__name')
  api.createtable(L, 0, 7)
  for (const [name, fn] of Object.entries(methods)) {
    api.pushfunction(L, fn, `FILE*:${name}`)
    api.setfield(L, -2, name)
  }
  api.setfield(L, -2, '__index')
  // io_fclose for a file still open; __gc also forgets the JS state (the
  // weak-keyed entry still resolves while the finalizer runs, Lua 5.4 §2.5.4).
  const closeQuietly = (FL: LuaThread, forget: boolean): number => {
    const f = lookup(FL, 1)
    if (f === undefined) return 0
    if (!f.closed && !f.std) {
      api.settop(FL, 1)
      auxClose(FL, f)
    }
    if (forget) files.delete(f.id)
    return 0
  }
  api.pushfunction(L, (FL) => closeQuietly(FL, true), 'FILE*:__gc')
  api.setfield(L, -2, '__gc')
  api.pushfunction(L, (FL) => closeQuietly(FL, false), 'FILE*:__close')
  api.setfield(L, -2, '__close')
  api.pushfunction(L, (FL) => {
    const f = lookup(FL, 1)
    if (f === undefined) return api.typeerror(FL, 1, 'FILE*')
    const p = api.topointer(FL, 1)
    api.pushstring(FL, f.closed ? 'file (closed)' : `file (0x${typeof p === 'number' ? p.toString(16) : f.fd.toString(16)})`)
    return 1
  }, 'FILE*:__tostring')
  api.setfield(L, -2, '__tostring')
  api.pushvalue(L, -1)
  api.setfield(L, R, 'FILE*')
  mtRef = api.ref(L)

  // Helpers: the lines() iterator factory and the original tonumber (lua_stringtonumber).
  // io_readline's luaL_error names the iterator's caller: level 2 here, past the Lua closure.
  const raiseAtCaller = (FL: LuaThread, msg: string): never => {
    api.pushstring(FL, api.where(FL, 2) + msg)
    return api.error(FL)
  }
  api.pushfunction(L, (FL) => {
    const f = lookup(FL, 1)
    if (f === undefined || f.closed) return raiseAtCaller(FL, 'file is already closed')
    const k = gread(FL, f, 4, api.tointeger(FL, 3) ?? 0)
    if (api.toboolean(FL, -k)) return k
    if (k > 1) return raiseAtCaller(FL, api.tostring(FL, -k + 1) ?? '') // the error message of a failed read
    if (api.toboolean(FL, 2)) auxClose(FL, f)
    return 0
  }, 'io.lines iterator')
  if (api.load(L, new TextEncoder().encode(HELPERS), '=[dovepush io]', 't') !== 0) {
    throw new Error(`dovepush io helpers failed to load: ${api.tostring(L, -1)}`)
  }
  api.insert(L, -2)
  api.getglobal(L, 'select')
  api.getglobal(L, 'table')
  api.getfield(L, -1, 'unpack')
  api.remove(L, -2)
  api.getglobal(L, 'tonumber')
  api.call(L, 4, 2)
  tonumberRef = api.ref(L)
  linesRef = api.ref(L)

  // The io table: the existing one is filled in place so package.loaded.io stays the same table.
  if (api.getglobal(L, 'io') !== LuaType.TABLE) {
    api.pop(L, 1)
    api.createtable(L, 0, 16)
    api.pushvalue(L, -1)
    api.setglobal(L, 'io')
    api.getglobal(L, 'package')
    if (api.type(L, -1) === LuaType.TABLE && api.getfield(L, -1, 'loaded') === LuaType.TABLE) {
      api.pushvalue(L, -3)
      api.setfield(L, -2, 'io')
    }
    api.settop(L, -3)
  }
  const io: Record<string, (FL: LuaThread) => number> = {
    open: (FL) => {
      const name = checkBytes(api, FL, 1)
      const mode = optString(FL, 2, 'r')
      if (!MODE.test(mode)) return api.argerror(FL, 2, 'invalid mode')
      const e = open(FL, name, mode)
      return e === undefined ? 1 : pushFileResult(api, FL, e, name)
    },
    close: (FL) => {
      if (api.type(FL, 1) === LuaType.NONE) api.getfield(FL, R, IO_OUTPUT)
      return auxClose(FL, tofile(FL))
    },
    read: (FL) => {
      const n = api.gettop(FL)
      return gread(FL, getiofile(FL, IO_INPUT), 1, n)
    },
    write: (FL) => gwrite(FL, getiofile(FL, IO_OUTPUT), 1),
    flush: (FL) => {
      getiofile(FL, IO_OUTPUT)
      api.pushboolean(FL, true)
      return 1
    },
    lines: (FL) => {
      if (api.type(FL, 1) === LuaType.NONE) api.pushnil(FL)
      let toclose = false
      if (api.type(FL, 1) === LuaType.NIL) {
        api.getfield(FL, R, IO_INPUT)
        api.remove(FL, 1)
        api.insert(FL, 1)
        tofile(FL)
      } else {
        openCheck(FL, checkBytes(api, FL, 1), 'r')
        api.remove(FL, 1)
        api.insert(FL, 1)
        toclose = true
      }
      auxLines(FL, toclose)
      if (!toclose) return 1
      api.pushnil(FL)
      api.pushnil(FL)
      api.pushvalue(FL, 1) // the to-be-closed variable of a generic for
      return 4
    },
    input: giofile(IO_INPUT, 'r'),
    output: giofile(IO_OUTPUT, 'w'),
    type: (FL) => {
      if (api.type(FL, 1) === LuaType.NONE) return api.argerror(FL, 1, 'value expected')
      const f = lookup(FL, 1)
      if (f === undefined) api.pushnil(FL)
      else api.pushstring(FL, f.closed ? 'closed file' : 'file')
      return 1
    },
    // liolib without LUA_USE_POSIX: Dovecot scripts get a clear error rather than a fake pipe.
    popen: (FL) => api.raise(FL, "'popen' not supported"),
    tmpfile: (FL) => {
      const name = `${tmpdir()}/lua_${randomBytes(6).toString('hex')}`
      try {
        const fd = fs.openSync(name, O_RDWR | O_CREAT | O_EXCL, 0o600)
        fs.unlinkSync(name)
        newFile(FL, fd, false, false, true)
      } catch (err) {
        return pushFileResult(api, FL, sysError(err))
      }
      return 1
    },
  }
  for (const [name, fn] of Object.entries(io)) {
    api.pushfunction(L, fn, `io.${name}`)
    api.setfield(L, -2, name)
  }
  const std: Array<[string, number]> = [['stdin', 0], ['stdout', 1], ['stderr', 2]]
  for (const [name, fd] of std) {
    newFile(L, fd, true, false, false)
    if (fd === 0) {
      api.pushvalue(L, -1)
      api.setfield(L, R, IO_INPUT)
    } else if (fd === 1) {
      api.pushvalue(L, -1)
      api.setfield(L, R, IO_OUTPUT)
    }
    api.setfield(L, -2, name)
  }
  api.pop(L, 1)
}
