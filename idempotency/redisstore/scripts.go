package redisstore

import "github.com/redis/go-redis/v9"

// A record is one Redis hash. Its fields:
//
//	v  format version ("1")
//	s  state: 1 in progress, 2 completed, 3 released
//	t  fencing token: max(previous token + 1, server clock in microseconds)
//	d  lease deadline, server milliseconds since the epoch (in progress only)
//	f  fingerprint
//	k  retention in milliseconds (applied again on completion)
//	r  encoded result (completed only; see encodeResult)
//	n  nonce of the Claim, Complete or Release that last changed the record
//
// A nonce is random and fresh for every call (see newNonce). go-redis
// re-sends a command whose reply it lost (an EOF, a reset connection, a read
// timeout: up to MaxRetries times) although the server may already have
// run it; the re-run finds its own nonce and answers as the first run did
// instead of reporting the first run's change as someone else's. A record
// written before this field existed lacks it: false never equals a nonce.
//
// Every script reads the clock with TIME on the server, so no client clock
// takes part in a lease decision. Scripts touch only KEYS[1].
//
// Tokens are computed in Lua numbers (doubles): the microsecond clock
// (about 1.8e15 today) and one more than a stored token are exact below 2^53
// (about 9e15, the clock reaches it in the 2250s). A token is stored with
// %d, so the field holds the same decimal digits that Complete, Release and
// Renew compare with their token argument.

// nowMS is the common prelude: the server time in milliseconds.
const nowMS = `
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
`

// claimScript answers {status, token, leaseRemainingMS, result}; status uses
// the idempotency.ClaimStatus numbering. ARGV: fingerprint, lease ms,
// retention ms, key ttl ms, nonce.
//
// A winning claim takes the larger of the record's token + 1 and the server
// clock in microseconds: tokens grow while the hash lives, and do not
// restart at 1 when it is gone (expired, evicted, lost in a failover), so a
// later owner's token is larger than a stale owner's (unless the server
// clock stepped back: see the package documentation, Fencing tokens).
//
// A live claim that carries this call's nonce is this call's own, won by a
// first run whose reply was lost: it answers Claimed again, with the same
// token and the lease that remains.
var claimScript = redis.NewScript(nowMS + `
local h = redis.call('HMGET', KEYS[1], 's', 't', 'd', 'f', 'r', 'n')
local s = h[1]
if s == '2' then
  if h[4] ~= ARGV[1] then return {4, h[2], 0} end
  return {3, h[2], 0, h[5]}
end
if s == '1' then
  local left = tonumber(h[3]) - now
  if left > 0 then
    if h[4] ~= ARGV[1] then return {4, h[2], left} end
    if h[6] == ARGV[5] then return {1, h[2], left} end
    return {2, h[2], left}
  end
end
local lease = tonumber(ARGV[2])
local tok = math.max((tonumber(h[2]) or 0) + 1, tonumber(tm[1]) * 1000000 + tonumber(tm[2]))
redis.call('HSET', KEYS[1], 't', string.format('%d', tok), 'v', '1', 's', '1', 'd', now + lease, 'f', ARGV[1], 'k', ARGV[3], 'n', ARGV[5])
redis.call('HDEL', KEYS[1], 'r')
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {1, tok, lease}
`)

// completeScript answers 1 when the result was stored, 0 when the lease is
// lost (a completed record is final: even its owner cannot overwrite it).
// ARGV: token, encoded result, nonce.
//
// A record completed with this token and this call's nonce was completed by
// this very call, in a first run whose reply was lost: it answers 1 again
// and changes nothing. Another Complete with the same token (a new call, a
// new nonce) still answers 0.
var completeScript = redis.NewScript(nowMS + `
local h = redis.call('HMGET', KEYS[1], 's', 't', 'd', 'k', 'n')
if h[2] ~= ARGV[1] then return 0 end
if h[1] == '2' and h[5] == ARGV[3] then return 1 end
if h[1] ~= '1' or tonumber(h[3]) <= now then return 0 end
redis.call('HSET', KEYS[1], 's', '2', 'r', ARGV[2], 'n', ARGV[3])
redis.call('HDEL', KEYS[1], 'd')
redis.call('PEXPIRE', KEYS[1], h[4])
return 1
`)

// releaseScript answers 1 when released, 0 when the lease is lost.
// ARGV: token, nonce.
//
// A record released with this token and this call's nonce was released by
// this very call, in a first run whose reply was lost: it answers 1 again.
// Another Release with the same token (a new call, a new nonce) still
// answers 0.
var releaseScript = redis.NewScript(nowMS + `
local h = redis.call('HMGET', KEYS[1], 's', 't', 'd', 'n')
if h[2] ~= ARGV[1] then return 0 end
if h[1] == '3' and h[4] == ARGV[2] then return 1 end
if h[1] ~= '1' or tonumber(h[3]) <= now then return 0 end
redis.call('HSET', KEYS[1], 's', '3', 'n', ARGV[2])
redis.call('HDEL', KEYS[1], 'd')
return 1
`)

// renewScript answers 1 when the lease was extended, 0 when it is lost.
// ARGV: token, lease ms, minimum key ttl ms.
//
// Renew needs no nonce: a run re-sent after a lost reply finds the lease
// its first run extended still live and extends it again, from the later
// server time, which is what the owner asked for.
var renewScript = redis.NewScript(nowMS + `
local h = redis.call('HMGET', KEYS[1], 's', 't', 'd')
if h[2] ~= ARGV[1] or h[1] ~= '1' or tonumber(h[3]) <= now then return 0 end
redis.call('HSET', KEYS[1], 'd', now + tonumber(ARGV[2]))
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
`)

// getScript answers nil for no record, else {state, token,
// leaseRemainingMS, fingerprint, result}.
var getScript = redis.NewScript(nowMS + `
local h = redis.call('HMGET', KEYS[1], 's', 't', 'd', 'f', 'r')
if not h[1] then return false end
local left = 0
if h[1] == '1' then left = tonumber(h[3]) - now end
return {tonumber(h[1]), h[2], left, h[4], h[5]}
`)
