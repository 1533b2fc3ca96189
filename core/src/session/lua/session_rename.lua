-- Moves a session to a new key (token rotation), with its companion key, atomically: a
-- concurrent load finds it under exactly one of the two names. TTLs move with the keys.
-- With an end mark, leaves it for the old key (why it ended, for watchers elsewhere).
-- ARGV[1] the end mark's value, or '' for none; ARGV[2] its TTL ms.
-- KEYS[1] old session key, KEYS[2] new session key, then with a mark KEYS[3] the old
-- key's end mark; then the old and the new companion (optional). All in one hash slot.
-- With a companion, a session whose companion is gone is over, and is not moved.
-- Reply: 0 the old session is gone, 2 the new key exists (nothing moved), or {1, the new
-- companion's PTTL} when moved: -2 without a companion or when it holds no deadline ('0').
local marked = ARGV[1] ~= nil and ARGV[1] ~= ''
local first = 3
if marked then first = 4 end
local old_companion, new_companion = KEYS[first], KEYS[first + 1]
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if old_companion and redis.call('EXISTS', old_companion) == 0 then
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 2
end
redis.call('RENAME', KEYS[1], KEYS[2])
local left = -2
if old_companion then
  redis.call('RENAME', old_companion, new_companion)
  if redis.call('GET', new_companion) ~= '0' then
    left = redis.call('PTTL', new_companion)
  end
end
if marked then
  redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
end
return {1, left}
