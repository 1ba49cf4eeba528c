--[[
  peek: how a waiter sees a record (read only). One record per call (waits are shared per key, so
  peeks are rare and not batched).

  KEYS[1]  record key

  Output: one string, its first character the outcome (as claim's):
    "I" .. leaseLeftMs  a live lease, >= 1 ms left
    "S"                 settled: absent, completed, released, or the lease expired
    "X" .. reason       corrupt
]]
-- @include record

local rec, reason = loadRecord(KEYS[1])
if rec == nil then return 'X' .. reason end
if rec and rec.s == 'p' then
  local nowMs = math.floor(nowMicros() / 1000)
  if rec.e > nowMs then return 'I' .. fmt(rec.e - nowMs) end
end
return 'S'
