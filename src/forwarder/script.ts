// The forwarder: a Lua script for a real Dovecot (2.3.19 and 2.4) that turns
// every push-notification transaction it sees into one line of dovepush's
// NDJSON input format (DESIGN.md, README "Input: NDJSON") and POSTs it to
// `dovepush serve` and/or appends it to a file, for `dovepush run` later.
//
// `forwarderScript()` returns the script text: a header comment (how to
// install it), the generated settings, then FORWARDER_BODY, which is the same
// for every configuration. Decisions (also in the header and the README):
// - URL without a path (`http://h:8080`, `http://h:8080/`) → `<URL>/v1/transactions`;
//   with a path, used as given.
// - Numbers: integral → integer digits (`7`; 2^70 as all 22 digits); others → the
//   shortest %.<N>g (N ≤ 17) that reads back as the same double; NaN/±inf → null.
// - Strings: JSON escapes for `"` `\` and every control character (\n \r \t
//   \b \f, else \u00XX, incl. DEL); valid UTF-8 passes through; a byte that is
//   not part of valid UTF-8 (raw 8-bit headers) becomes \u00XX, i.e. is read
//   as Latin-1, so the line stays valid UTF-8 and the byte value stays known.
// - Tables: a sequence (or an empty table) → JSON array, else an object with
//   its string keys sorted; functions/userdata are left out. Event objects:
//   `name`, `mailbox`, then every other key sorted.

export type ForwarderDovecot = '2.3' | '2.4' | 'auto'

export interface ForwarderOptions {
  /** Final POST URL (already resolved with resolveForwarderUrl), or none. */
  readonly url?: string
  readonly token?: string
  /** Absolute path of the NDJSON file to append to, or none. */
  readonly toFile?: string
  readonly dovecot: ForwarderDovecot
  /** Request and connect timeout of the one attempt, in ms. */
  readonly timeoutMs: number
  /** dovepush's version, for the header and the User-Agent. */
  readonly version: string
}

/** The path `dovepush serve` accepts transactions on. */
export const SERVE_PATH = '/v1/transactions'

/**
 * `http://host:port` or `http://host:port/` → `http://host:port/v1/transactions`;
 * a URL with a path is used as given. Throws a plain Error for a URL Dovecot
 * could not use (not http/https, unparseable, a fragment).
 */
export function resolveForwarderUrl(given: string): string {
  let u: URL
  try {
    u = new URL(given)
  } catch {
    throw new Error(`--url: not an absolute URL: ${JSON.stringify(given)}`)
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`--url: only http and https URLs work with dovecot.http, got ${u.protocol}`)
  if (u.hash !== '' || given.includes('#')) throw new Error('--url: a URL with a fragment (#…) cannot be requested')
  if (/[\s\u0000-\u001f\u007f]/.test(given)) throw new Error('--url: spaces and control characters are not allowed')
  if (u.pathname === '/' || u.pathname === '') {
    u.pathname = SERVE_PATH
    return u.toString()
  }
  return given
}

/** The URL as it may appear in logs: `user:password@` removed. */
export function logSafeUrl(url: string): string {
  const u = new URL(url)
  if (u.username === '' && u.password === '') return url
  u.username = ''
  u.password = ''
  return u.toString()
}

/** Whether the URL's host is an IP literal (2.3.19's dovecot.http cannot resolve names). */
export function isIpHost(url: string): boolean {
  const h = new URL(url).hostname
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(h) || h.startsWith('[')
}

/** A bearer token must be visible ASCII (RFC 6750 b64token and a little more): no spaces, no line breaks. */
export function checkToken(token: string): void {
  if (token === '') throw new Error('--token: empty')
  if (!/^[\x21-\x7e]+$/.test(token)) throw new Error('--token: only visible ASCII characters (no spaces, no line breaks) can go in an Authorization header')
}

/** A Lua string literal for any text: `"`, `\` and every byte outside printable ASCII as \ddd. */
export function luaString(s: string): string {
  let out = '"'
  for (const b of Buffer.from(s, 'utf8')) {
    if (b === 0x22) out += '\\"'
    else if (b === 0x5c) out += '\\\\'
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b)
    else out += '\\' + String(b).padStart(3, '0')
  }
  return out + '"'
}

const luaOpt = (s: string | undefined): string => (s === undefined ? 'nil' : luaString(s))

