-- Moves a stream entry to the dead-letter stream with its last handler error.
-- KEYS[1] dead-letter stream, KEYS[2] orders stream, KEYS[3] errors hash
-- ARGV[1] group, ARGV[2] entry id, ARGV[3] deliveries, ARGV[4..] the entry's field/value pairs
local error = redis.call('HGET', KEYS[3], ARGV[2]) or ''
redis.call('XADD', KEYS[1], '*', 'entryId', ARGV[2], 'deliveries', ARGV[3], 'error', error, unpack(ARGV, 4))
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
return 0
