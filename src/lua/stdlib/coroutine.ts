// coroutine.resume/wrap that let a dovepush wait cross script-made coroutines.
//
// A host function that waits (rq:submit()) yields a sentinel (call.ts). Inside
// a coroutine the script created, that yield reaches the script's own
// coroutine.resume instead of dovepush. These wrappers see the sentinel come
// out, yield it further up (to dovepush), and resume the inner coroutine with
// what dovepush sends back, so the script never sees it (DESIGN.md).

import type { LuaEnv } from '../env.js'

const SOURCE = `
local SENTINEL = ...
local co_create, co_resume, co_yield = coroutine.create, coroutine.resume, coroutine.yield
local co_isyieldable, co_status, co_close = coroutine.isyieldable, coroutine.status, coroutine.close
local select, error, type, rawequal, pack, unpack = select, error, type, rawequal, table.pack, table.unpack

local function relay(co, ok, ...)
  if ok and select('#', ...) == 1 and rawequal((...), SENTINEL) then
    if not co_isyieldable() then
      error("a dovecot function inside a coroutine cannot wait here: the coroutine was resumed " ..
            "from a function Lua cannot suspend (such as a table.sort comparator or a string.gsub callback)", 0)
    end
    return relay(co, co_resume(co, co_yield(SENTINEL)))
  end
  return ok, ...
end

function coroutine.resume(co, ...)
  return relay(co, co_resume(co, ...))
end

function coroutine.wrap(f)
  local co = co_create(f)
  return function(...)
    local r = pack(relay(co, co_resume(co, ...)))
    if r[1] then return unpack(r, 2, r.n) end
    -- lcorolib.c auxwrap: close the dead coroutine, add the caller's position to string errors
    if co_close and co_status(co) == "dead" then co_close(co) end
    if type(r[2]) == "string" then error(r[2], 2) end
    error(r[2], 0)
  end
end
`

/** Replaces coroutine.resume and coroutine.wrap; runs on the main thread at setup. */
export function registerCoroutine(env: LuaEnv): void {
  const { api, L } = env
  const status = api.load(L, new TextEncoder().encode(SOURCE), '=[dovepush coroutine]', 't')
  if (status !== 0) throw new Error(`dovepush coroutine wrapper failed to load: ${api.tostring(L, -1)}`)
  api.pushref(L, env.caller.sentinelRef)
  api.call(L, 1, 0)
}
