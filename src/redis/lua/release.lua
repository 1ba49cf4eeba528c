--[[
  release: give the key up without a result so a retry runs again; only the owner can. Idempotent for
  the same token.

  KEYS[1]  record key (also the pub/sub channel that waiters listen on)
  ARGV[1]  token          token of the claim
  ARGV[2]  releasedTtlMs  how long the released record (and its fence) is kept

  Output (array):
    {"ok"}               released now, or already released by this token
    {"lost"}             absent, completed, or owned by another token: nothing is written
    {"corrupt", reason}
]]
-- @include record

local key = KEYS[1]
local rec, reason = loadRecord(key)
if rec == nil then return {'corrupt', reason} end
if not rec or rec.t ~= ARGV[1] then return {'lost'} end
if rec.s == 'r' then return {'ok'} end
if rec.s ~= 'p' then return {'lost'} end

redis.call('HSET', key, 's', 'r')
redis.call('HDEL', key, 'e')
redis.call('PEXPIRE', key, ARGV[2])
redis.call('PUBLISH', key, 'r')
return {'ok'}
