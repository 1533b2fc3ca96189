-- Removes a dead letter of one voucher for good.
-- KEYS[1] dead-letter stream; ARGV[1] dead letter id, ARGV[2] the voucher id it must carry
-- Reply: 1 removed | 0 no such dead letter of that voucher
local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #found == 0 then
  return 0
end
local fields = found[1][2]
for i = 1, #fields, 2 do
  if fields[i] == 'voucherId' and fields[i + 1] == ARGV[2] then
    return redis.call('XDEL', KEYS[1], ARGV[1])
  end
end
return 0
