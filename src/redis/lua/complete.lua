--[[
  complete: store the final result; only the owner can. Idempotent for the same token.

  KEYS[1]  record key (also the pub/sub channel that waiters listen on)
  ARGV[1]  token   token of the claim
  ARGV[2]  result  opaque text, kept byte for byte
  ARGV[3]  ttlMs   how long the completed record is kept

  Output (array):
    {"ok"}               completed now, or already completed by this token (a retried complete)
    {"lost"}             absent, released, or owned by another token: nothing is written
    {"corrupt", reason}

  A completed record is never overwritten: only its TTL removes it.
]]
-- @include record

local key = KEYS[1]
local rec, reason = loadRecord(key)
if rec == nil then return {'corrupt', reason} end
if not rec or rec.t ~= ARGV[1] then return {'lost'} end
if rec.s == 'c' then return {'ok'} end
if rec.s ~= 'p' then return {'lost'} end

redis.call('HSET', key, 's', 'c', 'r', ARGV[2])
redis.call('HDEL', key, 'e')
redis.call('PEXPIRE', key, ARGV[3])
redis.call('PUBLISH', key, 'c')
return {'ok'}
