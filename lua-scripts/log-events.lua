-- log-events.lua: logs every push event it receives, one line each.
-- A starting point: replace dovecot.i_info with the request your backend needs.

function dovecot_lua_notify_begin_txn(user)
  return { user = user.username, events = 0 }
end

local function describe(event)
  local parts = { event.name, "mailbox=" .. event.mailbox }
  if event.uid then parts[#parts + 1] = string.format("uid=%d", event.uid) end
  if event.mailbox_old then parts[#parts + 1] = "from=" .. event.mailbox_old end
  if event.subject then parts[#parts + 1] = "subject=" .. event.subject end
  if event.flags and #event.flags > 0 then parts[#parts + 1] = "flags=" .. table.concat(event.flags, ",") end
  return table.concat(parts, " ")
end

local function handle(ctx, event)
  ctx.events = ctx.events + 1
  dovecot.i_info(ctx.user .. ": " .. describe(event))
end

for _, name in ipairs({ "message_new", "message_append", "message_read", "message_trash",
                        "message_expunge", "flags_set", "flags_clear", "mailbox_create",
                        "mailbox_delete", "mailbox_rename", "mailbox_subscribe",
                        "mailbox_unsubscribe" }) do
  _G["dovecot_lua_notify_event_" .. name] = handle
end

function dovecot_lua_notify_end_txn(ctx, success)
  if not success then dovecot.i_warning(ctx.user .. ": transaction rolled back") end
end
