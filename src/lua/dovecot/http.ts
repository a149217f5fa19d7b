// dovecot.http (spec §7): Dovecot 2.3.19's Lua HTTP client on node:http.
//
// Objects are plain tables with a private `item` and their methods stored on
// the table itself, no metatable (recorded dumps: client {item, request},
// request {item, add_header, remove_header, set_payload, submit}, response
// {item, status, reason, payload, header}). `rq:submit()` blocks the script
// (the sentinel-yield of src/lua/call.ts) and never raises for network
// problems: they become Dovecot's internal 9xxx statuses with its wording.
//
// 2.4 (`env.dovecot === '2.4'`, spec §7.4): options are http_client_*
// settings parsed in http-settings.ts; set_payload takes an optional
// `synchronous` flag; requests have set_event/get_event.
// TODO(2.4): request_absolute_timeout, max_connect_attempts,
// connect_backoff_*, soft_connect_timeout, max_auto_retry_delay, rawlog_dir,
// max_parallel_connections / max_pipelined_requests, response_hdr_* and socket buffer sizes are parsed
// but not simulated; ssl_* and dns-client values are accepted unchecked (as
// 2.4 does at creation) and not applied; the client event prefix numbering
// ("http-client[N]: ") is per Lua state, not per process.
//
// On the wire (http-transport.ts, node:http): the request head is
// Dovecot's, byte for byte: Host, Date, Authorization, User-Agent, Expect:
// 100-continue, Content-Length, Connection: Keep-Alive, then the script's
// headers in order (test/lua/dovecot/http.oracle.test.ts checks it against
// the recording http-sink.ndjson).

import type { ResumeValues } from '../call.js'
import { type LuaThread, LuaType } from '../engine.js'
import type { LuaEnv, LuaMethods } from '../env.js'
import { LuaObjects } from '../objects.js'
import { checkString, dluaError, requireArgs, requireArgsIn } from './args.js'
import type { EventAccess, EventState } from './event.js'
import { type Http24Values, type HttpClientSettings, readSettings24 } from './http-settings.js'
import { type ClientState, parseHttpUrl, perform, redact, type RequestState, type ResponseState, urlHost, urlPort } from './http-transport.js'

/** One finished script request, for an observer (e.g. `dovepush serve`'s metrics): the URL without credentials. */
export interface HttpRequestReport {
  /** `rq:submit()` of dovecot.http, or LuaSocket's `http.request` (src/lua/compat/socket-http.ts). */
  readonly module: 'dovecot.http' | 'socket.http'
  readonly method: string
  readonly url: string
  /** The final status (after redirects and retries): 9xxx for dovecot.http's internal failures, 0 when socket.http failed (no status). */
  readonly status: number
  readonly reason: string
  /** From submit() to the response, in milliseconds. */
  readonly ms: number
}

// ---------------------------------------------------------------------------
// Client settings

const UINT_MAX = 0xffffffff

const OPTION_ORDER: ReadonlyArray<[string, 'uint' | 'bool' | 'str']> = [
  ['user_agent', 'str'], ['rawlog_dir', 'str'], ['max_idle_time_msecs', 'uint'], ['no_auto_redirect', 'bool'],
  ['no_auto_retry', 'bool'], ['max_redirects', 'uint'], ['max_attempts', 'uint'], ['max_connect_attempts', 'uint'],
  ['connect_backoff_time_msecs', 'uint'], ['connect_backoff_max_time_msecs', 'uint'],
  ['request_absolute_timeout_msecs', 'uint'], ['request_timeout_msecs', 'uint'], ['connect_timeout_msecs', 'uint'],
  ['soft_connect_timeout_msecs', 'uint'], ['max_auto_retry_delay_secs', 'uint'], ['debug', 'bool'], ['proxy_url', 'str'],
]

