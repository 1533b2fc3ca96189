-- Takes a lock if it is free and bumps its fencing counter.
-- KEYS[1] lock, KEYS[2] fence; ARGV[1] owner, ARGV[2] lease ms
-- Reply: {1, fence} acquired | {0, remaining lease ms} held
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('INCR', KEYS[2])}
end
return {0, math.max(redis.call('PTTL', KEYS[1]), 0)}
