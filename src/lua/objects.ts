// Host state behind Lua objects.
//
// Dovecot's objects are tables whose private `item` field is a full userdata
// holding the C pointer, with a metatable that has only `__gc` (spec §3, §6,
// recorded). Here `item` is a 4-byte userdata holding an id, and a Map takes
// the id to the JS value; `__gc` drops the JS value, so an object the script
// forgets is freed with it. (A weak-keyed table from userdata to id did the
// same but doubled the cost of the full GC after every transaction.)

import type { LuaApi, LuaThread } from './engine.js'
import { LuaType } from './engine.js'

export class LuaObjects<T> {
  readonly #api: LuaApi
  readonly #itemMtRef: number
  readonly #values = new Map<number, T>()
  #nextId = 1

  readonly #onPush: (() => void) | undefined
  /** Persistent registries keep one id per value for the state's life (__gc frees nothing). */
  readonly #ids: Map<T, number> | undefined

  /**
   * `onPush` is told of every new object (the GC watch: a finalizer the
   * script could see). A `persistent` registry is for values that live as
   * long as the state (the session's mail user): every object of one value
   * shares its id, and collecting one drops nothing.
   */
  constructor(api: LuaApi, L: LuaThread, name: string, options: { onPush?: () => void; persistent?: boolean } = {}) {
    this.#api = api
    this.#onPush = options.onPush
    this.#ids = options.persistent ? new Map() : undefined
    // the item metatable: only __gc
    api.createtable(L, 0, 1)
    api.pushfunction(L, (GL) => {
      if (this.#ids !== undefined) return 0
      const id = this.#idOf(GL, 1)
      if (id !== undefined) this.#values.delete(id)
      return 0
    }, `${name} __gc`)
    api.setfield(L, -2, '__gc')
    this.#itemMtRef = api.ref(L)
  }

  /** Pushes a new `item` userdata bound to `value`. */
  pushItem(L: LuaThread, value: T): void {
    const api = this.#api
    this.#onPush?.()
    let id = this.#ids?.get(value)
    if (id === undefined) {
      id = this.#nextId++
      this.#values.set(id, value)
      this.#ids?.set(value, id)
    }
    api.newuserdata(L, id)
    api.pushref(L, this.#itemMtRef)
    api.setmetatable(L, -2)
  }

  /** The value behind the object (a table with `item`) at idx, if any. */
  get(L: LuaThread, idx: number): T | undefined {
    const api = this.#api
    if (api.type(L, idx) !== LuaType.TABLE) return undefined
    api.rawgetfield(L, idx, 'item')
    const id = this.#idOf(L, -1)
    api.pop(L, 1)
    return id === undefined ? undefined : this.#values.get(id)
  }

  /** The id of an item userdata of this registry (its metatable proves it), else undefined. */
  #idOf(L: LuaThread, idx: number): number | undefined {
    const api = this.#api
    const id = api.userdataid(L, idx)
    if (id === undefined || !api.getmetatable(L, idx)) return undefined
    api.pushref(L, this.#itemMtRef)
    const ours = api.rawequal(L, -1, -2)
    api.pop(L, 2)
    return ours ? id : undefined
  }
}
