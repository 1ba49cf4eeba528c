--[[
  claim: atomically take idempotency keys, or report who holds each or what it holds. A batch of n
  records (n >= 1), handled in order in one atomic run: two claims of one key in a batch behave as two
  claims back to back (the first acquires, the second sees in_progress or mismatch).

  KEYS[1..n]   record keys, "<keyPrefix><prefix>{<id>}" (all in one hash slot on a cluster)
  ARGV[1]      graceMs    how long an in-progress record outlives its lease (crashed owners get cleaned up)
  ARGV[2]      notAfterMs Redis time (ms) after which the run takes no key: by then the sender has given up
               on it (operationTimeoutMs), so a claim stalled in the socket or resent after a reconnect
               must not take a key nobody will run ("0": a probe that only reads Redis' clock)
  then per record i, at ARGV[3i], ARGV[3i+1], ARGV[3i+2]:
    token        random token of this claim
    fingerprint  "" = do not compare
    lockTtlMs    lease length in ms

  Output: an array of n + 1 strings, string i for KEYS[i], its first character the outcome (one flat
  array: cheaper to encode and decode than n nested ones):
    "A" .. takeover .. fence  acquired; takeover "1" when an expired lease was taken over, else "0". When
                              the record has durable steps, element i is an array instead: that string, then
                              name1, text1, name2, text2, ... (every recorded step)
    "I" .. retryAfterMs       in progress: time left on the live lease, >= 1
    "C" .. ttl .. ":" .. result
                              completed; ttl = the record's time to live in ms (PTTL), "" when it has
                              none (a local cache of completed records keeps it no longer)
    "M"                       mismatch: stored and requested fingerprints are both non-empty and differ
                              (also on a released record with steps: another input never resumes them)
    "X" .. reason             corrupt: the key holds something this store did not write (left untouched)
    "T"                       too late: Redis time was past notAfterMs when the record would have been
                              acquired or reported in progress; nothing was written (a completed,
                              mismatched or corrupt record is answered as such: reading is harmless)
  and string n + 1: Redis time of the run in microseconds (the store's estimate of Redis' clock), or ""
  when the run never needed the clock (every record completed, mismatched or corrupt: TIME costs a replay
  ~15% of its script time); a probe (notAfterMs "0") always reads it.

  Timeline of one key (Redis time):
    absent/released ---claim A---> p(A, lease L) ---complete A---> c (replayed until TTL)
                                       |  L passes, nobody else came: A may still renew/complete
                                       +--- claim B after L ---> p(B), fence grows, A is "lost"

  Commands per record: absent HMGET + EXISTS + HSET + PEXPIRE; completed HMGET + PTTL; plus one TIME per run
  that acquires a key or meets one in progress (none for a run of replays).
]]
-- @include record

local graceMs = tonumber(ARGV[1])
local notAfterMs = tonumber(ARGV[2])

-- Past the sender's deadline: take nothing (reads TIME on first use, once per run).
local function late()
  return nowMicros() > notAfterMs * 1000
end

local function claim(key, token, fingerprint, lockTtlMs)
  local rec, reason = loadRecord(key)
  if rec == nil then return 'X' .. reason end

  local takeover = '0'
  if rec then
    local differs = fingerprint ~= '' and rec.f ~= '' and fingerprint ~= rec.f
    if rec.s == 'c' then
      if differs then return 'M' end
      if not rec.r then return 'Xis completed without a result' end
      local ttl = redis.call('PTTL', key)
      return 'C' .. (ttl >= 0 and fmt(ttl) or '') .. ':' .. rec.r
    elseif rec.s == 'p' then
      if differs then return 'M' end
      if late() then return 'T' end
      local nowMs = math.floor(nowMicros() / 1000)
      if rec.e > nowMs then return 'I' .. fmt(rec.e - nowMs) end
      takeover = '1'
    end
    -- rec.s == 'r' (released) behaves as absent but keeps its fence, and its steps for the same input.
    if rec.k and differs then return 'M' end
  end

  if late() then return 'T' end
  -- The fence outgrows both the previous fence and Redis' clock, so it keeps growing after the record
  -- expired and vanished (assumes Redis' clock never goes backwards).
  local nowUs = nowMicros()
  local fence = nowUs
  if rec and rec.n + 1 > fence then fence = rec.n + 1 end

  redis.call('HSET', key, 'v', SCHEMA, 's', 'p', 't', token, 'f', fingerprint,
    'n', fmt(fence), 'e', fmt(math.floor(nowUs / 1000) + lockTtlMs))
  expireAtLeast(key, rec, lockTtlMs + graceMs)
  if rec and rec.k then
    local reply = loadSteps(key)
    table.insert(reply, 1, 'A' .. takeover .. fmt(fence))
    return reply
  end
  return 'A' .. takeover .. fmt(fence)
end

local out = {}
if notAfterMs == 0 then
  for i = 1, #KEYS do out[i] = 'T' end
  out[#KEYS + 1] = fmt(nowMicros())
  return out
end
for i = 1, #KEYS do
  local a = 3 * i
  out[i] = claim(KEYS[i], ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2]))
end
out[#KEYS + 1] = clockUs and fmt(clockUs) or ''
return out