function readSettings(env: LuaEnv, L: LuaThread): HttpClientSettings {
  const { api } = env
  const uint: Record<string, number> = {}
  const bool: Record<string, boolean> = {}
  const str: Record<string, string> = {}
  const invalid = (name: string, what: string): never => dluaError(api, L, `Invalid HTTP client setting: ${name}: ${what} expected`)
  for (const [name, kind] of OPTION_ORDER) {
    const t = api.getfield(L, 1, name)
    if (t !== LuaType.NIL) {
      if (kind === 'str') {
        if (t !== LuaType.STRING) invalid(name, 'string')
        str[name] = api.tostring(L, -1)!
      } else if (kind === 'bool') {
        if (t !== LuaType.BOOLEAN) invalid(name, 'boolean')
        bool[name] = api.toboolean(L, -1)
      } else {
        const n = t === LuaType.NUMBER ? api.tointeger(L, -1) : undefined
        if (n === undefined || n < 0 || n > UINT_MAX) invalid(name, 'non-negative number')
        uint[name] = n!
      }
    }
    api.pop(L, 1)
  }
  // proxy_url: http_url_parse with userinfo allowed (dlua_http_client_parse_settings);
  // its user:pass are the proxy credentials. Used for http:// URLs (http-transport.ts).
  if (str.proxy_url !== undefined) {
    const p = parseHttpUrl(str.proxy_url)
    if (!p.ok) dluaError(api, L, `Invalid HTTP client setting: proxy_url is invalid: ${p.reason}`)
  }
  // rawlog_dir, max_connect_attempts, connect_backoff_*, request_absolute_timeout_msecs,
  // soft_connect_timeout_msecs and max_auto_retry_delay_secs are checked but not simulated.
  // event_parent is ignored. Unknown keys are ignored (recorded: bogus_option accepted).
  return { uint, bool, str } as HttpClientSettings
}

/** Truncates at the first NUL byte (Dovecot takes the payload with strlen). */
function strlenBytes(b: Uint8Array): Uint8Array {
  const i = b.indexOf(0)
  return i < 0 ? b : b.subarray(0, i)
}

/** 2.4: the uint/bool/str view perform() reads, from the parsed http_client settings. */
function settingsFrom24(v: Http24Values): HttpClientSettings {
  const str: Record<string, string> = {}
  for (const k of ['user_agent', 'rawlog_dir', 'proxy_url'] as const) if (v[k] !== '') str[k] = v[k] as string
  return {
    uint: {
      request_timeout_msecs: v.request_timeout as number,
      connect_timeout_msecs: v.connect_timeout as number,
      max_idle_time_msecs: v.max_idle_time as number,
      max_redirects: v.request_max_redirects as number,
      max_attempts: v.request_max_attempts as number,
    },
    bool: { no_auto_redirect: v.auto_redirect !== true, no_auto_retry: v.auto_retry !== true },
    str,
  }
}

/** Dovecot's event for a request (http_client_request_update_event): fields and the "request [ReqN: …]: " prefix. */
function requestEvent(parent: EventState, id: number, method: string, url: URL): EventState {
  const target = `${url.pathname}${url.search}`
  return {
    parent,
    name: undefined,
    prefix: `request [Req${id}: ${method} ${url.protocol}//${url.host}${target}]: `,
    replacesPrefix: false,
    alwaysLogSource: false,
    fields: { method, dest_host: urlHost(url), dest_port: urlPort(url), target },
  }
}

const childEvent = (parent: EventState, prefix: string): EventState =>
  ({ parent, name: undefined, prefix, replacesPrefix: false, alwaysLogSource: false, fields: {} })

/**
 * Tells `env.onHttpRequest` of one script request when it is over, timed
 * from now (dovecot.http's submit, socket.http's request); undefined when
 * nobody listens, so nothing is timed.
 */
export function requestReporter(env: LuaEnv, module: HttpRequestReport['module'], method: string, url: URL): ((status: number, reason: string) => void) | undefined {
  const on = env.onHttpRequest
  if (on === undefined) return undefined
  const t0 = performance.now()
  return (status, reason) => {
    try {
      on({ module, method, url: redact(url), status, reason, ms: performance.now() - t0 })
    } catch {
      // an observer's failure is not the script's
    }
  }
}

