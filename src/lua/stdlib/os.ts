// os.getenv/remove/rename/tmpname/execute/exit on the real machine.
//
// wasmoon's own loslib sees emscripten's in-memory file system and an empty
// environment; under Dovecot these calls reach the mail process's machine,
// and scripts rely on it. Results follow Lua 5.4's loslib.c: failures are
// luaL_fileresult triples (nil, message, errno) with glibc's strerror text.
// os.time/clock/date/difftime are left as the engine provides them.
//
// This file also holds the luaL_fileresult helpers shared by io.ts and
// package.ts.

import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { constants as osConstants, tmpdir } from 'node:os'
import { getSystemErrorMap } from 'node:util'
import { type LuaApi, type LuaThread, LuaType } from '../engine.js'

/** A failed system call: its errno name and number (positive, as in C). */
export interface SysError {
  readonly code: string
  readonly errno: number
}

// glibc's strerror(3) texts; Node only knows libuv's lower-case variants
// ("no such file or directory"), which scripts would see differ from Dovecot.
const GLIBC_STRERROR: Readonly<Record<string, string>> = {
  EPERM: 'Operation not permitted', ENOENT: 'No such file or directory', ESRCH: 'No such process',
  EINTR: 'Interrupted system call', EIO: 'Input/output error', ENXIO: 'No such device or address',
  E2BIG: 'Argument list too long', ENOEXEC: 'Exec format error', EBADF: 'Bad file descriptor',
  ECHILD: 'No child processes', EAGAIN: 'Resource temporarily unavailable', ENOMEM: 'Cannot allocate memory',
  EACCES: 'Permission denied', EFAULT: 'Bad address', EBUSY: 'Device or resource busy', EEXIST: 'File exists',
  EXDEV: 'Invalid cross-device link', ENODEV: 'No such device', ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory', EINVAL: 'Invalid argument', ENFILE: 'Too many open files in system',
  EMFILE: 'Too many open files', ENOTTY: 'Inappropriate ioctl for device', ETXTBSY: 'Text file busy',
  EFBIG: 'File too large', ENOSPC: 'No space left on device', ESPIPE: 'Illegal seek',
  EROFS: 'Read-only file system', EMLINK: 'Too many links', EPIPE: 'Broken pipe',
  ENAMETOOLONG: 'File name too long', ENOTEMPTY: 'Directory not empty',
  ELOOP: 'Too many levels of symbolic links', EDQUOT: 'Disk quota exceeded', ENOSYS: 'Function not implemented',
  ENOTSUP: 'Operation not supported', EOPNOTSUPP: 'Operation not supported', ESTALE: 'Stale file handle',
  EOVERFLOW: 'Value too large for defined data type',
}

/** The errno of a Node system error; rethrows anything else (a dovepush bug, reported as such). */
export function sysError(err: unknown): SysError {
  const e = err as { code?: unknown; errno?: unknown }
  if (typeof e === 'object' && e !== null && typeof e.code === 'string') {
    const byName = (osConstants.errno as Record<string, number | undefined>)[e.code]
    const errno = typeof e.errno === 'number' ? Math.abs(e.errno) : byName
    if (errno !== undefined) return { code: e.code, errno }
  }
  throw err
}

export function strerror(e: SysError): string {
  const known = GLIBC_STRERROR[e.code]
  if (known !== undefined) return known
  const uv = getSystemErrorMap().get(-e.errno)?.[1] ?? `Unknown error ${e.errno}`
  return uv.charAt(0).toUpperCase() + uv.slice(1)
}

/** luaL_fileresult(L, 0, fname): pushes nil, "[fname: ]strerror", errno and returns 3. */
export function pushFileResult(api: LuaApi, L: LuaThread, e: SysError, fname?: Uint8Array): number {
  api.pushnil(L)
  const msg = strerror(e)
  if (fname === undefined) api.pushstring(L, msg)
  else api.pushbytes(L, Buffer.concat([fname, Buffer.from(`: ${msg}`)]))
  api.pushinteger(L, e.errno)
  return 3
}

/** A C string from Lua bytes: C stops at the first NUL, so do we. */
export function cPath(bytes: Uint8Array): Buffer {
  const b = Buffer.from(bytes)
  const nul = b.indexOf(0)
  return nul < 0 ? b : b.subarray(0, nul)
}