/** The whole script. */
export function forwarderScript(o: ForwarderOptions): string {
  if (o.url === undefined && o.toFile === undefined) throw new Error('nothing to forward to: give --url and/or --to-file')
  if (!Number.isInteger(o.timeoutMs) || o.timeoutMs < 1 || o.timeoutMs > 3_600_000) throw new Error('--timeout: an integer number of milliseconds, 1 to 3600000')
  if (o.token !== undefined) checkToken(o.token)
  const where = [o.url !== undefined ? 'sends it to dovepush serve (HTTP POST at end_txn)' : '', o.toFile !== undefined ? `appends it to ${o.toFile.replace(/[^\x20-\x7e]/g, '?')}` : '']
    .filter(Boolean)
    .join('\n-- and ')
  const header = `-- dovepush forwarder: generated by \`dovepush forwarder\` (dovepush ${o.version}, --dovecot ${o.dovecot}).
--
-- Add it to a real Dovecot as one more push-notification driver: it turns
-- every transaction Dovecot hands the driver (begin_txn, the events, end_txn)
-- into one line of dovepush's NDJSON input format, and
-- ${where}.
-- Transactions open at the same time (IMAP MOVE: destination and source) make
-- one line {"user","service","session","transactions":[{"committed","events"},...]},
-- written when the last of them has ended. Replay the lines with
-- \`dovepush run YOUR-SCRIPT.lua --events FILE\`.
--
-- It never raises into Dovecot: every call is protected; a failure (server
-- down, timeout, file not writable) is logged with dovecot.i_error as
-- "dovepush forwarder: ..." (one line per kind and minute in a session, with
-- a count of the ones not logged) and mail goes on. The token is never logged.
--
-- INSTALL (needs the mail_lua and push_notification_lua plugins; Debian and
-- Ubuntu ship them in the dovecot-lua package). Save this file, e.g. as
-- /etc/dovecot/dovepush-forwarder.lua, then:
--
--   Dovecot 2.3 (dovecot.conf or conf.d/*.conf):
--     mail_plugins = $mail_plugins notify push_notification mail_lua push_notification_lua
--     plugin {
--       push_notification_driver = ...      # your own driver, if you have one
--       push_notification_driver2 = lua:file=/etc/dovecot/dovepush-forwarder.lua
--     }
--   (take the next free number, without gaps: push_notification_driver,
--   push_notification_driver2, ...; the path cannot contain spaces)
--
--   Dovecot 2.4:
--     mail_plugins {
--       notify = yes
--       push_notification = yes
--       mail_lua = yes
--       push_notification_lua = yes
--     }
--     push_notification dovepush_forwarder {
--       driver = lua
--       lua_file = /etc/dovecot/dovepush-forwarder.lua
--     }
--
--   Then: doveadm reload (new sessions pick it up).
--
-- PERMISSIONS: the mail processes (imap, lmtp, ...) run as the mail user
-- (e.g. vmail) and read this file as that user.${o.token !== undefined ? `
-- This file contains the bearer token for dovepush serve (below, TOKEN): keep
-- it from other users, e.g. chown root:vmail FILE && chmod 0640 FILE.` : ''}${o.toFile !== undefined ? `
-- The record file is appended to by the mail processes, as the mail user:
-- the file (or, to create it, its directory) must be writable by that user.
-- Each line is written with one write() in append mode, so lines of
-- concurrent processes do not mix.` : ''}${o.url !== undefined ? `
--
-- HTTP: one attempt per line, ${o.timeoutMs} ms timeout (connect and request); the
-- mail command that ended the transaction waits for it. With Dovecot 2.3.19
-- (Debian 12) dovecot.http cannot look up host names (fixed in 2.3.20): use
-- an IP address in the URL there.` : ''}
--
-- FORMAT: event tables are copied key by key (nothing hard-coded): name,
-- mailbox, then the other keys sorted; flags/keywords as JSON arrays (an empty
-- table is []); nil fields are absent. Numbers stay exact: integral values as
-- integers (uid 7.0 -> 7), others as the shortest text (at most 17 digits)
-- that reads back as the same double. Strings are JSON-escaped (control
-- characters as \\n, \\t, \\u00XX); UTF-8 passes through; a byte that is
-- not valid UTF-8 (a raw 8-bit header) is written as \\u00XX, i.e. read as
-- Latin-1, so every line is valid UTF-8.
-- Dovecot versions: 2.3.19+ and 2.4 (${o.dovecot === 'auto' ? 'detected at run time from the HTTP client options Dovecot accepts' : `generated for ${o.dovecot} only`}).
`
  const settings = `
-- Generated settings ----------------------------------------------------------
local URL = ${luaOpt(o.url)}
local LOG_URL = ${luaOpt(o.url === undefined ? undefined : logSafeUrl(o.url))}
local TOKEN = ${luaOpt(o.token)}
local TO_FILE = ${luaOpt(o.toFile)}
local DOVECOT = ${luaString(o.dovecot)}
local TIMEOUT_MS = ${o.timeoutMs}
local USER_AGENT = ${luaString(`dovepush-forwarder/${o.version}`)}
`
  return header + settings + FORWARDER_BODY
}

