// The event tables given to dovecot_lua_notify_event_* (spec §2).
//
// Dovecot builds each one from C: lua_newtable, then lua_setfield for `name`,
// the event's own fields, `mailbox`, and `uid`/`uid_validity` for message
// events (push-notification-driver-lua.c). Doing the same through the C API
// from JS cost two JS→WASM crossings and a table rehash per field, a third of
// the per-event time. Here one Lua function per event kind, compiled once per
// state, builds the table with a constructor: JS pushes the values (nil for an
// absent field, which a constructor does not store, as Dovecot sets none) and
// calls it. The script sees the same table: the same keys, the same values
// and Lua types (numbers are floats), arrays as fresh sequences. Only the
// hash part's initial size differs, which no script can observe (the
// iteration order of string keys already depends on Lua's per-state seed).

import { EVENT_NAMES, EVENT_OWN_FIELDS, type EventName, isMessageEvent, type PushEvent } from '../events/types.js'
import type { LuaApi, LuaThread } from '../lua/engine.js'
import { runOwnChunk } from '../lua/env.js'

/** The fields of each event table after `name`, in Dovecot's order. */
const FIELDS = new Map<EventName, readonly string[]>(
  EVENT_NAMES.map((name) => [name, [...Object.keys(EVENT_OWN_FIELDS[name]), 'mailbox', ...(isMessageEvent(name) ? ['uid', 'uid_validity'] : [])]]),
)

/** The builders' Lua source: a table from event name to `function(<fields>) return {name = …, …} end`. */
function builderSource(): string {
  const lines = ['local B = {}']
  for (const [name, fields] of FIELDS) {
    const args = fields.map((_, i) => `a${i + 1}`)
    const entries = fields.map((f, i) => `${f} = a${i + 1}`)
    lines.push(`B.${name} = function(${args.join(', ')}) return { name = "${name}", ${entries.join(', ')} } end`)
  }
  lines.push('return B')
  return lines.join('\n')
}

export interface EventTables {
  /** Pushes the event table of `ev` onto T. */
  push(T: LuaThread, ev: PushEvent): void
}

/** Compiles the builders in the state of `L` (once per session, before the script runs). */
export function createEventTables(api: LuaApi, L: LuaThread): EventTables {
  runOwnChunk(api, L, 'event tables', builderSource())
  const refs = new Map<EventName, number>()
  for (const name of EVENT_NAMES) {
    api.getfield(L, -1, name)
    refs.set(name, api.ref(L))
  }
  api.pop(L, 1)
  return {
    push(T, ev) {
      const fields = FIELDS.get(ev.name)!
      api.pushref(T, refs.get(ev.name)!)
      for (let i = 0; i < fields.length; i++) {
        const v = ev[fields[i]!]
        if (v === undefined) api.pushnil(T)
        else if (typeof v === 'number') api.pushnumber(T, v) // Dovecot pushes floats (spec §2.2)
        else if (typeof v === 'string') api.pushstring(T, v)
        else {
          // dlua_push_flags / dlua_push_keywords: a sequence of strings
          api.createtable(T, v.length, 0)
          for (let k = 0; k < v.length; k++) {
            api.pushstring(T, v[k]!)
            api.rawseti(T, -2, k + 1)
          }
        }
      }
      api.call(T, fields.length, 1)
    },
  }
}
