-- Ends one session and leaves its end mark: why keygate ended it, for watchers in other
-- processes, who read it once when Redis announces the session key's change.
-- KEYS[1] session key, KEYS[2] end mark key, KEYS[3] companion key (optional); all in one
-- hash slot. ARGV[1] the reason's wire name, ARGV[2] the mark's TTL ms.
-- Reply: 1 when the session existed (and the mark is written), else 0 (nothing written).
if KEYS[3] then
  redis.call('DEL', KEYS[3])
end
if redis.call('DEL', KEYS[1]) == 0 then
  return 0
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
