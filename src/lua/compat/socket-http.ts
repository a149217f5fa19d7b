// socket.http (LuaSocket 3.0) on undici, for the older push scripts of the
// Dovecot wiki (`require "socket.http"` with ltn12 sources and sinks).
//
// The Lua side (our own code, after LuaSocket's manual) handles the two call
// forms and the ltn12 plumbing; one host function does the request. It
// suspends the script (the sentinel-yield of src/lua/call.ts), so the call
// looks blocking to the script, as under Dovecot where LuaSocket blocks the
// mail process. `ssl.https` is the same module: undici speaks https.
//
// LuaSocket's behaviour kept: string form `request(url[, body])` → body,
// code, headers, status line (a body makes it a form POST); table form →
// 1, code, headers, status line, the body going to `sink`; failures return
// nil plus LuaSocket's words ("connection refused", "timeout", "host or
// service not provided, or not known", "closed"); header names in the
// result are lowercase, repeated ones joined with ", "; GET/HEAD follow up
// to 5 redirects unless `redirect = false`; `http.TIMEOUT` (60 s) and
// `http.USERAGENT` apply. The reason phrase in the status line is the
// standard one for the code (undici does not expose the server's text).

import { STATUS_CODES } from 'node:http'
import { type Dispatcher, errors, request } from 'undici'
import { captureAgent } from '../../http/capture-sink.js'
import type { LuaThread } from '../engine.js'
import { LuaType } from '../engine.js'
import type { LuaEnv } from '../env.js'
import type { ResumeValues } from '../call.js'
import { requestReporter } from '../dovecot/http.js'
import type { BuiltinModule } from './modules.js'

const SOURCE = `
local raw = ...
local ltn12 = require("ltn12")
local M = { TIMEOUT = 60, USERAGENT = "LuaSocket 3.0.0", PORT = 80 }

local function request_table(reqt)
  if type(reqt.url) ~= "string" then return nil, "invalid url" end
  local body
  if reqt.source then
    local chunks = {}
    local ok, err = ltn12.pump.all(reqt.source, ltn12.sink.table(chunks), reqt.step)
    if not ok then return nil, err end
    body = table.concat(chunks)
  end
  local headers = {}
  for k, v in pairs(reqt.headers or {}) do
    headers[#headers + 1] = tostring(k)
    headers[#headers + 1] = tostring(v)
  end
  local code, h, status, rbody = raw(reqt.method or "GET", reqt.url, headers, body,
    M.TIMEOUT, reqt.redirect ~= false, M.USERAGENT)
  if not code then return nil, h end
  if reqt.sink then
    local ok, err = ltn12.pump.all(ltn12.source.string(rbody), reqt.sink, reqt.step)
    if not ok then return nil, err end
  end
  return 1, code, h, status
end

function M.request(reqt, body)
  if type(reqt) ~= "string" then return request_table(reqt) end
  local t = {}
  local r = { url = reqt, sink = ltn12.sink.table(t) }
  if body then
    r.method = "POST"
    r.source = ltn12.source.string(body)
    r.headers = { ["content-length"] = #body, ["content-type"] = "application/x-www-form-urlencoded" }
  end
  local ok, code, h, status = request_table(r)
  if not ok then return nil, code end
  return table.concat(t), code, h, status
end

return M
`

const REDIRECTS = new Set([301, 302, 303, 307, 308])
const MAX_REDIRECTS = 5

/** LuaSocket's error words for what undici or the OS reports. */
function luasocketError(err: unknown): string {
  const code = (err as { code?: string }).code ?? (err as { cause?: { code?: string } }).cause?.code
  if (code === 'ECONNREFUSED') return 'connection refused'
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'host or service not provided, or not known'
  if (err instanceof errors.HeadersTimeoutError || err instanceof errors.BodyTimeoutError || err instanceof errors.ConnectTimeoutError) return 'timeout'
  if (code === 'ETIMEDOUT') return 'timeout'
  if (code === 'ECONNRESET' || err instanceof errors.SocketError) return 'closed'
  return err instanceof Error ? err.message : String(err)
}

interface Reply {
  code: number
  headers: Array<[string, string]>
  status: string
  body: Uint8Array
}

