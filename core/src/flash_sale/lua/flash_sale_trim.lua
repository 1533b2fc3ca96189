-- Trims the orders stream of entries every consumer group is done with: those before the
-- smallest, over all groups, of the group's oldest pending entry and its last-delivered id.
-- Nothing pending (with any consumer) or not yet delivered is removed; a stream without
-- groups is left alone.
-- KEYS[1] orders stream. Reply: the number of entries removed.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local function less(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  ams, aseq, bms, bseq = tonumber(ams), tonumber(aseq), tonumber(bms), tonumber(bseq)
  return ams < bms or (ams == bms and aseq < bseq)
end
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
local min_id = nil
for _, group in ipairs(groups) do
  local name, bound
  for i = 1, #group, 2 do
    if group[i] == 'name' then
      name = group[i + 1]
    elseif group[i] == 'last-delivered-id' then
      bound = group[i + 1]
    end
  end
  local pending = redis.call('XPENDING', KEYS[1], name)
  if pending[1] > 0 and less(pending[2], bound) then
    bound = pending[2]
  end
  if min_id == nil or less(bound, min_id) then
    min_id = bound
  end
end
if min_id == nil then
  return 0
end
return redis.call('XTRIM', KEYS[1], 'MINID', min_id)
