-- ntfy.lua: a phone notification per new message through ntfy (https://ntfy.sh)
-- or Gotify (https://gotify.net).
--
-- dovecot.conf (Dovecot 2.3):
--   plugin {
--     push_notification_driver = lua:file=/etc/dovecot/ntfy.lua
--     push_ntfy_url = https://ntfy.sh/alice-mail-7f3a     # ntfy: the topic URL
--     # Gotify instead: push_ntfy_mode = gotify
--     #                 push_ntfy_url = https://gotify.example.net/message?token=AbCdEf
--     push_ntfy_priority = 3                              # optional, 1..5
--   }
-- Only INBOX deliveries notify (not IMAP APPENDs such as saved drafts or Sent).

local client = nil

local function http_client()
  client = client or dovecot.http.client { timeout = 5000, user_agent = "dovecot-ntfy/1" }
  return client
end

-- JSON string escaping for the Gotify body (no module needed)
local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local map = { ['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }
    return map[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

function dovecot_lua_notify_begin_txn(user)
  return {
    url = user:plugin_getenv("push_ntfy_url"),
    mode = user:plugin_getenv("push_ntfy_mode") or "ntfy",
    priority = tonumber(user:plugin_getenv("push_ntfy_priority") or "3"),
    new = {},
  }
end

function dovecot_lua_notify_event_message_new(ctx, event)
  if event.mailbox == "INBOX" then table.insert(ctx.new, event) end
end

local function send(ctx, event)
  local who = event.from_display_name ~= "" and event.from_display_name or event.from_address
  local title = "New mail from " .. who
  local text = event.subject or "(no subject)"
  local rq
  if ctx.mode == "gotify" then
    rq = http_client():request { url = ctx.url, method = "POST" }
    rq:add_header("Content-Type", "application/json")
    rq:set_payload(string.format('{"title":%s,"message":%s,"priority":%d}', json_string(title), json_string(text), ctx.priority))
  else
    rq = http_client():request { url = ctx.url, method = "POST" }
    rq:add_header("Title", title)
    rq:add_header("Priority", tostring(ctx.priority))
    rq:add_header("Tags", "envelope")
    rq:set_payload(text)
  end
  local r = rq:submit()
  if r:status() >= 300 then
    dovecot.i_warning(string.format("ntfy.lua: %s answered %d %s", ctx.url, r:status(), r:reason()))
  end
end

function dovecot_lua_notify_end_txn(ctx, success)
  if not success or ctx.url == nil then return end
  for _, event in ipairs(ctx.new) do send(ctx, event) end
end
