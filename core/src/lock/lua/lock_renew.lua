-- Extends the lease only for the owner.
-- KEYS[1] lock; ARGV[1] owner, ARGV[2] lease ms. Reply: 1 renewed | 0 not the owner
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
