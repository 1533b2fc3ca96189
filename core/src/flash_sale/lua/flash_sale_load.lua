-- Loads (or resets) a flash-sale voucher: stock and window; forgets the buyers.
-- KEYS[1] voucher hash, KEYS[2] buyers set; ARGV[1] stock, ARGV[2] begin ms, ARGV[3] end ms
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'stock', ARGV[1], 'begin', ARGV[2], 'end', ARGV[3])
return 0
