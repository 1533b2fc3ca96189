-- Moves a rotated session's entry in its user's index: the new member takes the old one's
-- place (and score) only if the old one is still there. An entry removed meanwhile means
-- a "log out everywhere", an "end that session" or a listing ran while the session was
-- moving; the caller then ends the moved session rather than leave it unindexed.
-- KEYS[1] index; ARGV[1] old member, ARGV[2] new member, ARGV[3] score, ARGV[4] index TTL ms.
-- Reply: 1 moved, 0 the old member was gone (nothing written).
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
