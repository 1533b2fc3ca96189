-- One flash-sale order, atomically: window, one per user, stock, then record and enqueue.
-- KEYS[1] voucher hash, KEYS[2] buyers set, KEYS[3] orders stream, KEYS[4] id sequence
-- ARGV[1] user id, ARGV[2] voucher id, ARGV[3] shard count, ARGV[4] shard, ARGV[5] id epoch (unix s)
-- Reply: {1, order id} | {2} sold out | {3} already bought | {4} unknown voucher
--        | {5} not started | {6} ended
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {4}
end
local sale = redis.call('HMGET', KEYS[1], 'stock', 'begin', 'end')
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local begin_ms = tonumber(sale[2] or '0') or 0
local end_ms = tonumber(sale[3] or '0') or 0
if begin_ms > 0 and now_ms < begin_ms then
  return {5}
end
if end_ms > 0 and now_ms >= end_ms then
  return {6}
end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  return {3}
end
if (tonumber(sale[1] or '0') or 0) <= 0 then
  return {2}
end
redis.call('HINCRBY', KEYS[1], 'stock', -1)
redis.call('SADD', KEYS[2], ARGV[1])
-- Order id: seconds since the epoch, then 7 digits of sequence (interleaved by shard so
-- shards never collide). Below 2^53 until 2052, so JavaScript clients read it exactly;
-- built as text all the same, so Lua's doubles never round it.
local seq = redis.call('INCR', KEYS[4])
local low = (seq * tonumber(ARGV[3]) + tonumber(ARGV[4])) % 10000000
local id = string.format('%d%07d', tonumber(now[1]) - tonumber(ARGV[5]), low)
redis.call('XADD', KEYS[3], '*', 'orderId', id, 'userId', ARGV[1], 'voucherId', ARGV[2])
return {1, id}
