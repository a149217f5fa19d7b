// One session's Lua environment: a fresh state with Dovecot's globals and a
// standard library bound to the real machine (spec §8: all standard
// libraries are open; io, os, require act on the real system).

import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import * as tls from 'node:tls'
import type { Logger } from 'pino'
import type { HttpTarget } from '../http/capture-sink.js'
import { LuaCaller } from './call.js'
import { registerDovecot } from './dovecot/dovecot.js'
import { type HttpRequestReport, pushHttp } from './dovecot/http.js'
import { registerUser, type UserBinding } from './dovecot/user.js'
import type { LuaEngine } from './engine.js'
import type { DovecotVersion, LuaEnv } from './env.js'
import { BUILTIN_MODULES } from './compat/builtin.js'
import { registerBuiltinModules } from './compat/modules.js'
import { registerCoroutine } from './stdlib/coroutine.js'
import { registerIo } from './stdlib/io.js'
import { registerOs } from './stdlib/os.js'
import { registerPackage } from './stdlib/package.js'
import { registerPrint } from './stdlib/print.js'
import { type FullGc, GcWatch, metatableCheck, registerGcWatch } from './stdlib/gc.js'

/** Debian 12's package.path for Lua 5.4 (recorded in spec §8). */
export const DEBIAN_LUA_PATH =
  '/usr/local/share/lua/5.4/?.lua;/usr/local/share/lua/5.4/?/init.lua;/usr/local/lib/lua/5.4/?.lua;' +
  '/usr/local/lib/lua/5.4/?/init.lua;/usr/share/lua/5.4/?.lua;/usr/share/lua/5.4/?/init.lua;./?.lua;./?/init.lua'

export interface EnvironmentOptions {
  readonly engine: LuaEngine
  readonly scriptPath: string
  readonly dovecot: DovecotVersion
  readonly log: Logger
  readonly debug: boolean
  readonly callTimeoutMs: number
  readonly memoryLimit: number
  /** package.path; default: the script's folder, then Debian's paths. */
  readonly packagePath?: string
  readonly processEnv?: NodeJS.ProcessEnv
  /** `--http capture`: where script HTTP connections go. */
  readonly httpTarget?: HttpTarget
  /** Told of every finished script HTTP request, dovecot.http or socket.http (URL without credentials); nothing is timed when unset. */
  readonly onHttpRequest?: (r: HttpRequestReport) => void
  /** When the full GC after each transaction runs (stdlib/gc.ts); default 'observable'. */
  readonly fullGc?: FullGc
  /** The session's settings: ssl_client_ca_file is read here (dovecot.http's https trust). */
  readonly settings?: Readonly<Record<string, string>>
}

/**
 * dovecot.http's CA list when ssl_client_ca_file is set: Node's own roots
 * plus the file's certificates. Dovecot's client takes its SSL settings from
 * the mail process's ssl_client_* settings (dlua_http_client_new); Debian's
 * default ssl_client_ca_dir is the system store, which Node's roots stand
 * in for. An unreadable file is logged and left out.
 */
function httpCa(options: EnvironmentOptions): readonly string[] | undefined {
  const file = options.settings?.ssl_client_ca_file
  if (file === undefined || file === '') return undefined
  try {
    return [...tls.rootCertificates, readFileSync(file.replace(/^</, ''), 'utf8')]
  } catch (err) {
    options.log.warn({ setting: 'ssl_client_ca_file' }, `dovecot.http: ssl_client_ca_file ${file} not read: ${(err as Error).message}`)
    return undefined
  }
}

export interface LuaEnvironment extends LuaEnv {
  readonly user: UserBinding
  /** registry ref of Lua's own collectgarbage, for the full GC after each transaction. */
  readonly gcRef: number
  /** registry ref of a function telling whether a metatable the script reaches through __index gained __gc or __mode. */
  readonly gcCheckRef: number
}

/** The default package.path for a script: its own folder first (where `require` looks under dovepush). */
export function defaultPackagePath(scriptPath: string): string {
  const dir = dirname(resolve(scriptPath))
  return `${dir}/?.lua;${dir}/?/init.lua;${DEBIAN_LUA_PATH}`
}

export function createEnvironment(options: EnvironmentOptions): LuaEnvironment {
  const api = options.engine.newState({ memoryLimit: options.memoryLimit })
  const L = api.main
  try {
    const caller = new LuaCaller(api, { callTimeoutMs: options.callTimeoutMs })
    const env: LuaEnv = {
      api,
      L,
      caller,
      log: options.log,
      dovecot: options.dovecot,
      scriptPath: options.scriptPath,
      debug: options.debug,
      gc: new GcWatch(options.fullGc ?? 'observable', (why) => {
        if (options.debug) options.log.debug(`lua: full garbage collection after each transaction from now on (${why})`)
      }),
      ...(options.httpTarget !== undefined ? { httpTarget: options.httpTarget } : {}),
      ...(options.onHttpRequest !== undefined ? { onHttpRequest: options.onHttpRequest } : {}),
      ...((ca) => (ca !== undefined ? { httpCa: ca } : {}))(httpCa(options)),
    }
    registerCoroutine(env)
    registerPrint(env)
    registerIo(api, L, () => env.gc.observe('io: an open file'))
    registerOs(api, L, { env: options.processEnv ?? process.env })
    registerPackage(api, L, { path: options.packagePath ?? defaultPackagePath(options.scriptPath) })
    registerBuiltinModules(env, BUILTIN_MODULES)
    const dovecotMt = registerDovecot(env, (events) => pushHttp(env, events))
    const user = registerUser(env)
    // last: the bindings above use Lua's own setmetatable
    const { originalCollectRef } = registerGcWatch(env, env.gc)
    const gcCheckRef = metatableCheck(env, [user.metatableRef, dovecotMt])
    return { ...env, user, gcRef: originalCollectRef, gcCheckRef }
  } catch (err) {
    api.close()
    throw err
  }
}

