--[[
  release: give keys up without a result so a retry runs again; only the owner can. Idempotent for
  the same token. A batch of n records (n >= 1), handled in order in one atomic run.

  KEYS[1..n]   record keys (each also the pub/sub channel that waiters on that record listen on)
  ARGV[1]      releasedTtlMs  how long a released record (and its fence) is kept
  ARGV[1 + i]  token of the claim on KEYS[i]

  Output: an array of n replies, reply i for KEYS[i]:
    {"ok"}               released now, or already released by this token
    {"lost"}             absent, completed, or owned by another token: nothing is written
    {"corrupt", reason}
]]
-- @include record

local releasedTtlMs = ARGV[1]

local function release(key, token)
  local rec, reason = loadRecord(key)
  if rec == nil then return {'corrupt', reason} end
  if not rec or rec.t ~= token then return {'lost'} end
  if rec.s == 'r' then return {'ok'} end
  if rec.s ~= 'p' then return {'lost'} end

  redis.call('HSET', key, 's', 'r')
  redis.call('HDEL', key, 'e')
  redis.call('PEXPIRE', key, releasedTtlMs)
  redis.call('PUBLISH', key, 'r')
  return {'ok'}
end

local out = {}
for i = 1, #KEYS do
  out[i] = release(KEYS[i], ARGV[1 + i])
end
return out
