package redisstate

import "github.com/redis/go-redis/v9"

// All keys of one breaker share the hash tag {name}, so the scripts touch a
// single slot (Redis Cluster). KEYS[1] is the base key "<prefix>{<name>}";
// the state hash is base..":state", window buckets base..":w:<n>", and the
// channel base..":events". Time is Redis's (TIME), so instances with skewed
// clocks agree on the window and the open deadline.
//
// Every change of the shared state gets a new epoch, max(stored epoch + 1,
// TIME in ms): it grows with each change, and keeps growing when Redis lost
// the state hash (a restart without persistence, a failover to a lagging
// replica, FLUSHDB), so instances that saw the old epochs do not ignore the
// new ones — as long as the server's clock is not behind the old one's. A
// failover to a server whose clock is behind can give new changes epochs
// older than those the instances saw: an instance takes the stored state as
// the shared state when a merge finds it older than what it saw (see
// Shared.resetEpoch), and until then a script comparing the stored epoch
// with the instance's treats any other epoch than the one it saw as a
// change it has not seen.
//
// Every script that changes the state stores it before it publishes the
// change, in one atomic script: an instance that received a message and
// then merges (syncScript runs after the message arrived) always finds that
// change stored, or a newer one — unless Redis lost it since.

// readState is the start of every script: it reads the state hash at
// KEYS[1]..":state" and checks that it is one this package writes — the
// state "open" or "closed", the deadline ("until", Redis's time in ms) and
// the epoch whole numbers of at most 14 digits (exact in a Lua number, and
// printed whole in a message), the deadline at most a year (the longest
// open delay, see breaker.Config.OpenTimeout and Breaker.Trip) and a day
// (a server whose clock is behind) from now, and the format version v
// absent (this package writes none) or 1 — and returns state, deadline,
// epoch and origin. A later format that older instances must not read sets
// v; an instance of this version then runs locally rather than misread it
// or overwrite it during a rolling upgrade. Anything else at the key —
// another program's value, a hand edit, garbage — is not followed (a
// deadline in microseconds would open every instance for a year, an epoch
// of 1e300 silence every message) nor overwritten: the script returns an
// error naming the key and the field, the instance runs on its local
// breaker and logs it (see Shared.health), until the value is deleted. A missing hash, or missing
// fields, are the closed state of epoch 0 (nothing stored yet, or lost).
const readState = `
local function readState(now)
  local st = redis.pcall('HMGET', KEYS[1] .. ':state', 'state', 'until', 'epoch', 'origin', 'v')
  local key = string.gsub(KEYS[1] .. ':state', '%c', '?') -- an error reply is one line
  if st.err then return nil, key .. ': ' .. st.err end
  if st[5] and st[5] ~= '1' then return nil, key .. ': field v: a format version other than 1, the one this package reads' end
  local state = st[1] or 'closed'
  if state ~= 'open' and state ~= 'closed' then return nil, key .. ': field state is neither open nor closed' end
  local function whole(v)
    if v == false then return 0 end
    if #v > 14 or not string.match(v, '^%d+$') then return nil end
    return tonumber(v)
  end
  local untilms = whole(st[2])
  if not untilms or untilms > now + (366 * 86400000) then
    return nil, key .. ': field until is not a time in ms at most a year and a day from now'
  end
  local epoch = whole(st[3])
  if not epoch then return nil, key .. ': field epoch is not a whole number of at most 14 digits' end
  return {state, untilms, epoch, st[4] or ''}
end
local function notOurs(why)
  return redis.error_reply('redisstate: not a shared breaker state this package wrote, left as it is: ' .. why)
end
`

