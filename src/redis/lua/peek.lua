--[[
  peek: how a waiter sees a record (read only). One record per call (waits are shared per key, so
  peeks are rare and not batched).

  KEYS[1]  record key

  Output (array):
    {"in_progress", leaseLeftMs}  a live lease, >= 1 ms left
    {"settled"}                   absent, completed, released, or the lease expired
    {"corrupt", reason}
]]
-- @include record

local rec, reason = loadRecord(KEYS[1])
if rec == nil then return {'corrupt', reason} end
if rec and rec.s == 'p' then
  local nowMs = math.floor(nowMicros() / 1000)
  if rec.e > nowMs then return {'in_progress', fmt(rec.e - nowMs)} end
end
return {'settled'}
