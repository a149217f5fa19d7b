-- webhook.lua: one JSON POST per new message, to a webhook of your own.
--
-- dovecot.conf (Dovecot 2.3):
--   mail_plugins = $mail_plugins notify push_notification push_notification_lua mail_lua
--   plugin {
--     push_notification_driver = lua:file=/etc/dovecot/webhook.lua
--     push_lua_url = https://push.example.net/hook    # required
--     push_lua_token = s3cret                         # optional: sent as "Authorization: Bearer s3cret"
--   }
-- Needs a JSON module: Debian's lua-cjson (dovepush has cjson built in).
--
-- Body: {"user":"alice@example.test","mailbox":"INBOX","uid":7,
--        "from":"bob@example.test","from_name":"Bob","subject":"Hi","snippet":"Hello"}

local json = require "cjson"

local client = nil -- one HTTP client per Lua state (= per mail user session)

local function http_client()
  if client == nil then
    client = dovecot.http.client {
      timeout = 10000,       -- ms for the whole request
      max_attempts = 3,      -- retry on connection errors and 5xx
      user_agent = "dovecot-webhook/1",
    }
  end
  return client
end

function dovecot_lua_notify_begin_txn(user)
  return {
    user = user.username,
    url = user:plugin_getenv("push_lua_url"),
    token = user:plugin_getenv("push_lua_token"),
    messages = {},
  }
end

function dovecot_lua_notify_event_message_new(ctx, event)
  -- uid is a float (7.0): math.tointeger keeps it an integer in the JSON
  table.insert(ctx.messages, {
    user = ctx.user,
    mailbox = event.mailbox,
    uid = math.tointeger(event.uid),
    from = event.from_address,
    from_name = event.from_display_name,
    subject = event.subject or "",
    snippet = event.snippet or "",
  })
end

function dovecot_lua_notify_end_txn(ctx, success)
  if not success or #ctx.messages == 0 then return end
  if ctx.url == nil then
    dovecot.i_error("webhook.lua: push_lua_url is not set for " .. ctx.user)
    return
  end
  for _, msg in ipairs(ctx.messages) do
    local rq = http_client():request { url = ctx.url, method = "POST" }
    rq:add_header("Content-Type", "application/json")
    if ctx.token ~= nil then rq:add_header("Authorization", "Bearer " .. ctx.token) end
    rq:set_payload(json.encode(msg))
    local r = rq:submit()
    if r:status() < 200 or r:status() >= 300 then
      dovecot.i_error(string.format("webhook.lua: %s answered %d %s", ctx.url, r:status(), r:reason()))
    end
  end
end
