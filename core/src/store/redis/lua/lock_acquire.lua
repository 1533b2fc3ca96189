-- Takes a lock if it is free and bumps its fencing counter. Idempotent for one owner (owners
-- are unique per acquisition): a retried call whose first reply was lost finds the lock its
-- own and gets the same fence, instead of "held".
-- KEYS[1] lock, KEYS[2] fence; ARGV[1] owner, ARGV[2] lease ms
-- Reply: {1, fence} acquired | {0, remaining lease ms} held
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('INCR', KEYS[2])}
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return {1, tonumber(redis.call('GET', KEYS[2]) or '0')}
end
return {0, math.max(redis.call('PTTL', KEYS[1]), 0)}
