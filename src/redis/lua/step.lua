--[[
  step: record durable steps of the current owner; a step name is written once and never overwritten. A
  batch of n records (n >= 1), handled in order in one atomic run (two steps of one record in a batch are
  written one after the other).

  KEYS[1..n]  record keys
  per record i, at ARGV[4i-3], ARGV[4i-2], ARGV[4i-1], ARGV[4i]:
    token   token of the claim
    name    step name (the field is "." .. name)
    text    the step's text, kept byte for byte
    keepMs  keep the record (with its steps) at least this long from now, in every state but completed

  Output: an array of n strings, string i for KEYS[i]:
    "O"            ok: recorded now
    "E" .. text    exists: the name was recorded before (by this or an earlier owner); nothing is written
    "L"            lost: absent, completed, released, or owned by another token; nothing is written
    "X" .. reason  corrupt

  Like complete, an owner whose lease ran out may still record while nobody took the key over: the token
  decides, not the clock. Field k keeps the latest keep-until; claim, renew and release never set an expiry
  before it (see expireAtLeast), complete deletes it with the steps.

  Timeline of one key with steps (Redis time):
    p(A) --step A "charge"--> p(A, .charge) --A crashes, lease passes--> claim B: acquired + [charge]
                                  |                                   A's late step: "L" (token is B's)
                                  +--release A--> r(.charge) kept >= keepMs --claim B--> acquired + [charge]
  Commands per record: HMGET, HGET, HSET, PTTL, and PEXPIRE when the expiry grows.
]]
-- @include record

local function step(key, token, name, text, keepMs)
  local rec, reason = loadRecord(key)
  if rec == nil then return 'X' .. reason end
  if not rec or rec.t ~= token or rec.s ~= 'p' then return 'L' end

  local field = '.' .. name
  local recorded = redis.call('HGET', key, field)
  if recorded then return 'E' .. recorded end

  local nowMs = math.floor(nowMicros() / 1000)
  local keep = nowMs + keepMs
  if rec.k and rec.k > keep then keep = rec.k end
  redis.call('HSET', key, field, text, 'k', fmt(keep))
  if redis.call('PTTL', key) < keep - nowMs then redis.call('PEXPIRE', key, fmt(keep - nowMs)) end
  return 'O'
end

local out = {}
for i = 1, #KEYS do
  local a = 4 * i - 3
  out[i] = step(KEYS[i], ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3]))
end
return out
