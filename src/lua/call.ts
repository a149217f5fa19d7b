// Calls into Lua on a reused thread, with the sentinel-yield protocol.
//
// Every script call (main chunk, script_init, begin_txn, event handlers,
// end_txn, script_deinit) runs on one reused Lua thread with lua_resume. A
// host function that must wait for JS (an HTTP request) calls `suspend()`:
// it stores the promise and yields a sentinel. The host sees the sentinel come
// out of lua_resume, awaits the promise and resumes the thread with the
// result, so the script sees a blocking call. pcall and metamethods are
// yieldable in Lua 5.3/5.4; script-made coroutines pass the sentinel through
// because coroutine.resume/wrap are wrapped (src/lua/stdlib/coroutine.ts).
// Where Lua cannot yield (a table.sort comparator, a string.gsub callback),
// `suspend` raises a clear error instead (DESIGN.md, "Blocking-looking calls").
//
// A call that never waits completes synchronously: `call` returns a plain
// outcome, not a Promise, so the per-event path has no microtask cost.

import { type LuaApi, LuaStatus, type LuaThread, LuaType } from './engine.js'

/** What a finished call produced. On success the results are on `thread` (1..nresults). */
export type CallOutcome =
  | { ok: true; thread: LuaThread; nresults: number }
  | { ok: false; kind: 'error' | 'timeout' | 'memory'; message: string; errorValue: string }

/** Pushes the values a suspended host function returns; returns how many. */
export type ResumeValues = (L: LuaThread) => number

export interface CallerOptions {
  /** Wall-clock limit of Lua execution per call in ms (time spent waiting on host promises excluded); 0 = none. */
  callTimeoutMs: number
}

// How often (in VM instructions) the timeout hook looks at the clock: often
// enough to stop a runaway loop within ~1 ms, rare enough to cost nothing.
const HOOK_COUNT = 10_000

export class LuaCaller {
  readonly #api: LuaApi
  readonly #timeoutMs: number
  #thread: LuaThread
  #threadRef: number
  readonly #sentinelRef: number
  #pending: Promise<ResumeValues> | undefined
  #deadline = 0
  #timedOut = false
  #busy = false

