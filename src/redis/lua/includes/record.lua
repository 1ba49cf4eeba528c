--[[
  Shared helpers, inlined by scripts/genLua.mjs wherever a script says "-- @include record".

  A record is a hash at one key (one hash slot per record):
    v  schema version ("1")
    s  state: "p" in progress, "c" completed, "r" released
    t  token of the claim that owns (or last owned) the record
    f  request fingerprint ("" = not compared)
    n  fencing token: grows across claims, takeovers and releases
    e  lease end, Redis time in ms (meaningful while s = "p")
    r  stored result (only when s = "c")

  Numbers are written with string.format('%.0f') because Lua 5.1 turns large numbers into
  "1.7e+15" with tostring(), and Redis does the same with number arguments to redis.call.
]]
local SCHEMA = '1'

-- Redis time in microseconds. Exact: 2^53 us is ~285 years after 1970.
local function nowMicros()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function fmt(n)
  return string.format('%.0f', n)
end

-- Returns the record table, false when the key is absent, or nil plus a reason when the key holds
-- something this store did not write (never touched then).
local function loadRecord(key)
  local kind = redis.call('TYPE', key)['ok']
  if kind == 'none' then return false end
  if kind ~= 'hash' then return nil, 'holds a ' .. kind .. ', not a hash' end
  local h = redis.call('HMGET', key, 'v', 's', 't', 'f', 'n', 'e')
  if h[1] ~= SCHEMA then
    if h[1] then return nil, 'has schema version ' .. h[1] .. ', expected ' .. SCHEMA end
    return nil, 'is a hash without a schema version field'
  end
  local rec = { s = h[2], t = h[3], f = h[4], n = tonumber(h[5]), e = tonumber(h[6]) }
  if type(rec.t) ~= 'string' or type(rec.f) ~= 'string' or rec.n == nil then
    return nil, 'misses token, fingerprint or fence'
  end
  if rec.s == 'p' then
    if rec.e == nil then return nil, 'is in progress without a lease end' end
  elseif rec.s ~= 'c' and rec.s ~= 'r' then
    return nil, 'has unknown state ' .. tostring(rec.s)
  end
  return rec
end
