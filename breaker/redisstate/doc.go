// Package redisstate shares a circuit breaker's state between the instances
// of a service through Redis, without ever putting Redis — or a lock — on the
// path of a call.
//
// # Why not gobreaker's distributed breaker
//
// gobreaker/v2's DistributedCircuitBreaker reads the shared state, takes a
// Redis lock, runs the caller's function while holding it, then writes the
// state and unlocks: four Redis round trips per call (measured by this
// package's tests with a counting go-redis hook), and every call of the
// whole cluster serialised behind one lock — the slower the dependency, the
// longer the lock is held. A lock wait of up to five seconds sits in front of
// every call while Redis is slow. GobreakerStore implements its
// SharedDataStore so the cost can be measured and for migrations; Shared is
// the recommended design.
//
// # Model
//
// Each instance runs an ordinary local breaker.Breaker (Shared.Breaker), so
// calls cost exactly what a local breaker costs and never touch the network.
// Shared adds three background flows:
//
//   - Counts: successes and failures counted locally since the last merge
//     are added into a rolling window in Redis (same Window and Buckets as
//     the breaker, on Redis's clock) by one Lua script, every SyncInterval,
//     or as soon as MinCalls calls were counted when busier. One round trip
//     per merge, whatever the traffic: at 20,000 calls per second and a 1s
//     interval that is 0.00005 round trips per call. When the shared window
//     reaches MinCalls and FailureRatio, the script opens the shared state —
//     so ten instances each seeing too few calls to decide still trip
//     together.
//   - Trips: when the local breaker opens on its own counts (or a probe
//     fails), the open state and its delay are written and published at
//     once on a Redis channel; the other instances open for the same
//     remaining delay, with the reason "shared: tripped by instance <id>"
//     (the instance whose merge tripped the shared window says "shared:
//     shared failure rate …"). A trip, local or by the shared window, clears
//     the shared window, and an instance whose breaker opens drops the
//     counts it has not merged yet: the failures before a trip decided it,
//     and must not count against the recovery. So does a merge that finds
//     the shared state changed — a peer's trip, or a recovery — since the
//     instance last saw it (it missed the message, or the message is still
//     on its way): its counts were made before it knew, during the outage,
//     and merged into the window the trip cleared or the recovery started
//     they would re-trip the recovery (an instance's first merge keeps its
//     counts: it had seen nothing yet). Calls that started before a trip and
//     end after it are not shared either (the local breaker discards them,
//     see breaker.Config.OnCall), and calls that ForceClosed lets through
//     are counted nowhere, locally or shared. While Redis is slow, a local
//     change waiting to be published is replaced by a newer one: the newest
//     is the one shared, never dropped for an older one.
//   - Recovery: when the local breaker closes after its probes succeeded,
//     that is published; the other instances end their open delay and probe
//     for themselves (they do not close blindly). A recovery is written only
//     if the shared state has not changed since the instance last saw it: a
//     close that reaches Redis after another instance's newer trip does not
//     undo that trip, and the instance follows the trip instead.
//
// An operator's ForceOpen or ForceClosed is local to its instance: it is not
// published, and while forced the instance ignores the shared state (a force
// wins over peers); after Reset it follows the shared state again from the
// next merge.
//
// Every message carries an epoch that grows with each shared change, so old
// or echoed messages are ignored; the periodic merge re-reads the shared
// state, so an instance that missed a message (reconnecting subscription)
// catches up within one SyncInterval (except that an instance's first merge
// does not end its own trip on a stored recovery: having seen nothing of the
// shared state, a trip it made before that merge is the newer news, even
// when Redis was down and it is not published yet). An epoch is at least
// Redis's time in milliseconds, so epochs keep growing even when Redis loses
// the state (a restart without persistence, a failover to a lagging
// replica) — unless the new server's clock is behind the old one's. A
// message whose epoch is more than a day ahead of the instance's clock is
// malformed (ignored and logged): recorded, it would make every real epoch
// after it look old. And the merge is authoritative: an instance whose
// merge finds the stored state older than the newest change it had seen —
// Redis lost that change, or never had it (a bad message that passed that
// check) — takes the stored epoch and applies the stored state (not when
// nothing is stored: that is no recovery), logging "breaker shared epoch
// reset". Not when Redis had that change (the instance read or wrote it
// there) and the stored state is one the instance saw before it: Redis,
// restarted from a snapshot or a replica promoted without its newest
// changes, went back to a state they superseded, and applied again it
// would undo them (a recovered instance reopening for the rest of an old
// trip's delay); the instance takes the stored epoch and keeps its own
// state. An instance that starts afterwards sees only the stored state,
// and cannot tell a stale trip from a trip made a moment ago: so a running
// instance whose breaker is closed writes its recovery back over the
// stored trip (a recovery like any other: written only over that trip, and
// the instances that followed the stale trip probe). An instance started
// between the restore and that merge follows the stale trip until then
// (at most a SyncInterval of a running instance), and when no instance
// that saw the recovery is running, the stale trip is followed for the
// rest of its delay: nothing stored tells it apart. (A stored trip whose
// delay has passed on Redis's clock trips no one.) A lost trip is not
// written back: the instances that saw it stay open, and one that starts
// afterwards trips on its own counts, as with Redis down. So after a
// failover to a server whose clock is behind, whose new changes get older
// epochs than those seen before, each instance follows
// them from its next merge on; until then it ignores their messages, but
// its counts are merged, and its recoveries written, only over the stored
// state it saw: they do not undo a change it has not seen. Likewise for a
// peer's trip applied from its message: every change is stored before it
// is published (in the same atomic script), so the merge after the message
// finds that trip stored, or a newer change. When it finds an older epoch, the trip
// never reached the shared state (a forged or garbled message; another
// deployment with the same Prefix and Name on another database of the same
// Redis server, since Pub/Sub ignores databases) or Redis lost it since:
// the instance ends the open delay — its next calls probe — and logs
// "breaker ended a peer's trip missing from the shared state". Open delays from
// peers are not capped at MaxOpenTimeout (an operator's hour-long Trip
// reaches every instance); this is what keeps a bad message from holding an
// instance open for up to a year, with no probe.
//
// # Consistency trade-off
//
// The shared state is eventually consistent. Between merges an instance
// decides on its local counts alone; the shared window lags by up to one
// SyncInterval; a trip reaches the other instances after one publish (a
// round trip, typically well under a millisecond on a LAN) during which they
// still send calls. Two instances may trip at the same moment; the later
// deadline wins. Probing is per instance: after a shared trip every instance
// sends its own HalfOpenProbes probes. In exchange no call ever waits for
// Redis, and the closed path costs no round trip at all.
//
// # Redis down
//
// Every Redis operation runs in the background with Config.Timeout. When
// Redis is unreachable the merges fail, the counts are dropped (the shared
// window is advisory), one decision is logged ("breaker running locally:
// shared state unavailable", and its counterpart when Redis is back) and the
// local breaker keeps protecting the instance on its own: fail open, never
// block. A local trip or recovery whose publish failed is tried again every
// SyncInterval until it reaches Redis (unless a newer local change replaced
// it): once Redis is back, the other instances open for what is left of the
// trip's delay. A retried trip is dropped when the local breaker is no
// longer open, or when the instance has seen a newer shared change since.
//
// # Keys
//
// For a breaker named N and Config.Prefix P: the hash "P{N}:state", window
// buckets "P{N}:w:<bucket>" (expiring after one window) and the channel
// "P{N}:events". The hash tag keeps a breaker's keys in one Redis Cluster
// slot; New refuses a prefix containing '{' or '}', which would take it
// over. A name starting with '}' would leave the tag empty: it is written
// after a 0xff byte, "P{\xffN}…". Messages on the channel are parsed
// strictly; anything malformed is ignored and logged. So is the state
// hash, by every script: a value this package does not write there (not a
// hash, a state other than open or closed, a deadline or epoch that is not
// a whole number of milliseconds, a deadline more than a year and a day
// ahead, a format version field "v" other than 1: this version writes
// none, a later format that this one must not read will set it) is
// neither followed nor overwritten — the instances run on their
// local breakers, logging "breaker running locally: shared state
// unavailable" with the key and the field, until it is deleted.
//
// # Lifecycle and concurrency
//
// New validates the config (a *contract.Error of KindInvalid naming the
// field), starts two goroutines (merge loop, subscription) and returns
// without waiting for Redis. Close stops them without waiting for a Redis
// command in flight (abandoned, it ends when Redis answers or the read
// fails), and waits at most Config.Timeout for the subscription to close;
// the client stays the caller's. A Shared is safe for concurrent
// use.
//
// A shared change applied from a message or a merge runs the local
// breaker's OnStateChange hook and Logger on one of these goroutines. A
// panic there does not crash the process (every instance gets the same
// message: the whole fleet would crash at once): it is logged at level
// Error, "breaker hook failed in the background", with the breaker's name,
// the panic and its stack, and the goroutine goes on. The change is still
// applied, and Shared's own part of the hooks (sharing a local trip or
// recovery, counting a call) runs even when the user's hook panics on a
// caller's goroutine.
package redisstate
