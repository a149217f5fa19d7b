// Built-in `socket.url`: the URL functions of LuaSocket 3.0 (escape,
// unescape, parse, build, absolute, parse_path, build_path), written anew in
// Lua from LuaSocket's manual. Where the manual is silent the behaviour of
// LuaSocket 3.0 is followed, except that absolute() resolves references as
// RFC 3986 §5.2 says. LuaSocket's own resolver differs in corner cases: it
// gives "http://a/b/c/d;x" for ";x" on "http://a/b/c/d;p?q" (RFC 3986:
// "http://a/b/c/;x"), removes dot segments from the query, fragment and
// authority too ("g?y/./x" gives "http://a/b/c/g?y/x"), and on a base that is
// a relative path answers differently ("a/b" + "../../c": "../c", RFC 3986:
// "/c"; "g" + "h": "/h", RFC 3986: "h"). As in LuaSocket, an empty
// reference gives the base URL unchanged (fragment included).

import { luaSourceModule } from './modules.js'

export const SOCKET_URL_SOURCE = `
local char, find, format, gmatch, gsub, match, sub =
  string.char, string.find, string.format, string.gmatch, string.gsub, string.match, string.sub
local concat = table.concat
local pairs, tonumber, tostring, type = pairs, tonumber, tostring, type

local url = { _VERSION = "URL 1.0.3" }

-- Replacement text of each byte, as gsub tables.
-- escape(): LuaSocket keeps only ASCII letters, digits and "_", and writes the
-- others as "%" plus two lowercase hex digits (its manual: escape("/#?;") is
-- "%2f%23%3f%3b").
-- build_path(): a segment keeps letters, digits and the RFC 2396 "unreserved"
-- and segment characters, the others become "%" plus two uppercase hex digits.
local ESCAPE, PROTECT = {}, {}
do
  local segment_safe = "-_.!~*'():@&=+$,"
  for b = 0, 255 do
    local c = char(b)
    local alnum = (b >= 48 and b <= 57) or (b >= 65 and b <= 90) or (b >= 97 and b <= 122)
    ESCAPE[c] = (alnum or c == "_") and c or format("%%%02x", b)
    PROTECT[c] = (alnum or find(segment_safe, c, 1, true)) and c or format("%%%02X", b)
  end
end

function url.escape(s)
  return (gsub(s, ".", ESCAPE))
end

local function from_hex(h)
  return char(tonumber(h, 16))
end

function url.unescape(s)
  return (gsub(s, "%%(%x%x)", from_hex))
end

-- authority = [userinfo "@"] host [":" port]; userinfo = user [":" password];
-- an IPv6 literal host comes in brackets, which are dropped.
local function split_authority(t, authority)
  local hostport = authority
  local at = find(authority, "@", 1, true)
  if at then
    local userinfo = sub(authority, 1, at - 1)
    hostport = sub(authority, at + 1)
    t.userinfo = userinfo
    local user, password = match(userinfo, "^(.*):([^:]*)$")
    if user then
      t.user, t.password = user, password
    else
      t.user = userinfo
    end
  end
  local host, port = match(hostport, "^(.*):([^:%]]*)$")
  if host then
    t.port = port
    hostport = host
  end
  if hostport ~= "" then
    t.host = match(hostport, "^%[(.+)%]$") or hostport
  end
end

-- [scheme ":"] ["//" authority] [path] [";" params] ["?" query] ["#" fragment]
function url.parse(s, default)
  local t = {}
  if default then
    for k, v in pairs(default) do t[k] = v end
  end
  if s == nil or s == "" then return nil, "invalid url" end
  local rest = tostring(s)
  local scheme, after = match(rest, "^([A-Za-z0-9][A-Za-z0-9+.%-]*):(.*)$")
  if scheme then
    t.scheme, rest = scheme, after
  end
  local authority
  authority, after = match(rest, "^//([^/?#]*)(.*)$")
  if authority then
    t.authority, rest = authority, after
  end
  local cut = find(rest, "#", 1, true)
  if cut then
    t.fragment, rest = sub(rest, cut + 1), sub(rest, 1, cut - 1)
  end
  cut = find(rest, "?", 1, true)
  if cut then
    t.query, rest = sub(rest, cut + 1), sub(rest, 1, cut - 1)
  end
  cut = find(rest, ";", 1, true)
  if cut then
    t.params, rest = sub(rest, cut + 1), sub(rest, 1, cut - 1)
  end
  if rest ~= "" then t.path = rest end
  if authority then split_authority(t, authority) end
  return t
end

-- host, port, user, password (or userinfo) win over authority.
function url.build(p)
  local authority = p.authority
  if p.host then
    local hostport = tostring(p.host)
    if find(hostport, ":", 1, true) then hostport = "[" .. hostport .. "]" end
    if p.port then hostport = hostport .. ":" .. tostring(p.port) end
    local userinfo = p.userinfo
    if p.user then
      userinfo = p.user
      if p.password then userinfo = userinfo .. ":" .. p.password end
    end
    if userinfo then hostport = userinfo .. "@" .. hostport end
    authority = hostport
  end
  local s = p.path or ""
  if p.params then s = s .. ";" .. p.params end
  if p.query then s = s .. "?" .. p.query end
  if authority then s = "//" .. authority .. s end
  if p.scheme then s = p.scheme .. ":" .. s end
  if p.fragment then s = s .. "#" .. p.fragment end
  return s
end

-- RFC 3986 §5.2.4: removes "." and ".." segments from a path.
local function remove_dot_segments(input)
  local out = {}
  while input ~= "" do
    if sub(input, 1, 3) == "../" then
      input = sub(input, 4)
    elseif sub(input, 1, 2) == "./" then
      input = sub(input, 3)
    elseif sub(input, 1, 3) == "/./" then
      input = sub(input, 3)
    elseif input == "/." then
      input = "/"
    elseif sub(input, 1, 4) == "/../" or input == "/.." then
      input = "/" .. sub(input, 5)
      out[#out] = nil
    elseif input == "." or input == ".." then
      input = ""
    else
      local seg = match(input, "^/?[^/]*")
      out[#out + 1] = seg
      input = sub(input, #seg + 1)
    end
  end
  return concat(out)
end

-- The path with its params, as RFC 3986 sees it.
local function full_path(p)
  local path = p.path or ""
  if p.params then path = path .. ";" .. p.params end
  return path
end

-- RFC 3986 §5.2.3
local function merge(base, path)
  local bpath = full_path(base)
  if base.authority and bpath == "" then return "/" .. path end
  return (match(bpath, "^(.*/)") or "") .. path
end

-- RFC 3986 §5.2.2 (strict: a reference with a scheme is taken as it is).
function url.absolute(base_url, relative_url)
  if type(base_url) == "table" then base_url = url.build(base_url) end
  local b = url.parse(base_url)
  local r = url.parse(relative_url)
  if not b then return relative_url end
  if not r then return base_url end
  local t = { fragment = r.fragment }
  local rpath = full_path(r)
  if r.scheme then
    t.scheme, t.authority, t.path, t.query = r.scheme, r.authority, remove_dot_segments(rpath), r.query
  else
    t.scheme = b.scheme
    if r.authority then
      t.authority, t.path, t.query = r.authority, remove_dot_segments(rpath), r.query
    else
      t.authority = b.authority
      if rpath == "" then
        t.path = full_path(b)
        t.query = r.query or b.query
      else
        if sub(rpath, 1, 1) == "/" then
          t.path = remove_dot_segments(rpath)
        else
          t.path = remove_dot_segments(merge(b, rpath))
        end
        t.query = r.query
      end
    end
  end
  return url.build(t)
end

-- Segments (unescaped; empty ones are skipped), is_absolute and is_directory (1 or nil).
function url.parse_path(path)
  local segments = {}
  for seg in gmatch(path, "[^/]+") do
    segments[#segments + 1] = url.unescape(seg)
  end
  if sub(path, 1, 1) == "/" then segments.is_absolute = 1 end
  if sub(path, -1) == "/" then segments.is_directory = 1 end
  return segments
end

function url.build_path(segments, unsafe)
  local parts = {}
  for i = 1, #segments do
    local seg = segments[i]
    if not unsafe then seg = gsub(seg, ".", PROTECT) end
    parts[i] = seg
  end
  if #parts == 0 then
    return segments.is_absolute and "/" or ""
  end
  local s = concat(parts, "/")
  if segments.is_absolute then s = "/" .. s end
  if segments.is_directory then s = s .. "/" end
  return s
end

return url
`

export const socketUrl = luaSourceModule('socket.url', SOCKET_URL_SOURCE)
