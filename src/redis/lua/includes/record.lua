--[[
  Shared helpers, inlined by scripts/genLua.mjs wherever a script says "-- @include record".

  A record is a hash at one key (one hash slot per record):
    v  schema version ("1")
    s  state: "p" in progress, "c" completed, "r" released
    t  token of the claim that owns (or last owned) the record
    f  request fingerprint ("" = not compared)
    n  fencing token: grows across claims, takeovers and releases
    e  lease end, Redis time in ms (read only while s = "p"; left stale after complete or release)
    r  stored result (only when s = "c")
    k  only while the record has durable steps: keep the record until then (Redis time, ms), in every
       state but completed (see step.lua); complete drops it with the steps
    .<name>  one recorded step per field: "." then the step name, the value its text (see step.lua)

  Numbers are written with string.format('%.0f') because Lua 5.1 turns large numbers into
  "1.7e+15" with tostring(), and Redis does the same with number arguments to redis.call.

  Batches: claim, renew, complete and release take one record per KEYS entry and handle them in order,
  all in one atomic script run; records of one batch never see each other half-done.
]]
local SCHEMA = '1'

-- Redis time in microseconds, read once per script run (every record of a batch sees the same instant,
-- as if they had run back to back). Exact: 2^53 us is ~285 years after 1970.
local clockUs
local function nowMicros()
  if not clockUs then
    local t = redis.call('TIME')
    clockUs = tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
  return clockUs
end

local function fmt(n)
  return string.format('%.0f', n)
end

-- Only plain digits are numbers of ours: tonumber() would also take 'inf', 'nan' or '1e400'.
local function digits(x)
  if type(x) == 'string' and string.match(x, '^%d+$') then return tonumber(x) end
end

-- Returns the record table, false when the key is absent, or nil plus a reason when the key holds
-- something this store did not write (never touched then). A record of ours costs one command (HMGET,
-- the result included, so a replay reads nothing else); an absent key two (HMGET, EXISTS); any other
-- type answers WRONGTYPE, and TYPE then names it.
local function loadRecord(key)
  local h = redis.pcall('HMGET', key, 'v', 's', 't', 'f', 'n', 'e', 'r', 'k')
  if h.err then
    local kind = redis.call('TYPE', key)['ok']
    if kind == 'hash' then error(h.err) end
    return nil, 'holds a ' .. kind .. ', not a hash'
  end
  if h[1] ~= SCHEMA then
    if h[1] then return nil, 'has schema version ' .. h[1] .. ', expected ' .. SCHEMA end
    if redis.call('EXISTS', key) == 0 then return false end
    return nil, 'is a hash without a schema version field'
  end
  local rec = { s = h[2], t = h[3], f = h[4], n = digits(h[5]), r = h[7], k = digits(h[8]) }
  if type(rec.t) ~= 'string' or type(rec.f) ~= 'string' or rec.n == nil then
    return nil, 'misses token or fingerprint, or its fence is not a whole number'
  end
  if rec.s == 'p' then
    -- The lease end is read only while in progress (stale otherwise: see field e above).
    rec.e = digits(h[6])
    if rec.e == nil then return nil, 'is in progress without a whole-number lease end' end
  elseif rec.s ~= 'c' and rec.s ~= 'r' then
    return nil, 'has unknown state ' .. tostring(rec.s)
  end
  return rec
end

-- Sets the record's expiry to ms from now, or later while its steps must be kept (field k).
local function expireAtLeast(key, rec, ms)
  ms = tonumber(ms)
  if rec and rec.k then
    local left = rec.k - math.floor(nowMicros() / 1000)
    if left > ms then ms = left end
  end
  redis.call('PEXPIRE', key, fmt(ms))
end

-- The record's steps as a flat list: name1, text1, name2, text2, ... Read only when field k says there
-- are some (one HGETALL, inside the script: no round trip).
local function loadSteps(key)
  local out = {}
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    if string.byte(all[i], 1) == 46 then
      out[#out + 1] = string.sub(all[i], 2)
      out[#out + 1] = all[i + 1]
    end
  end
  return out
end
