// Built-in modules: the ones push scripts commonly `require` (LuaSocket's
// socket.url, socket.http and ltn12, a JSON module), available without a
// Lua installation. They sit in package.searchers right after the Lua-file
// searcher, so a module found on disk through package.path wins over the
// built-in one, as the issue asks; C modules cannot load here at all.

import type { LuaThread } from '../engine.js'
import type { LuaEnv } from '../env.js'

/** A module dovepush provides: `pushLoader` pushes the function `require` calls. */
export interface BuiltinModule {
  pushLoader(env: LuaEnv, L: LuaThread): void
}

/** A module written in Lua: its source runs as the loader (chunkname "=[dovepush <name>]"). */
export function luaSourceModule(name: string, source: string): BuiltinModule {
  const bytes = new TextEncoder().encode(source)
  return {
    pushLoader(env, L) {
      if (env.api.load(L, bytes, `=[dovepush ${name}]`, 't') !== 0) {
        throw new Error(`built-in module ${name} does not compile: ${env.api.tostring(L, -1)}`)
      }
    },
  }
}

/** Inserts the built-in searcher as package.searchers[3] (after preload and Lua files). */
export function registerBuiltinModules(env: LuaEnv, modules: Readonly<Record<string, BuiltinModule>>): void {
  const { api, L } = env
  api.getglobal(L, 'table')
  api.getfield(L, -1, 'insert')
  api.getglobal(L, 'package')
  api.getfield(L, -1, 'searchers')
  api.remove(L, -2)
  api.pushinteger(L, 3)
  api.pushfunction(L, (SL) => {
    const name = api.tostring(SL, 1) ?? ''
    const m = Object.hasOwn(modules, name) ? modules[name] : undefined
    if (m === undefined) {
      // the text findloader adds to "module 'x' not found:" (5.4 searchers return it without "\n\t")
      api.pushstring(SL, `${api.version === 'Lua 5.3' ? '\n\t' : ''}no built-in module '${name}' in dovepush`)
      return 1
    }
    m.pushLoader(env, SL)
    api.pushstring(SL, `[dovepush ${name}]`)
    return 2
  }, 'package.searchers[3] (built-in modules)')
  api.call(L, 3, 0)
  api.pop(L, 1)
}
