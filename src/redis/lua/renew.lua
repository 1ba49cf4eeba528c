--[[
  renew: extend the lease of the current owner.

  KEYS[1]  record key
  ARGV[1]  token      token of the claim
  ARGV[2]  lockTtlMs  new lease length from now, ms
  ARGV[3]  graceMs    how long an in-progress record outlives its lease

  Output (array):
    {"ok"}               the lease of this token was live and now ends lockTtlMs from now
    {"lost"}             absent, completed, released, owned by another token, or the lease already ran
                         out (complete stays lenient there; renew does not revive a lapsed lease)
    {"corrupt", reason}
]]
-- @include record

local key = KEYS[1]
local rec, reason = loadRecord(key)
if rec == nil then return {'corrupt', reason} end
if not rec or rec.s ~= 'p' or rec.t ~= ARGV[1] then return {'lost'} end

local lockTtlMs, graceMs = tonumber(ARGV[2]), tonumber(ARGV[3])
local nowMs = math.floor(nowMicros() / 1000)
if rec.e <= nowMs then return {'lost'} end
redis.call('HSET', key, 'e', fmt(nowMs + lockTtlMs))
redis.call('PEXPIRE', key, fmt(lockTtlMs + graceMs))
return {'ok'}
