--[[
  renew: extend the lease of the current owner. A batch of n records (n >= 1), handled in order in one
  atomic run.

  KEYS[1..n]  record keys
  ARGV[1]     graceMs  how long an in-progress record outlives its lease
  per record i, at ARGV[2i], ARGV[2i+1]:
    token      token of the claim
    lockTtlMs  new lease length from now, ms

  Output: an array of n strings, string i for KEYS[i]:
    "O"            ok: the lease of this token was live and now ends lockTtlMs from now
    "L"            lost: absent, completed, released, owned by another token, or the lease already ran
                   out (complete stays lenient there; renew does not revive a lapsed lease)
    "X" .. reason  corrupt
]]
-- @include record

local graceMs = tonumber(ARGV[1])

local function renew(key, token, lockTtlMs)
  local rec, reason = loadRecord(key)
  if rec == nil then return 'X' .. reason end
  if not rec or rec.s ~= 'p' or rec.t ~= token then return 'L' end

  local nowMs = math.floor(nowMicros() / 1000)
  if rec.e <= nowMs then return 'L' end
  redis.call('HSET', key, 'e', fmt(nowMs + lockTtlMs))
  expireAtLeast(key, rec, lockTtlMs + graceMs)
  return 'O'
end

local out = {}
for i = 1, #KEYS do
  local a = 2 * i
  out[i] = renew(KEYS[i], ARGV[a], tonumber(ARGV[a + 1]))
end
return out
