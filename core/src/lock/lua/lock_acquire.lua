-- Takes a lock if it is free and gives it a new fencing token: the larger of the stored
-- fence plus one and the server's clock in microseconds (TIME), so fences keep increasing
-- when the fence key has expired (the clock carries on past every fence issued before).
-- The fence key expires a while after the last acquisition: unused names leave nothing.
-- Idempotent for one owner (owners are unique per acquisition): a retried call whose first
-- reply was lost finds the lock its own and gets the same fence, instead of "held".
-- KEYS[1] lock, KEYS[2] fence; ARGV[1] owner, ARGV[2] lease ms, ARGV[3] fence TTL ms
-- Reply: {1, fence} acquired | {0, remaining lease ms} held
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
  local fence = (tonumber(redis.call('GET', KEYS[2])) or 0) + 1
  if now > fence then
    fence = now
  end
  -- Integers below 2^53 are exact in Lua's numbers; '%.0f' writes them without exponent.
  redis.call('SET', KEYS[2], string.format('%.0f', fence), 'PX', ARGV[3])
  return {1, fence}
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return {1, tonumber(redis.call('GET', KEYS[2])) or 0}
end
return {0, math.max(redis.call('PTTL', KEYS[1]), 0)}
