-- One GCRA (generic cell rate algorithm) decision for one subject, on the server's clock.
-- The key holds the subject's theoretical arrival time (TAT, µs on the server's clock)
-- and expires when the budget is full again, so idle subjects leave nothing behind.
-- KEYS[1] the subject's key; ARGV[1] emission interval µs (period / rate),
-- ARGV[2] tolerance µs (interval × burst)
-- Reply: {allowed 1|0, remaining, retry after µs, reset µs, server time µs}
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then
  tat = now
end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if allow_at > now then
  return {0, 0, allow_at - now, tat - now, now}
end
-- Integers below 2^53 are exact in Lua's numbers; '%.0f' writes them without exponent.
local ttl_ms = math.ceil((new_tat - now) / 1000)
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', string.format('%.0f', ttl_ms))
return {1, math.floor((tolerance - (new_tat - now)) / interval), 0, new_tat - now, now}
