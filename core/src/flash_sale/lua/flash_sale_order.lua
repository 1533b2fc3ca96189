-- One flash-sale order, atomically: window, one per user, stock, then record and enqueue.
-- KEYS[1] voucher hash, KEYS[2] buyers set, KEYS[3] orders stream, KEYS[4] the shard's last order id
-- ARGV[1] user id, ARGV[2] voucher id, ARGV[3] shard count, ARGV[4] shard, ARGV[5] id epoch (unix s),
-- ARGV[6] sequence span
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
-- Order id (keygate::flash_sale::next_order_id): seconds since the epoch × span, plus
-- n × shards + shard below the span, n counting up within the second. Shards never share a
-- residue, so ids never collide; a full second, or a clock that went back, continues in the
-- second after the shard's last id, so a shard's ids only grow. KEYS[4] holds the last id.
-- Ids stay below 2^53 (until 2052), where Lua's doubles are exact integers.
local span = tonumber(ARGV[6])
local shards = tonumber(ARGV[3])
local shard = tonumber(ARGV[4])
local secs = math.max(tonumber(now[1]) - tonumber(ARGV[5]), 0)
local last = tonumber(redis.call('GET', KEYS[4]) or '0') or 0
local last_low = math.fmod(last, span)
local last_secs = (last - last_low) / span
local n = 0
if secs <= last_secs then
  secs = last_secs
  n = math.floor(last_low / shards) + 1
end
if n * shards + shard >= span then
  secs = secs + 1
  n = 0
end
local id = string.format('%d', secs * span + n * shards + shard)
redis.call('SET', KEYS[4], id)
redis.call('XADD', KEYS[3], '*', 'orderId', id, 'userId', ARGV[1], 'voucherId', ARGV[2])
return {1, id}