  constructor(api: LuaApi, options: CallerOptions) {
    this.#api = api
    this.#timeoutMs = options.callTimeoutMs
    const L = api.main
    api.createtable(L, 0, 0)
    this.#sentinelRef = api.ref(L)
    ;[this.#thread, this.#threadRef] = this.#newThread()
  }

  /** The registry ref of the sentinel table (the coroutine wrappers compare against it). */
  get sentinelRef(): number {
    return this.#sentinelRef
  }

  #newThread(): [LuaThread, number] {
    const api = this.#api
    const T = api.newthread(api.main)
    const ref = api.ref(api.main)
    if (this.#timeoutMs > 0) api.sethook(T, this.#hook, HOOK_COUNT)
    return [T, ref]
  }

  // The clock starts at the hook's first tick of a call (HOOK_COUNT
  // instructions in, well under a millisecond), so the many calls that end
  // sooner never read it. Once the deadline has passed, the hook fires at
  // every instruction: a script that catches the error with pcall inside a
  // loop would otherwise get caught again at the same point of the count
  // cycle, forever.
  readonly #hook = (HL: LuaThread): void => {
    if (!this.#timedOut) {
      const now = performance.now()
      if (this.#deadline === 0) {
        this.#deadline = now + this.#timeoutMs
        return
      }
      if (now <= this.#deadline) return
      this.#timedOut = true
      this.#api.sethook(HL, this.#hook, 1)
    }
    this.#api.raise(HL, `dovepush: script call exceeded the call timeout of ${this.#timeoutMs} ms`)
  }

  /**
   * Suspends the running script until `promise` settles (call from a host
   * function: `return caller.suspend(L, promise)`). Raises a Lua error where
   * the script cannot yield.
   */
  suspend(L: LuaThread, what: string, promise: Promise<ResumeValues>): number {
    const api = this.#api
    if (!api.isyieldable(L)) {
      // Swallow the promise's outcome: nothing will wait for it.
      promise.catch(() => {})
      api.raise(L, `${what} cannot wait here: it was called from a function Lua cannot suspend ` +
        `(such as a table.sort comparator or a string.gsub callback); call it outside that function`)
    }
    this.#pending = promise
    api.pushref(L, this.#sentinelRef)
    return api.yield(L, 1)
  }

  /**
   * Runs a function on the call thread. `push` pushes the function and its
   * arguments onto the (empty) thread and returns the number of arguments.
   * Results stay on the thread until the next call; read them right away.
   */
  call(push: (T: LuaThread) => number): CallOutcome | Promise<CallOutcome> {
    if (this.#busy) throw new Error('LuaCaller: a call is already running on this state')
    const api = this.#api
    const T = this.#thread
    api.settop(T, 0)
    const nargs = push(T)
    this.#busy = true
    this.#timedOut = false
    return this.#step(T, nargs)
  }

  #step(T: LuaThread, nargs: number): CallOutcome | Promise<CallOutcome> {
    const api = this.#api
    this.#deadline = 0 // set at the hook's first tick
    const status = api.resume(T, null, nargs)
    if (status === LuaStatus.OK) {
      this.#busy = false
      return { ok: true, thread: T, nresults: api.lastResults }
    }
    if (status === LuaStatus.YIELD) {
      const n = api.lastResults
      const isSentinel = n >= 1 && this.#isSentinel(T, -n)
      const pending = this.#pending
      this.#pending = undefined
      if (!isSentinel || pending === undefined) {
        // A plain coroutine.yield at the top of a handler: under Dovecot the
        // handler runs in lua_pcall, where this is an error.
        return this.#fail(T, 'error', 'attempt to yield from outside a coroutine', false)
      }
      // lua_resume: remove the n yielded values (Lua 5.4 keeps the yielding
      // host function's frame below them), push the results, resume
      return pending.then(
        (resumeValues) => {
          api.pop(T, n)
          return this.#step(T, resumeValues(T))
        },
        (err: unknown) => {
          api.pop(T, n)
          api.pushstring(T, `dovepush internal error while waiting: ${err instanceof Error ? err.message : String(err)}`)
          // resume with the error message; the host function surfaces it (nil, msg)
          return this.#step(T, 1)
        },
      )
    }
    const kind = status === LuaStatus.ERRMEM ? 'memory' : this.#timedOut ? 'timeout' : 'error'
    // Lua calls no message handler for memory errors: no traceback, as under Dovecot
    return this.#fail(T, kind, undefined, kind !== 'memory')
  }

  #isSentinel(T: LuaThread, idx: number): boolean {
    const api = this.#api
    if (api.type(T, idx) !== LuaType.TABLE) return false
    const abs = api.absindex(T, idx)
    api.pushref(T, this.#sentinelRef)
    const same = api.rawequal(T, abs, -1)
    api.pop(T, 1)
    return same
  }

  /** Builds Dovecot's error text (message + traceback), then replaces the dead thread. */
  #fail(T: LuaThread, kind: 'error' | 'timeout' | 'memory', override: string | undefined, withTraceback: boolean): CallOutcome {
    const api = this.#api
    const L = api.main
    api.checkstack(T, 4) // a dead thread may have no free slot left (fengari checks)
    let message: string
    let errorValue: string
    if (override !== undefined) {
      message = override
      errorValue = override
    } else {
      // dlua_pcall uses debug.traceback as message handler: strings and
      // numbers get the traceback appended; nil gives a bare traceback; any
      // other value passes through and lua_tostring() makes it NULL, which
      // glibc prints as "(null)" (spec §1.5).
      const t = api.type(T, -1)
      errorValue = api.tostringmeta(T, -1)
      if (t === LuaType.STRING || t === LuaType.NUMBER || t === LuaType.NIL || t === LuaType.NONE) {
        const msg = t === LuaType.NIL || t === LuaType.NONE ? undefined : api.tostring(T, -1)
        if (withTraceback) {
          api.traceback(L, T, msg, 0)
          message = api.tostring(L, -1) ?? ''
          api.pop(L, 1)
        } else {
          message = msg ?? ''
        }
      } else {
        message = '(null)'
      }
    }
    this.#busy = false
    this.#pending = undefined
    if (!api.resetthread(T)) {
      api.unref(L, this.#threadRef)
      ;[this.#thread, this.#threadRef] = this.#newThread()
    } else {
      api.settop(T, 0)
      if (this.#timeoutMs > 0) api.sethook(T, this.#hook, HOOK_COUNT)
    }
    return { ok: false, kind, message, errorValue }
  }
}