/** Pushes `dovecot.http` = `{ client = <function> }`; `env.onHttpRequest` is told of every finished submit(). */
export function pushHttp(env: LuaEnv, events?: EventAccess): void {
  const { api, L } = env
  const v24 = env.dovecot === '2.4'
  let clientIds = 0
  let requestIds = 0
  // Their finalizers only forget the JS side: a client's pooled connections
  // close when idle (max_idle_time), not when it is collected, so collecting
  // these objects does nothing a script or a server can see (stdlib/gc.ts).
  const clients = new LuaObjects<ClientState>(api, L, 'http_client')
  const requests = new LuaObjects<RequestState>(api, L, 'http_client_request')
  const responses = new LuaObjects<ResponseState>(api, L, 'http_response')

  /** The object at arg 1, or Dovecot's "Bad argument" error. */
  function self<T>(SL: LuaThread, objs: LuaObjects<T>, typeName: string): T {
    const v = objs.get(SL, 1)
    if (v !== undefined) return v
    const t = api.type(SL, 1)
    return dluaError(api, SL, `Bad argument #1, expected ${typeName} got ${t === LuaType.TABLE ? 'table without item' : api.typename(SL, t)}`)
  }

  // Dovecot stores the methods on each object (no metatable); the functions
  // themselves are made once per state and shared, so objects cost no new
  // host functions (they read their state from `self`).
  const methodRefs = new Map<LuaMethods, Array<[string, number]>>()
  function pushObject(SL: LuaThread, methods: LuaMethods, prefix: string, pushItem: () => void): void {
    let refs = methodRefs.get(methods)
    if (refs === undefined) {
      refs = Object.entries(methods).map(([k, fn]) => {
        api.pushfunction(SL, fn, `${prefix}${k}`)
        return [k, api.ref(SL)]
      })
      methodRefs.set(methods, refs)
    }
    api.createtable(SL, 0, refs.length + 1)
    pushItem()
    api.setfield(SL, -2, 'item')
    for (const [k, ref] of refs) {
      api.pushref(SL, ref)
      api.setfield(SL, -2, k)
    }
  }

  const responseMethods: LuaMethods = {
    status(SL) {
      requireArgs(api, SL, 1)
      api.pushinteger(SL, self(SL, responses, 'struct http_response').status)
      return 1
    },
    reason(SL) {
      requireArgs(api, SL, 1)
      api.pushstring(SL, self(SL, responses, 'struct http_response').reason)
      return 1
    },
    payload(SL) {
      requireArgs(api, SL, 1)
      api.pushbytes(SL, self(SL, responses, 'struct http_response').payload)
      return 1
    },
    header(SL) {
      requireArgs(api, SL, 2)
      const res = self(SL, responses, 'struct http_response')
      const name = checkString(api, SL, 2).toLowerCase()
      api.pushstring(SL, res.headers.find(([k]) => k.toLowerCase() === name)?.[1] ?? '')
      return 1
    },
  }

  const requestMethods: LuaMethods = {
    add_header(SL) {
      requireArgs(api, SL, 3)
      const rq = self(SL, requests, 'struct http_client_request')
      const name = checkString(api, SL, 2)
      const value = checkString(api, SL, 3)
      // http_client_request_add_header replaces the value of a field already
      // there (case-insensitive name), keeping its place and its name's case
      const key = name.toLowerCase()
      const i = rq.headers.findIndex(([k]) => k.toLowerCase() === key)
      if (i >= 0) rq.headers[i]![1] = value
      else rq.headers.push([name, value])
      rq.added.add(key)
      return 0
    },
    remove_header(SL) {
      requireArgs(api, SL, 2)
      const rq = self(SL, requests, 'struct http_client_request')
      const name = checkString(api, SL, 2).toLowerCase()
      // removes the first field of that name (2.3 http_client_request_remove_header)
      const i = rq.headers.findIndex(([k]) => k.toLowerCase() === name)
      if (i >= 0) rq.headers.splice(i, 1)
      return 0
    },
    set_payload(SL) {
      // 2.4: set_payload(str[, synchronous]), default not synchronous
      if (v24) requireArgsIn(api, SL, 2, 3)
      else requireArgs(api, SL, 2)
      const rq = self(SL, requests, 'struct http_client_request')
      // luaL_checkstring's rule (a string or a number), read once as bytes
      rq.payload = strlenBytes(api.tobytes(SL, 2) ?? api.typeerror(SL, 2, 'string'))
      rq.synchronous = v24 && api.gettop(SL) >= 3 && api.toboolean(SL, 3)
      return 0
    },
    submit(SL) {
      requireArgs(api, SL, 1)
      const rq = self(SL, requests, 'struct http_client_request')
      const report = requestReporter(env, 'dovecot.http', rq.method, rq.url)
      const sent = report === undefined ? perform(env, rq) : perform(env, rq).then((res) => {
        report(res.status, res.reason)
        return res
      })
      const promise = sent.then(
        (res): ResumeValues => (RL) => {
          pushObject(RL, responseMethods, 'http_response.', () => responses.pushItem(RL, res))
          return 1
        },
      )
      return env.caller.suspend(SL, 'rq:submit()', promise)
    },
  }
  if (v24 && events !== undefined) {
    const ev = events
    // 2.4.3: request set_event(event) makes the request's event a child of
    // `event` (http_client_request_set_event); get_event pushes the request's event.
    Object.assign(requestMethods, {
      set_event(SL: LuaThread) {
        requireArgs(api, SL, 2)
        const rq = self(SL, requests, 'struct http_client_request')
        const t = api.type(SL, 2)
        if (t !== LuaType.TABLE) return dluaError(api, SL, `Bad argument #2, expected struct event got ${api.typename(SL, t)}`)
        const parent = ev.get(SL, 2)
        // Dovecot dereferences the missing item (crash); dovepush raises
        if (parent === undefined) return dluaError(api, SL, 'Bad argument #2, expected struct event got table')
        const old = rq.event!
        rq.event = requestEvent(parent, Number(/\[Req(\d+):/.exec(old.prefix)?.[1] ?? 0), rq.method, rq.url)
        return 0
      },
      get_event(SL: LuaThread) {
        requireArgs(api, SL, 1)
        const rq = self(SL, requests, 'struct http_client_request')
        ev.push(SL, rq.event!)
        return 1
      },
    })
  }

  const clientMethods: LuaMethods = {
    request(SL) {
      requireArgs(api, SL, 2)
      const client = self(SL, clients, 'struct http_client')
      if (api.type(SL, 2) !== LuaType.TABLE) return api.typeerror(SL, 2, 'table')
      const ut = api.getfield(SL, 2, 'url')
      const urlText = ut === LuaType.STRING || ut === LuaType.NUMBER ? api.tostring(SL, -1) : undefined
      api.pop(SL, 1)
      if (urlText === undefined) return dluaError(api, SL, 'cannot create request: url not specified')
      const mt = api.getfield(SL, 2, 'method')
      const method = mt === LuaType.STRING || mt === LuaType.NUMBER ? api.tostring(SL, -1)! : 'GET'
      api.pop(SL, 1)
      const parsed = parseHttpUrl(urlText)
      if (!parsed.ok) return dluaError(api, SL, `Failed to parse url ${urlText}: ${parsed.reason}`)
      const rq: RequestState = { client, url: parsed.url, method, headers: [], added: new Set(), payload: undefined, synchronous: false }
      if (client.event !== undefined) rq.event = requestEvent(client.event, ++requestIds, method, parsed.url)
      pushObject(SL, requestMethods, 'http_client_request.', () => requests.pushItem(SL, rq))
      return 1
    },
  }

  api.createtable(L, 0, 1)
  api.pushfunction(L, (SL) => {
    requireArgs(api, SL, 1)
    if (api.type(SL, 1) !== LuaType.TABLE) return api.typeerror(SL, 1, 'table')
    let client: ClientState
    if (v24) {
      let parent = events?.scriptEvent
      if (api.getfield(SL, 1, 'event_parent') === LuaType.TABLE && events !== undefined) {
        parent = events.get(SL, -1)
        // Dovecot's dlua_check_event dereferences the missing item (crash); dovepush raises
        if (parent === undefined) return dluaError(api, SL, 'Invalid HTTP client setting: event_parent: not a dovecot.event object (Dovecot 2.4 crashes on it)')
      }
      api.pop(SL, 1)
      // http_client_settings_check: http_url_parse(proxy_url, NULL, 0, …), no userinfo allowed (2.4.4 http-url.c)
      const s24 = readSettings24(env, SL, (u) => {
        const p = parseHttpUrl(u)
        if (!p.ok) return p.reason
        return /^[^:]*:\/\/[^/?#]*@/.test(u) ? "HTTP URL does not allow `userinfo@' part" : undefined
      })
      // event_create(event_parent) holding the settings, then the client's own event
      const event = parent === undefined ? undefined : childEvent(childEvent(parent, ''), `http-client[${++clientIds}]: `)
      client = { settings: settingsFrom24(s24.values), v24: s24.values, ...(event !== undefined ? { event } : {}) }
    } else {
      client = { settings: readSettings(env, SL) }
    }
    pushObject(SL, clientMethods, 'http_client.', () => clients.pushItem(SL, client))
    return 1
  }, 'dovecot.http.client')
  api.setfield(L, -2, 'client')
}