async function fetchFollowing(method: string, url: string, headers: Record<string, string>, body: Uint8Array | undefined, timeoutMs: number, follow: boolean, dispatcher: Dispatcher | undefined): Promise<Reply> {
  let target = url
  for (let hop = 0; ; hop++) {
    const res = await request(target, {
      method: method as 'GET',
      headers,
      ...(body !== undefined ? { body } : {}),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      reset: true, // LuaSocket sends "connection: close"
      ...(dispatcher !== undefined ? { dispatcher } : {}),
    })
    const bytes = new Uint8Array(await res.body.arrayBuffer())
    const location = res.headers.location
    if (follow && (method === 'GET' || method === 'HEAD') && REDIRECTS.has(res.statusCode) && typeof location === 'string' && hop < MAX_REDIRECTS) {
      target = new URL(location, target).toString()
      continue
    }
    const list: Array<[string, string]> = []
    for (const [k, v] of Object.entries(res.headers)) {
      if (v !== undefined) list.push([k.toLowerCase(), Array.isArray(v) ? v.join(', ') : v])
    }
    return { code: res.statusCode, headers: list, status: `HTTP/1.1 ${res.statusCode} ${STATUS_CODES[res.statusCode] ?? ''}`.trimEnd(), body: bytes }
  }
}

/** The host side: raw(method, url, {k, v, ...}, body, timeout_s, follow, useragent). */
function rawRequest(env: LuaEnv) {
  const { api } = env
  return (L: LuaThread): number => {
    const method = (api.tostring(L, 1) ?? 'GET').toUpperCase()
    const url = api.tostring(L, 2) ?? ''
    const headers: Record<string, string> = {}
    if (api.type(L, 3) === LuaType.TABLE) {
      const n = api.rawlen(L, 3)
      for (let i = 1; i + 1 <= n; i += 2) {
        api.rawgeti(L, 3, i)
        api.rawgeti(L, 3, i + 1)
        headers[(api.tostring(L, -2) ?? '').toLowerCase()] = api.tostring(L, -1) ?? ''
        api.pop(L, 2)
      }
    }
    const body = api.type(L, 4) === LuaType.STRING ? api.tobytes(L, 4) : undefined
    const timeoutMs = Math.max(1, (api.tonumber(L, 5) || 60) * 1000)
    const follow = api.toboolean(L, 6)
    headers['user-agent'] ??= api.tostring(L, 7) ?? 'LuaSocket 3.0.0'
    headers.te ??= 'trailers'
    delete headers.connection // undici: connection is set by `reset`
    let parsed: URL
    try {
      parsed = new URL(url)
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('unsupported scheme')
    } catch {
      api.pushnil(L)
      api.pushstring(L, `invalid url: ${url}`)
      return 2
    }
    const dispatcher = env.httpTarget !== undefined ? captureAgent(env.httpTarget) : undefined
    // an observer (serve's metrics) hears of it as of a dovecot.http request; a failure has no status: 0
    const report = requestReporter(env, 'socket.http', method, parsed)
    const sent = fetchFollowing(method, parsed.toString(), headers, body, timeoutMs, follow, dispatcher).finally(() => dispatcher?.close())
    const promise = (report === undefined ? sent : sent.then(
      (reply) => {
        report(reply.code, STATUS_CODES[reply.code] ?? '')
        return reply
      },
      (err: unknown) => {
        report(0, luasocketError(err))
        throw err
      },
    )).then(
      (reply): ResumeValues => (RL) => {
        api.pushinteger(RL, reply.code)
        api.createtable(RL, 0, reply.headers.length)
        for (const [k, v] of reply.headers) {
          api.pushstring(RL, v)
          api.setfield(RL, -2, k)
        }
        api.pushstring(RL, reply.status)
        api.pushbytes(RL, reply.body)
        return 4
      },
      (err: unknown): ResumeValues => (RL) => {
        api.pushnil(RL)
        api.pushstring(RL, luasocketError(err))
        return 2
      },
    )
    return env.caller.suspend(L, 'socket.http.request', promise)
  }
}

/** `require "socket.http"` (and "ssl.https"). */
export const socketHttp: BuiltinModule = {
  pushLoader(env, L) {
    const { api } = env
    const chunk = new TextEncoder().encode(SOURCE)
    api.pushfunction(L, (LL) => {
      if (api.load(LL, chunk, '=[dovepush socket.http]', 't') !== 0) return api.error(LL)
      api.pushfunction(LL, rawRequest(env), 'socket.http.request')
      api.call(LL, 1, 1)
      return 1
    }, 'socket.http loader')
  },
}