// syncScript merges one instance's counts since its last sync into the
// shared rolling window, trips the shared state when the window's failure
// rate is reached, and returns {state, open remaining ms, epoch, successes,
// failures, origin, tripped}: origin is the instance that made the stored
// state's last change, tripped 1 when this merge tripped it.
//
// The counts are dropped, not merged, when the stored epoch is not ARGV[9],
// the newest epoch the instance had seen when it took them: the shared
// state changed since (a peer's trip, or a recovery), so they were made
// before the instance knew of it — during the outage that change is about.
// A trip cleared the window and a recovery starts afresh: merged after it,
// those failures would re-trip the recovery. (A stored epoch older than
// ARGV[9] is a change too, on a server that lost the one the instance saw.)
// ARGV[9] is -1 before the instance's first merge: it has seen nothing yet
// to compare with.
//
// ARGV: bucket ms, buckets, successes, failures, min calls, failure ratio,
// open ms, origin, epoch seen.
var syncScript = redis.NewScript(readState + `
local base = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local bms, nb = tonumber(ARGV[1]), tonumber(ARGV[2])
local ds, df = tonumber(ARGV[3]), tonumber(ARGV[4])
local cur = math.floor(now / bms)
local st, bad = readState(now)
if not st then return notOurs(bad) end
local state, untilms, epoch, origin = st[1], st[2], st[3], st[4]
local seen = tonumber(ARGV[9])
if seen >= 0 and epoch ~= seen then ds, df = 0, 0 end
if ds > 0 or df > 0 then
  local k = base .. ':w:' .. cur
  redis.call('HINCRBY', k, 's', ds)
  redis.call('HINCRBY', k, 'f', df)
  redis.call('PEXPIRE', k, bms * (nb + 1))
end
local s, f = 0, 0
for i = 0, nb - 1 do
  local v = redis.call('HMGET', base .. ':w:' .. (cur - i), 's', 'f')
  s = s + (tonumber(v[1]) or 0)
  f = f + (tonumber(v[2]) or 0)
end
local tripped = 0
if (state ~= 'open' or untilms <= now) and (ds + df) > 0 and s + f >= tonumber(ARGV[5]) and f >= tonumber(ARGV[6]) * (s + f) then
  epoch = math.max(epoch + 1, now)
  state = 'open'
  untilms = now + tonumber(ARGV[7])
  origin = ARGV[8]
  tripped = 1
  redis.call('HSET', base .. ':state', 'state', 'open', 'until', untilms, 'epoch', epoch, 'origin', origin)
  for i = 0, nb - 1 do redis.call('DEL', base .. ':w:' .. (cur - i)) end
  redis.call('PUBLISH', base .. ':events', 'open|' .. epoch .. '|' .. ARGV[7] .. '|' .. origin)
end
local remaining = 0
if state == 'open' and untilms > now then remaining = untilms - now end
return {state, remaining, epoch, s, f, origin, tripped}
`)

// openScript records that an instance's breaker opened for ARGV[1] ms
// (keeping a later deadline already stored), clears the window as
// syncScript's own trip does (the counts before the trip decided it) and
// publishes. Returns the new epoch. ARGV: open ms, origin, bucket ms,
// buckets.
var openScript = redis.NewScript(readState + `
local base = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local st, bad = readState(now)
if not st then return notOurs(bad) end
local untilms = math.max(st[2], now + tonumber(ARGV[1]))
local epoch = math.max(st[3] + 1, now)
redis.call('HSET', base .. ':state', 'state', 'open', 'until', untilms, 'epoch', epoch, 'origin', ARGV[2])
local cur = math.floor(now / tonumber(ARGV[3]))
for i = 0, tonumber(ARGV[4]) - 1 do redis.call('DEL', base .. ':w:' .. (cur - i)) end
redis.call('PUBLISH', base .. ':events', 'open|' .. epoch .. '|' .. (untilms - now) .. '|' .. ARGV[2])
return epoch
`)

// closeScript records that an instance's probes succeeded and publishes it,
// unless the stored epoch is not ARGV[2], the newest the instance had seen:
// then another instance changed the shared state since (a trip), and a
// stale close must not undo it. (Older than ARGV[2], it is a change on a
// server that lost the one the instance saw; with no state stored there is
// nothing to undo.) Returns the new epoch, or 0 when nothing changed. ARGV:
// origin, epoch seen.
var closeScript = redis.NewScript(readState + `
local base = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local st, bad = readState(now)
if not st then return notOurs(bad) end
local stored = st[3]
if stored ~= tonumber(ARGV[2]) and stored ~= 0 then return 0 end
local epoch = math.max(stored + 1, now)
redis.call('HSET', base .. ':state', 'state', 'closed', 'until', 0, 'epoch', epoch, 'origin', ARGV[1])
redis.call('PUBLISH', base .. ':events', 'closed|' .. epoch .. '|0|' .. ARGV[1])
return epoch
`)
