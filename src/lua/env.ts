// What every binding of a Lua state can reach: the state, its caller, its
// logger and the Dovecot version being imitated. Built once per session.

import type { Logger } from 'pino'
import type { LuaCaller } from './call.js'
import type { LuaApi, LuaThread } from './engine.js'
import type { HttpTarget } from '../http/capture-sink.js'
import type { GcWatch } from './stdlib/gc.js'
import type { HttpRequestReport } from './dovecot/http.js'

export type DovecotVersion = '2.3' | '2.4'
export const DOVECOT_VERSIONS: readonly DovecotVersion[] = ['2.3', '2.4']

export interface LuaEnv {
  readonly api: LuaApi
  /** The main thread (setup work happens here; script calls run on the caller's thread). */
  readonly L: LuaThread
  readonly caller: LuaCaller
  /** The session's logger: carries user, service and session bindings. */
  readonly log: Logger
  readonly dovecot: DovecotVersion
  /** The script path as given (chunkname "@" + path, as luaL_loadfile). */
  readonly scriptPath: string
  /** mail_debug: whether debug-level event logs are wanted (spec §6). */
  readonly debug: boolean
  /** Whether the full GC after each transaction can be seen yet (stdlib/gc.ts). */
  readonly gc: GcWatch
  /** `--http capture`: every HTTP connection a script opens goes here instead. */
  readonly httpTarget?: HttpTarget
  /** CA certificates dovecot.http trusts for https (the defaults plus ssl_client_ca_file's), when that setting is given. */
  readonly httpCa?: readonly string[]
  /** Told of every finished script HTTP request (dovecot.http and socket.http); nothing is timed when unset. */
  readonly onHttpRequest?: (r: HttpRequestReport) => void
}

/** A table of host functions keyed by their exact Lua names (Dovecot's luaL_Reg). */
export type LuaMethods = Readonly<Record<string, (L: LuaThread) => number>>

/**
 * Pushes a metatable the way luaL_newmetatable + luaL_setfuncs make Dovecot's:
 * the methods under their Lua names, `__name`, and `__index` = itself.
 */
export function pushMethodTable(env: LuaEnv, name: string, methods: LuaMethods, prefix: string): void {
  const { api, L } = env
  api.createtable(L, 0, Object.keys(methods).length + 2)
  for (const [k, fn] of Object.entries(methods)) {
    api.pushfunction(L, fn, `${prefix}${k}`)
    api.setfield(L, -2, k)
  }
  api.pushstring(L, name)
  api.setfield(L, -2, '__name')
  api.pushvalue(L, -1)
  api.setfield(L, -2, '__index')
}

/**
 * Runs one of dovepush's own Lua chunks (table and closure builders made
 * once per state) on L and leaves its first result there. `name` shows in
 * the chunk name; a chunk that does not compile is dovepush's bug.
 */
export function runOwnChunk(api: LuaApi, L: LuaThread, name: string, source: string): void {
  if (api.load(L, new TextEncoder().encode(source), `=(dovepush ${name})`, 't') !== 0) {
    throw new Error(`dovepush internal error: ${name}: ${api.tostring(L, -1)}`)
  }
  api.call(L, 0, 1)
}
