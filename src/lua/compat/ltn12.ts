// Built-in `ltn12`: LuaSocket 3.0's sources, sinks, filters and pumps
// (LTN012), written anew in Lua from LuaSocket's manual and the LTN012
// conventions:
// - a source returns the next chunk, nil at the end, or nil and an error;
// - a sink takes (chunk, err), nil chunk meaning the end, and returns 1 or
//   nil and an error;
// - a filter takes a chunk and returns its output ("" when it has none yet);
//   after the data it is called with nil until it returns nil. A filter that
//   returned output for a chunk is called with "" for any output it still has.
// Chunk boundaries may differ from LuaSocket's own ltn12 (filter.chain hands
// back everything a filter flushes at the end as one chunk).

import { luaSourceModule } from './modules.js'

export const LTN12_SOURCE = `
local select, error = select, error
local sub, concat, unpack = string.sub, table.concat, table.unpack

local ltn12 = { _VERSION = "LTN12 1.0.3", BLOCKSIZE = 2048 }
local filter, source, sink, pump = {}, {}, {}, {}
ltn12.filter, ltn12.source, ltn12.sink, ltn12.pump = filter, source, sink, pump

-- filters ------------------------------------------------------------------

-- A high-level filter around low(ctx, chunk, extra) -> output, new ctx.
function filter.cycle(low, ctx, extra)
  return function(chunk)
    local out
    out, ctx = low(ctx, chunk, extra)
    return out
  end
end

function filter.chain(...)
  local filters, n = { ... }, select("#", ...)
  local feed, flush
  -- everything filters i..n output for a data chunk
  feed = function(i, data)
    if i > n then return data end
    local f, parts = filters[i], {}
    local out = f(data)
    while out ~= "" do
      if out == nil then error("filter returned inappropriate nil", 3) end
      parts[#parts + 1] = feed(i + 1, out)
      out = f("")
    end
    return concat(parts)
  end
  -- everything filters i..n output once the data has ended
  flush = function(i)
    if i > n then return "" end
    local f, parts = filters[i], {}
    local out = f(nil)
    while out ~= nil do
      if out ~= "" then parts[#parts + 1] = feed(i + 1, out) end
      out = f(nil)
    end
    parts[#parts + 1] = flush(i + 1)
    return concat(parts)
  end
  local ended = false
  return function(chunk)
    if chunk ~= nil then return feed(1, chunk) end
    if ended then return nil end
    ended = true
    local rest = flush(1)
    if rest == "" then return nil end
    return rest
  end
end

-- sources ------------------------------------------------------------------

local function nothing() return nil end

function source.empty()
  return nothing
end

function source.error(err)
  return function() return nil, err end
end

-- Reads the handle BLOCKSIZE bytes at a time and closes it at the end.
function source.file(handle, io_err)
  if not handle then return source.error(io_err or "unable to open file") end
  local open = true
  return function()
    if not open then return nil end
    local chunk, err = handle:read(ltn12.BLOCKSIZE)
    if chunk == nil then
      open = false
      handle:close()
      if err ~= nil then return nil, err end
    end
    return chunk
  end
end

-- A fancy source may return a chunk and a new source to continue with.
function source.simplify(src)
  return function()
    local chunk, other = src()
    if chunk == nil then return nil, other end
    if other then src = other end
    return chunk
  end
end

function source.string(s)
  if not s then return source.empty() end
  local pos = 1
  return function()
    local size = ltn12.BLOCKSIZE
    local chunk = sub(s, pos, pos + size - 1)
    pos = pos + size
    if chunk == "" then return nil end
    return chunk
  end
end

-- t[1], t[2], ...; nil for a missing entry (the index moves on anyway).
function source.table(t)
  t = t or {}
  local i = 0
  return function()
    i = i + 1
    return t[i]
  end
end

-- rewound(chunk) puts a chunk back; rewound() returns the last one put back,
-- or else the next chunk of src.
function source.rewind(src)
  local back = {}
  return function(chunk)
    if chunk ~= nil then
      back[#back + 1] = chunk
      return
    end
    local top = #back
    if top == 0 then return src() end
    chunk = back[top]
    back[top] = nil
    return chunk
  end
end

-- source.chain(src, f1 [, f2, ...]): src's data through the filters.
function source.chain(src, f, ...)
  if select("#", ...) > 0 then f = filter.chain(f, ...) end
  local at_end, draining, finished = false, false, false
  return function()
    while not finished do
      local input = ""
      if at_end then
        input = nil
      elseif not draining then
        local chunk, err = src()
        if chunk == nil then
          if err ~= nil then return nil, err end
          at_end = true
        end
        input = chunk
      end
      local out = f(input)
      if out == nil then
        if input ~= nil then error("filter returned inappropriate nil", 2) end
        finished = true
      elseif out == "" then
        draining = false
      else
        draining = input ~= nil
        return out
      end
    end
    return nil
  end
end

-- The data of each source in turn; an error stops it.
function source.cat(...)
  local sources, n, i = { ... }, select("#", ...), 1
  return function()
    while i <= n do
      local chunk, err = sources[i]()
      if chunk ~= nil then return chunk end
      if err ~= nil then return nil, err end
      i = i + 1
    end
    return nil
  end
end

-- sinks --------------------------------------------------------------------

-- Stores the chunks in t (or a new table); returns the sink and the table.
function sink.table(t)
  t = t or {}
  local function store(chunk, err)
    if chunk ~= nil then t[#t + 1] = chunk end
    return 1
  end
  return store, t
end

-- A fancy sink may return 1 and a new sink to continue with.
function sink.simplify(snk)
  return function(chunk, err)
    local ok, other = snk(chunk, err)
    if not ok then return nil, other end
    if other then snk = other end
    return 1
  end
end

-- Writes the chunks to the handle and closes it at the end.
function sink.file(handle, io_err)
  if not handle then return sink.error(io_err or "unable to open file") end
  local open = true
  return function(chunk, err)
    if chunk == nil then
      if open then
        open = false
        handle:close()
      end
      return 1
    end
    local ok, werr = handle:write(chunk)
    if not ok then return nil, werr end
    return 1
  end
end

local function accept() return 1 end

function sink.null()
  return accept
end

function sink.error(err)
  return function() return nil, err end
end

-- sink.chain(f1 [, f2, ...], snk): the filters' output goes to snk.
function sink.chain(f, snk, ...)
  local extra = select("#", ...)
  if extra > 0 then
    local args = { f, snk, ... }
    snk = args[extra + 2]
    f = filter.chain(unpack(args, 1, extra + 1))
  end
  return function(chunk, err)
    if chunk == "" then return 1 end
    if chunk ~= nil then
      local out = f(chunk)
      while out ~= "" do
        if out == nil then error("filter returned inappropriate nil", 2) end
        local ok, serr = snk(out, err)
        if not ok then return nil, serr end
        out = f("")
      end
      return 1
    end
    local out = f(nil)
    while out ~= nil do
      if out ~= "" then
        local ok, serr = snk(out, err)
        if not ok then return nil, serr end
      end
      out = f(nil)
    end
    return snk(nil, err)
  end
end

-- pumps --------------------------------------------------------------------

-- Moves one chunk: 1 if one moved; nil at the end; nil and an error on failure.
function pump.step(src, snk)
  local chunk, src_err = src()
  local ok, snk_err = snk(chunk, src_err)
  if chunk ~= nil and ok then return 1 end
  return nil, src_err or snk_err
end

-- Moves everything: 1, or nil and the error.
function pump.all(src, snk, step)
  step = step or pump.step
  while true do
    local ok, err = step(src, snk)
    if not ok then
      if err ~= nil then return nil, err end
      return 1
    end
  end
end

return ltn12
`

export const ltn12 = luaSourceModule('ltn12', LTN12_SOURCE)
