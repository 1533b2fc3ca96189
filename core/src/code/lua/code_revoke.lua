-- Withdraws a code that could not be sent, if it is still the current one.
-- KEYS[1] code, KEYS[2] cooldown; ARGV[1] stored code
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
end
return 0
