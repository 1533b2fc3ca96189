-- Verifies a code: consumes a right one, counts a wrong one, burns at the limit, in one
-- atomic step, so a right code works once and a wrong guess cannot race the right one.
-- KEYS[1] code, KEYS[2] wrong tries; ARGV[1] candidate (stored form), ARGV[2] max tries
-- Reply: {0, 0} missing | {1, 0} valid | {2, left} wrong | {3, 0} burned
local max = tonumber(ARGV[2])
local stored = redis.call('GET', KEYS[1])
if not stored then
  if tonumber(redis.call('GET', KEYS[2]) or '0') >= max then
    return {3, 0}
  end
  return {0, 0}
end
if stored == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  return {1, 0}
end
local tries = redis.call('INCR', KEYS[2])
if tries == 1 then
  redis.call('PEXPIRE', KEYS[2], math.max(redis.call('PTTL', KEYS[1]), 1))
end
if tries >= max then
  -- Burned: the marker outlives the code for as long as the code would have lived.
  redis.call('DEL', KEYS[1])
  return {3, 0}
end
return {2, max - tries}
