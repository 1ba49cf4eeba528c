--[[
  claim: atomically take an idempotency key, or report who holds it or what it holds.

  KEYS[1]  record key, "<keyPrefix><prefix>{<id>}"
  ARGV[1]  token        random token of this claim
  ARGV[2]  fingerprint  "" = do not compare
  ARGV[3]  lockTtlMs    lease length in ms
  ARGV[4]  graceMs      how long an in-progress record outlives its lease (crashed owners get cleaned up)

  Output (array):
    {"acquired", fence, takeover}  takeover "1" when an expired lease was taken over, else "0"
    {"in_progress", retryAfterMs}  time left on the live lease, >= 1
    {"completed", result}
    {"mismatch"}                   stored and requested fingerprints are both non-empty and differ
    {"corrupt", reason}            the key holds something this store did not write (left untouched)

  Timeline of one key (Redis time):
    absent/released ---claim A---> p(A, lease L) ---complete A---> c (replayed until TTL)
                                       |  L passes, nobody else came: A may still renew/complete
                                       +--- claim B after L ---> p(B), fence grows, A is "lost"
]]
-- @include record

local key = KEYS[1]
local token, fingerprint = ARGV[1], ARGV[2]
local lockTtlMs, graceMs = tonumber(ARGV[3]), tonumber(ARGV[4])

local rec, reason = loadRecord(key)
if rec == nil then return {'corrupt', reason} end

local nowUs = nowMicros()
local nowMs = math.floor(nowUs / 1000)
local takeover = '0'

if rec then
  local differs = fingerprint ~= '' and rec.f ~= '' and fingerprint ~= rec.f
  if rec.s == 'c' then
    if differs then return {'mismatch'} end
    local result = redis.call('HGET', key, 'r')
    if not result then return {'corrupt', 'is completed without a result'} end
    return {'completed', result}
  elseif rec.s == 'p' then
    if differs then return {'mismatch'} end
    if rec.e > nowMs then return {'in_progress', fmt(rec.e - nowMs)} end
    takeover = '1'
  end
  -- rec.s == 'r' (released) behaves as absent but keeps its fence.
end

-- The fence outgrows both the previous fence and Redis' clock, so it keeps growing after the record
-- expired and vanished (assumes Redis' clock never goes backwards).
local fence = nowUs
if rec and rec.n + 1 > fence then fence = rec.n + 1 end

redis.call('HSET', key, 'v', SCHEMA, 's', 'p', 't', token, 'f', fingerprint,
  'n', fmt(fence), 'e', fmt(nowMs + lockTtlMs))
redis.call('PEXPIRE', key, fmt(lockTtlMs + graceMs))
return {'acquired', fmt(fence), takeover}