// The Lua below works on Lua 5.1 to 5.4 (Dovecot 2.3 builds against 5.1/5.3/
// 5.4; Debian 12 uses 5.4): no goto, no integer division, math.type optional,
// %z in patterns.
const FORWARDER_BODY = String.raw`
-- Everything below is the same for every configuration --------------------------

local type, next, tostring, tonumber, pcall, rawget, ipairs = type, next, tostring, tonumber, pcall, rawget, ipairs
local format, byte, sub, find, gsub = string.format, string.byte, string.sub, string.find, string.gsub
local concat, sort, insert = table.concat, table.sort, table.insert
local floor, huge = math.floor, math.huge
local math_type = math.type -- nil on Lua 5.1/5.2
local dovecot = dovecot

local PREFIX = "dovepush forwarder: "
local REPORT_EVERY = 60 -- seconds between two log lines of the same kind (per session)
local MAX_DEPTH = 16

-- Logging: dovecot.i_error, throttled per kind, never the token or URL credentials

local last_report, not_reported = {}, {}

local function replace_plain(s, what, with)
  if what == nil or what == "" then return s end
  local out, i = {}, 1
  while true do
    local a, b = find(s, what, i, true)
    if not a then break end
    out[#out + 1] = sub(s, i, a - 1)
    out[#out + 1] = with
    i = b + 1
  end
  out[#out + 1] = sub(s, i)
  return concat(out)
end

local function redact(msg)
  msg = replace_plain(msg, TOKEN, "<token>")
  if URL ~= LOG_URL then msg = replace_plain(msg, URL, LOG_URL) end
  return msg
end

local function report(kind, err)
  local msg = type(err) == "string" and err or tostring(err)
  local now = os.time()
  local last = last_report[kind]
  if last ~= nil and now - last < REPORT_EVERY and now >= last then
    not_reported[kind] = (not_reported[kind] or 0) + 1
    return
  end
  last_report[kind] = now
  local n = not_reported[kind] or 0
  not_reported[kind] = 0
  if n > 0 then msg = msg .. format(" (and %d more %s failures not logged)", n, kind) end
  dovecot.i_error(PREFIX .. redact(msg))
end

-- Calls fn(...) protected; a failure is reported, never raised.
local function protect(kind, fn, ...)
  local ok, err = pcall(fn, ...)
  if not ok then pcall(report, kind, err) end
  return ok
end

-- JSON ------------------------------------------------------------------------

local ESCAPES = { ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f', ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }
local function escape_char(c)
  return ESCAPES[c] or format("\\u%04x", byte(c))
end

-- Bytes >= 0x80: valid UTF-8 sequences (no overlongs, surrogates or > U+10FFFF)
-- pass through; any other byte becomes \u00XX (read as Latin-1).
local function fix_utf8(s)
  local out, n, i, start = {}, #s, 1, 1
  while i <= n do
    local c = byte(s, i)
    if c < 0x80 then
      i = i + 1
    else
      local len = 0
      if c >= 0xC2 and c <= 0xDF then len = 2
      elseif c >= 0xE0 and c <= 0xEF then len = 3
      elseif c >= 0xF0 and c <= 0xF4 then len = 4 end
      local ok = len > 0 and i + len - 1 <= n
      if ok then
        local c2 = byte(s, i + 1)
        if (c == 0xE0 and c2 < 0xA0) or (c == 0xED and c2 > 0x9F)
          or (c == 0xF0 and c2 < 0x90) or (c == 0xF4 and c2 > 0x8F) then
          ok = false
        end
        for j = i + 1, i + len - 1 do
          local b = byte(s, j)
          if b < 0x80 or b > 0xBF then ok = false end
        end
      end
      if ok then
        i = i + len
      else
        out[#out + 1] = sub(s, start, i - 1)
        out[#out + 1] = format("\\u%04x", c)
        i = i + 1
        start = i
      end
    end
  end
  out[#out + 1] = sub(s, start)
  return concat(out)
end

local function json_string(s)
  s = gsub(s, '[%z\1-\31"\\\127]', escape_char)
  if find(s, "[\128-\255]") then s = fix_utf8(s) end
  return '"' .. s .. '"'
end

local function json_number(v)
  if math_type ~= nil and math_type(v) == "integer" then return format("%d", v) end
  if v ~= v or v == huge or v == -huge then return "null" end
  if v == floor(v) then return format("%.0f", v) end -- integral: all its digits, exact
  for p = 1, 16 do -- the shortest text that reads back as v (Dovecot never pushes such floats)
    local s = format("%." .. p .. "g", v)
    if tonumber(s) == v then return s end
  end
  return format("%.17g", v) -- always exact for a double
end

-- A sequence (keys 1..n) or an empty table -> its length; else nil.
local function array_length(t)
  local n = 0
  for k in next, t do
    if type(k) ~= "number" or k < 1 or k ~= floor(k) then return nil end
    n = n + 1
  end
  for i = 1, n do
    if rawget(t, i) == nil then return nil end
  end
  return n
end

local encode

local function encode_object(t, depth, first)
  local keys = {}
  for k in next, t do
    if type(k) == "string" and k ~= first[1] and k ~= first[2] then keys[#keys + 1] = k end
  end
  sort(keys)
  for i = #first, 1, -1 do
    if rawget(t, first[i]) ~= nil then insert(keys, 1, first[i]) end
  end
  local parts = {}
  for _, k in ipairs(keys) do
    local v = encode(rawget(t, k), depth + 1)
    if v ~= nil then parts[#parts + 1] = json_string(k) .. ":" .. v end
  end
  return "{" .. concat(parts, ",") .. "}"
end

local NO_FIRST = {}

-- A Lua value as JSON text; nil for what JSON cannot hold (functions, userdata).
encode = function(v, depth)
  local t = type(v)
  if t == "string" then return json_string(v) end
  if t == "number" then return json_number(v) end
  if t == "boolean" then return v and "true" or "false" end
  if t ~= "table" then return nil end
  if depth > MAX_DEPTH then error("a table nested deeper than " .. MAX_DEPTH .. " levels", 0) end
  local n = array_length(v)
  if n == nil then return encode_object(v, depth, NO_FIRST) end
  local parts = {}
  for i = 1, n do parts[i] = encode(rawget(v, i), depth + 1) or "null" end
  return "[" .. concat(parts, ",") .. "]"
end

local EVENT_FIRST = { "name", "mailbox" }
local function encode_event(ev)
  if type(ev) ~= "table" then error("the event is a " .. type(ev) .. ", not a table", 0) end
  return encode_object(ev, 1, EVENT_FIRST)
end

-- Sending ---------------------------------------------------------------------

local OPTIONS_23 = {
  request_timeout_msecs = TIMEOUT_MS,
  connect_timeout_msecs = TIMEOUT_MS,
  max_attempts = 1,
  no_auto_retry = true,
  user_agent = USER_AGENT,
}
local OPTIONS_24 = {
  request_timeout = TIMEOUT_MS .. "ms",
  connect_timeout = TIMEOUT_MS .. "ms",
  request_max_attempts = "1",
  user_agent = USER_AGENT,
}

local client -- one per Lua state (session), made at the first send

local function get_client()
  if client ~= nil then return client end
  local http = type(dovecot) == "table" and dovecot.http or nil
  if type(http) ~= "table" or http.client == nil then
    error("dovecot.http is not available (it needs Dovecot 2.3.19 or later): not sending", 0)
  end
  local ok, c = false, nil
  if DOVECOT ~= "2.4" then
    ok, c = pcall(http.client, OPTIONS_23) -- 2.4 rejects these names ("... is unknown setting")
  end
  if not ok and DOVECOT ~= "2.3" then
    ok, c = pcall(http.client, OPTIONS_24) -- 2.3 would ignore them: try 2.3's first
  end
  if not ok then error("cannot create the HTTP client: " .. tostring(c), 0) end
  client = c
  return c
end

local function post(line)
  local rq = get_client():request({ url = URL, method = "POST" })
  rq:add_header("Content-Type", "application/json")
  if TOKEN ~= nil then rq:add_header("Authorization", "Bearer " .. TOKEN) end
  rq:set_payload(line) -- one argument: 2.3 takes exactly one; 2.4's default is not synchronous
  local rs = rq:submit()
  local status = rs:status()
  if type(status) ~= "number" or status < 200 or status > 299 then
    local reason, body = rs:reason(), rs:payload()
    local detail = ""
    if type(body) == "string" and body ~= "" then
      detail = ": " .. gsub(sub(body, 1, 200), "[%z\1-\31\127]", " ")
    end
    error(format("POST %s failed: %s %s%s", LOG_URL, tostring(status), tostring(reason), detail), 0)
  end
end

local function append(line)
  local f, err = io.open(TO_FILE, "a")
  if f == nil then error("cannot append to " .. TO_FILE .. ": " .. tostring(err), 0) end
  pcall(f.setvbuf, f, "full", #line + 64) -- the whole line in one write()
  local ok, werr = f:write(line, "\n")
  local cok, cerr = f:close()
  if not ok then error("cannot write to " .. TO_FILE .. ": " .. tostring(werr), 0) end
  if not cok then error("cannot write to " .. TO_FILE .. ": " .. tostring(cerr), 0) end
end

-- Transactions ----------------------------------------------------------------
-- A group holds the transactions of this Lua state that were open at the
-- same time: a begin_txn while one is open joins its group; the group is
-- written when its last member ends. Members keep their begin order.

local MARK = {} -- key of our contexts
local group = nil

local function head(g)
  local parts = { '"user":' .. json_string(g.user) }
  if g.service ~= nil then parts[#parts + 1] = '"service":' .. json_string(g.service) end
  if g.session ~= nil then parts[#parts + 1] = '"session":' .. json_string(g.session) end
  return concat(parts, ",")
end

local function body(ctx)
  return '"committed":' .. (ctx.committed and "true" or "false") .. ',"events":[' .. concat(ctx.events, ",") .. "]"
end

local function deliver(g, members)
  local line
  if #members == 1 then
    line = "{" .. head(g) .. "," .. body(members[1]) .. "}"
  else
    local parts = {}
    for i, m in ipairs(members) do parts[i] = "{" .. body(m) .. "}" end
    line = "{" .. head(g) .. ',"transactions":[' .. concat(parts, ",") .. "]}"
  end
  if TO_FILE ~= nil then protect("file", append, line) end
  if URL ~= nil then protect("http", post, line) end
end

local function text_of(v)
  if v == nil then return nil end
  if type(v) == "string" then return v end
  return tostring(v)
end

local function begin(user)
  -- copy the strings: the user object is not kept (Dovecot panics at logout
  -- if it outlives the transaction) and never compared (its __eq crashes)
  local username = text_of(user.username)
  if username == nil or username == "" then error("the user object has no username", 0) end
  local ctx = { [MARK] = true, events = {}, ended = false }
  if group == nil then
    group = { user = username, service = text_of(user.service), session = text_of(user.session_id), members = {}, open = 0 }
  end
  local g = group
  g.members[#g.members + 1] = ctx
  g.open = g.open + 1
  ctx.group = g
  return ctx
end

local function our_ctx(ctx, what)
  if type(ctx) ~= "table" or rawget(ctx, MARK) == nil then
    error(what .. " with a context this script did not make (" .. type(ctx) .. ")", 0)
  end
  return rawget(ctx, MARK) == true -- false: begin_txn failed (already logged)
end

local function add_event(ctx, ev)
  if not our_ctx(ctx, "event") then return end
  if ctx.ended then error("event after end_txn", 0) end
  ctx.events[#ctx.events + 1] = encode_event(ev)
end

local function finish(ctx, success)
  if not our_ctx(ctx, "end_txn") then return end
  if ctx.ended then error("end_txn twice for one transaction", 0) end
  ctx.ended = true
  ctx.committed = success and true or false
  local g = ctx.group
  g.open = g.open - 1
  if g.open > 0 then return end
  if group == g then group = nil end
  deliver(g, g.members)
end

-- Dovecot's entry points --------------------------------------------------------

function script_init(...) -- 2.3: no arguments, must return the integer 0; 2.4: settings table, result ignored
  return 0
end

function script_deinit()
  -- a group whose members did not all end (should not happen): write the ended ones
  protect("deinit", function()
    local g = group
    group = nil
    if g == nil then return end
    local ended = {}
    for _, m in ipairs(g.members) do
      if m.ended then ended[#ended + 1] = m end
    end
    if #ended > 0 then deliver(g, ended) end
    error(format("%d transaction(s) never ended, not forwarded", #g.members - #ended), 0)
  end)
end

function dovecot_lua_notify_begin_txn(user)
  local ok, ctx = pcall(begin, user)
  if ok then return ctx end
  pcall(report, "begin_txn", ctx)
  return { [MARK] = false }
end

function dovecot_lua_notify_end_txn(ctx, success)
  protect("end_txn", finish, ctx, success)
end

local function on_event(ctx, ev)
  protect("event", add_event, ctx, ev)
end

for _, name in ipairs({ "message_new", "message_append", "message_read", "message_trash",
                        "message_expunge", "flags_set", "flags_clear", "mailbox_create",
                        "mailbox_delete", "mailbox_rename", "mailbox_subscribe",
                        "mailbox_unsubscribe" }) do
  _G["dovecot_lua_notify_event_" .. name] = on_event
end
`
