-- A change of a user's session index and the events it records, in one step: an event is
-- written if and only if its index change happened.
-- KEYS[1] the index (or, for 'append', the stream of all users), KEYS[2] the user's event
-- stream (same hash slot as the index), KEYS[3] the stream of all users (optional: only
-- when it shares the slot, as on one server).
-- ARGV[1] op: 'add' | 'replace' | 'remove' | 'append'; ARGV[2] the user stream's length
-- (trimmed exactly), ARGV[3] the global stream's length (trimmed approximately), ARGV[4]
-- the events' maximum age in ms, ARGV[5] the index TTL in ms; then per op:
--   add:     score, member, event
--   replace: score, old member, new member, event (only if the old member is there)
--   remove:  n, then n times: member, event (each only if the member is there)
--   append:  n, then n events (to KEYS[1])
-- An event is a field count c, then c strings (name, value, ...).
-- Reply: per event, 1 recorded or 0 not (its index change did not happen).
local op = ARGV[1]
local user_len = tonumber(ARGV[2])
local global_len = tonumber(ARGV[3])
local max_age = tonumber(ARGV[4])
local index_ttl = tonumber(ARGV[5])
local at = 6

local function arg()
  local value = ARGV[at]
  at = at + 1
  return value
end

local function event()
  local n = tonumber(arg())
  local fields = {}
  for j = 1, n do
    fields[j] = arg()
  end
  return fields
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- XADD trimmed by length, then by age (MINID); a user's stream also expires max_age after
-- its last event.
local function append(stream, len, exact, fields, expires)
  local oldest = math.max(now_ms() - max_age, 0)
  if exact then
    redis.call('XADD', stream, 'MAXLEN', len, '*', unpack(fields))
    redis.call('XTRIM', stream, 'MINID', oldest)
  else
    redis.call('XADD', stream, 'MAXLEN', '~', len, '*', unpack(fields))
    redis.call('XTRIM', stream, 'MINID', '~', oldest)
  end
  if expires then
    redis.call('PEXPIRE', stream, max_age)
  end
end

local function record(fields)
  append(KEYS[2], user_len, true, fields, true)
  if KEYS[3] then
    append(KEYS[3], global_len, false, fields, false)
  end
end

if op == 'add' then
  local score, member = arg(), arg()
  local fields = event()
  redis.call('ZADD', KEYS[1], score, member)
  redis.call('PEXPIRE', KEYS[1], index_ttl)
  record(fields)
  return {1}
elseif op == 'replace' then
  local score, old, new = arg(), arg(), arg()
  local fields = event()
  if redis.call('ZREM', KEYS[1], old) == 0 then
    return {0}
  end
  redis.call('ZADD', KEYS[1], score, new)
  redis.call('PEXPIRE', KEYS[1], index_ttl)
  record(fields)
  return {1}
elseif op == 'remove' then
  local n = tonumber(arg())
  local done = {}
  for k = 1, n do
    local member = arg()
    local fields = event()
    if redis.call('ZREM', KEYS[1], member) == 1 then
      record(fields)
      done[k] = 1
    else
      done[k] = 0
    end
  end
  return done
elseif op == 'append' then
  local n = tonumber(arg())
  local done = {}
  for k = 1, n do
    append(KEYS[1], global_len, false, event(), false)
    done[k] = 1
  end
  return done
end
return redis.error_reply('unknown op ' .. tostring(op))
