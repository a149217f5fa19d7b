-- recorder.lua: writes one JSON line per call Dovecot (or dovepush) makes
-- into this script, with every argument dumped with its Lua type kept
-- (integer vs float, nil vs "", arrays vs maps). Use it to see exactly what
-- a push script receives, or to compare dovepush with a real Dovecot.
--
-- Output file: plugin setting `recorder_file` (user:plugin_getenv), else the
-- environment variable DOVEPUSH_RECORD, else /tmp/dovepush-recorder.ndjson.
-- script_init/script_deinit lines can only use the environment variable.
--
-- Dump format:  {"t":"number","n":"float","v":1.0}  {"t":"string","v":"x"}
--               {"t":"table","v":{"key":<dump>,"[1]":<dump>}}  {"t":"nil"} ...

local DEFAULT_OUT = os.getenv("DOVEPUSH_RECORD") or "/tmp/dovepush-recorder.ndjson"
local out_path = DEFAULT_OUT
local txn = 0

local function quote(s)
  return '"' .. s:gsub('[%c"\\\128-\255]', function(c)
    local map = { ['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }
    if map[c] then return map[c] end
    if c:byte() < 128 then return string.format("\\u%04x", c:byte()) end
    return c -- UTF-8 bytes pass through
  end) .. '"'
end

local function key_of(k)
  if type(k) == "string" then return k end
  if math.type(k) == "integer" then return "[" .. k .. "]" end
  return "[" .. type(k) .. ":" .. tostring(k) .. "]"
end

-- to JSON text, with a typed wrapper around every Lua value
local function dump(v, seen)
  local t = type(v)
  if t == "nil" then return '{"t":"nil"}' end
  if t == "boolean" then return '{"t":"boolean","v":' .. tostring(v) .. '}' end
  if t == "string" then return '{"t":"string","v":' .. quote(v) .. '}' end
  if t == "number" then
    local n = math.type(v)
    local text = (v ~= v or v == math.huge or v == -math.huge) and quote(tostring(v))
      or (n == "integer" and string.format("%d", v) or string.format("%.17g", v))
    return '{"t":"number","n":"' .. n .. '","v":' .. text .. '}'
  end
  if t == "table" then
    seen = seen or {}
    if seen[v] then return '{"t":"table","cycle":true}' end
    seen[v] = true
    local keys = {}
    for k in next, v do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return key_of(a) < key_of(b) end)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = quote(key_of(k)) .. ":" .. dump(rawget(v, k), seen) end
    seen[v] = nil
    local mt = getmetatable(v)
    local mt_name = type(mt) == "table" and rawget(mt, "__name") or nil
    return '{"t":"table","v":{' .. table.concat(parts, ",") .. '}' ..
      (mt_name and (',"mt":' .. quote(mt_name)) or "") .. '}'
  end
  return '{"t":"' .. t .. '"}'
end

local function emit(call, ...)
  local n = select("#", ...)
  local args = {}
  for i = 1, n do args[i] = dump((select(i, ...))) end
  local f = io.open(out_path, "a")
  if not f then return end
  f:write('{"call":', quote(call), ',"txn":', tostring(txn), ',"nargs":', tostring(n),
          ',"args":[', table.concat(args, ","), ']}\n')
  f:close()
end

function script_init(...)
  emit("script_init", ...)
  return 0
end

function script_deinit(...)
  out_path = DEFAULT_OUT
  emit("script_deinit", ...)
end

function dovecot_lua_notify_begin_txn(user, ...)
  txn = txn + 1
  -- plugin_getenv exists in 2.3 only (2.4 passes settings to script_init)
  local configured = user.plugin_getenv and user:plugin_getenv("recorder_file")
  out_path = configured or DEFAULT_OUT
  emit("dovecot_lua_notify_begin_txn", user, ...)
  return { recorder_txn = txn }
end

function dovecot_lua_notify_end_txn(...)
  emit("dovecot_lua_notify_end_txn", ...)
end

for _, name in ipairs({ "message_new", "message_append", "message_read", "message_trash",
                        "message_expunge", "flags_set", "flags_clear", "mailbox_create",
                        "mailbox_delete", "mailbox_rename", "mailbox_subscribe",
                        "mailbox_unsubscribe" }) do
  local fn = "dovecot_lua_notify_event_" .. name
  _G[fn] = function(...) emit(fn, ...) end
end
