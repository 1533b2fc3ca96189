-- Puts a dead letter's order back on the orders stream and removes the dead letter, in one
-- step: a second replay of the same id finds no dead letter and enqueues nothing.
-- KEYS[1] dead-letter stream, KEYS[2] orders stream
-- ARGV[1] dead letter id, ARGV[2] the voucher id it must carry
-- Reply: the new entry's id in the orders stream | false when there is no such dead letter
-- of that voucher
local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #found == 0 then
  return false
end
local fields = found[1][2]
local order = {}
local voucher = nil
for i = 1, #fields, 2 do
  local name = fields[i]
  if name == 'voucherId' then
    voucher = fields[i + 1]
  end
  -- What the dead-letter step added is not part of the order.
  if name ~= 'entryId' and name ~= 'deliveries' and name ~= 'error' then
    order[#order + 1] = name
    order[#order + 1] = fields[i + 1]
  end
end
if voucher ~= ARGV[2] or #order == 0 then
  return false
end
local id = redis.call('XADD', KEYS[2], '*', unpack(order))
redis.call('XDEL', KEYS[1], ARGV[1])
return id
