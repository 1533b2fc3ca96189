-- Moves a stream entry to the dead-letter stream with its last handler error; the
-- dead-letter stream keeps the newest ARGV[4] entries.
-- KEYS[1] dead-letter stream, KEYS[2] orders stream, KEYS[3] errors hash
-- ARGV[1] group, ARGV[2] entry id, ARGV[3] deliveries, ARGV[4] most dead letters kept,
-- ARGV[5..] the entry's field/value pairs
local error = redis.call('HGET', KEYS[3], ARGV[2]) or ''
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[4], '*', 'entryId', ARGV[2], 'deliveries', ARGV[3],
  'error', error, unpack(ARGV, 5))
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
return 0
