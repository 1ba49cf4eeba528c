--[[
  release: give keys up without a result so a retry runs again; only the owner can. Idempotent for
  the same token. A batch of n records (n >= 1), handled in order in one atomic run.

  KEYS[1..n]   record keys (each also the pub/sub channel that waiters on that record listen on)
  ARGV[1]      releasedTtlMs  how long a released record (and its fence) is kept
  ARGV[1 + i]  token of the claim on KEYS[i]

  Output: an array of n strings, string i for KEYS[i]:
    "O"            ok: released now, or already released by this token
    "L"            lost: absent, completed, or owned by another token; nothing is written
    "X" .. reason  corrupt

  A released record keeps its fence (and its stale lease end, which nothing reads once s is not "p"), and
  its steps, kept until their field k says if that is later than releasedTtlMs. Each
  record released now is announced on its own channel (PUBLISH key "r").
  Commands per record: HMGET, HSET, PEXPIRE, PUBLISH.
]]
-- @include record

local releasedTtlMs = ARGV[1]

local function release(key, token)
  local rec, reason = loadRecord(key)
  if rec == nil then return 'X' .. reason end
  if not rec or rec.t ~= token then return 'L' end
  if rec.s == 'r' then return 'O' end
  if rec.s ~= 'p' then return 'L' end

  redis.call('HSET', key, 's', 'r')
  expireAtLeast(key, rec, releasedTtlMs)
  redis.call('PUBLISH', key, 'r')
  return 'O'
end

local out = {}
for i = 1, #KEYS do
  out[i] = release(KEYS[i], ARGV[1 + i])
end
return out
