-- Conditional update that never resurrects a destroyed session.
-- KEYS[1] session key; ARGV[1] codec.
-- json: ARGV[2] the text as loaded, ARGV[3] the new text (written only if unchanged).
-- hash: ARGV[2] n, then n field/value pairs to set, then the fields to delete.
-- Reply: 0 gone, 1 updated, 2 conflict.
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'none' then
  return 0
end
if ARGV[1] == 'json' then
  if kind ~= 'string' or redis.call('GET', KEYS[1]) ~= ARGV[2] then
    return 2
  end
  redis.call('SET', KEYS[1], ARGV[3], 'KEEPTTL')
  return 1
end
if kind ~= 'hash' then
  return 2
end
local n = tonumber(ARGV[2])
if n > 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 3, 2 + 2 * n))
end
if #ARGV > 2 + 2 * n then
  redis.call('HDEL', KEYS[1], unpack(ARGV, 3 + 2 * n))
end
return 1