/** luaL_checklstring: the bytes of a string or number argument, else a type error. */
export function checkBytes(api: LuaApi, L: LuaThread, arg: number): Uint8Array {
  const b = api.tobytes(L, arg)
  if (b === undefined) api.typeerror(L, arg, 'string')
  return b
}

export interface OsOptions {
  readonly env: NodeJS.ProcessEnv
}

const TMPNAME_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'

export function registerOs(api: LuaApi, L: LuaThread, options: OsOptions): void {
  const env = options.env
  if (api.getglobal(L, 'os') !== LuaType.TABLE) {
    api.pop(L, 1)
    api.createtable(L, 0, 8)
    api.pushvalue(L, -1)
    api.setglobal(L, 'os')
  }
  const set = (name: string, fn: (FL: LuaThread) => number): void => {
    api.pushfunction(L, fn, `os.${name}`)
    api.setfield(L, -2, name)
  }

  set('getenv', (FL) => {
    const value = env[Buffer.from(checkBytes(api, FL, 1)).toString()]
    if (value === undefined) api.pushnil(FL)
    else api.pushstring(FL, value)
    return 1
  })

  // loslib os_remove calls C remove(3): unlink, and rmdir when the path is a directory.
  set('remove', (FL) => {
    const name = checkBytes(api, FL, 1)
    const path = cPath(name)
    try {
      try {
        fs.unlinkSync(path)
      } catch (err) {
        if (sysError(err).code !== 'EISDIR') throw err
        fs.rmdirSync(path)
      }
    } catch (err) {
      return pushFileResult(api, FL, sysError(err), name)
    }
    api.pushboolean(FL, true)
    return 1
  })

  // os_rename reports the error without a file name (luaL_fileresult(L, stat, NULL)).
  set('rename', (FL) => {
    const from = cPath(checkBytes(api, FL, 1))
    const to = cPath(checkBytes(api, FL, 2))
    try {
      fs.renameSync(from, to)
    } catch (err) {
      return pushFileResult(api, FL, sysError(err))
    }
    api.pushboolean(FL, true)
    return 1
  })

  // lua_tmpnam with mkstemp: the name of a new empty file (lua_XXXXXX), so
  // no other process can take it between tmpname() and io.open().
  set('tmpname', (FL) => {
    for (let attempt = 0; attempt < 100; attempt++) {
      let suffix = ''
      for (let i = 0; i < 6; i++) suffix += TMPNAME_CHARS[Math.floor(Math.random() * TMPNAME_CHARS.length)]
      const name = `${tmpdir()}/lua_${suffix}`
      try {
        fs.closeSync(fs.openSync(name, 'wx', 0o600))
      } catch (err) {
        if (sysError(err).code === 'EEXIST') continue
        break
      }
      api.pushstring(FL, name)
      return 1
    }
    return api.raise(FL, 'unable to generate a unique filename')
  })

  // os_execute: system(3) through /bin/sh; luaL_execresult's true|nil, "exit"|"signal", code.
  set('execute', (FL) => {
    if (api.type(FL, 1) <= LuaType.NIL) {
      api.pushboolean(FL, true) // system(NULL): a shell is available
      return 1
    }
    const cmd = Buffer.from(checkBytes(api, FL, 1)).toString()
    const r = spawnSync('/bin/sh', ['-c', cmd], { stdio: ['ignore', 'inherit', 'inherit'] })
    if (r.error !== undefined) return pushFileResult(api, FL, sysError(r.error))
    if (r.signal !== null) {
      api.pushnil(FL)
      api.pushstring(FL, 'signal')
      api.pushinteger(FL, osConstants.signals[r.signal] ?? 0)
      return 3
    }
    const code = r.status ?? 0
    if (code === 0) api.pushboolean(FL, true)
    else api.pushnil(FL)
    api.pushstring(FL, 'exit')
    api.pushinteger(FL, code)
    return 3
  })

  // Under Dovecot os.exit() ends the whole mail process (every user's
  // session with it); dovepush refuses instead of dying, loudly.
  set('exit', (FL) => api.raise(FL, 'os.exit() would end the whole Dovecot mail process; dovepush does not stop for it'))

  api.pop(L, 1)
}
