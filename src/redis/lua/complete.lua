--[[
  complete: store the final result; only the owner can. Idempotent for the same token. A batch of n
  records (n >= 1), handled in order in one atomic run.

  KEYS[1..n]  record keys (each also the pub/sub channel that waiters on that record listen on)
  per record i, at ARGV[3i-2], ARGV[3i-1], ARGV[3i]:
    token   token of the claim
    result  opaque text, kept byte for byte
    ttlMs   how long the completed record is kept

  Output: an array of n strings, string i for KEYS[i]:
    "O"            ok: completed now, or already completed by this token (a retried complete)
    "L"            lost: absent, released, or owned by another token; nothing is written
    "X" .. reason  corrupt

  A completed record is never overwritten: only its TTL removes it. Its durable steps are deleted. Each record completed now is
  announced on its own channel (PUBLISH key "c").
  Commands per record: HMGET, HSET, PEXPIRE, PUBLISH (the lease end stays; nothing reads it once s is not "p").
]]
-- @include record

local function complete(key, token, result, ttlMs)
  local rec, reason = loadRecord(key)
  if rec == nil then return 'X' .. reason end
  if not rec or rec.t ~= token then return 'L' end
  if rec.s == 'c' then return 'O' end
  if rec.s ~= 'p' then return 'L' end

  if rec.k then
    -- The final result is all a retry needs: the steps go, and their keep-until with them.
    local steps = loadSteps(key)
    for i = 1, #steps, 2 do redis.call('HDEL', key, '.' .. steps[i]) end
    redis.call('HDEL', key, 'k')
  end
  redis.call('HSET', key, 's', 'c', 'r', result)
  redis.call('PEXPIRE', key, ttlMs)
  redis.call('PUBLISH', key, 'c')
  return 'O'
end

local out = {}
for i = 1, #KEYS do
  local a = 3 * i - 2
  out[i] = complete(KEYS[i], ARGV[a], ARGV[a + 1], ARGV[a + 2])
end
return out
