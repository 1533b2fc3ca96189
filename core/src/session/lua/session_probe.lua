-- Reads what a watcher needs to know of one session, writing nothing: the session key's
-- PTTL, its end mark, and with a companion key the companion's PTTL.
-- KEYS[1] session key, KEYS[2] end mark key, KEYS[3] companion key (optional); all in one
-- hash slot.
-- Reply: {session PTTL, mark or false, companion PTTL (-3 without a companion)}
local companion = -3
if KEYS[3] then
  companion = redis.call('PTTL', KEYS[3])
end
return {redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[2]), companion}
