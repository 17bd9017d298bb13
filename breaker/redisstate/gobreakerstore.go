package redisstate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"

	"github.com/sadpath/sadpath/breaker"
	"github.com/sadpath/sadpath/contract"
)

// GobreakerStore implements gobreaker.SharedDataStore on Redis, for code that
// uses gobreaker's DistributedCircuitBreaker directly.
//
// Prefer Shared. gobreaker's distributed Execute reads the state, takes this
// lock, runs the caller's function while holding it, then writes the state
// and unlocks: at least four Redis round trips per call, and every call of
// the cluster serialised behind one lock (a slow dependency makes the lock
// the bottleneck; a lock held past LockTTL is lost). This type exists so the
// cost can be measured (see the package tests) and for migrations.
//
// Every Lock writes its own owner value, so that a retry of a SET whose
// reply was lost (the connection dropped after Redis ran it) finds the lock
// its own: go-redis retries with the same value, and after an error the
// store's next Lock of that name, gobreaker's retry, takes that value up
// again. Another process's lock is never released.
//
// Unlock(name) is all gobreaker.SharedDataStore passes: it does not say
// whose lock it releases. The store keeps the values of the locks it took,
// oldest first, and Unlock releases the oldest. When a holder kept the lock
// past lockTTL (a slow call) and another goroutine sharing the store took it
// since, only the newer value can still be held, and it is released once
// both have unlocked, whichever unlocks first: never while a goroutine of
// this store still holds it, but possibly after its holder unlocked, when
// the late one unlocks (or lockTTL passes). This needs one Unlock after
// each Lock that succeeded, as gobreaker does; a Lock never unlocked would
// keep every later lock of that name held until lockTTL. Choose a lockTTL
// longer than the longest call run under the lock.
type GobreakerStore struct {
	client  redis.UniversalClient
	lockTTL time.Duration
	timeout time.Duration

	mu     sync.Mutex
	held   map[string][]string // lock name: the owner values of the locks taken, oldest first
	unsure map[string]string   // lock name: the owner value of a Lock that failed, perhaps after its SET ran
}

var _ gobreaker.SharedDataStore = (*GobreakerStore)(nil)

// NewGobreakerStore returns a store on client. lockTTL bounds how long a
// crashed holder keeps the lock (zero means 5s, gobreaker's own lock wait;
// negative is refused). A nil client, or a nil pointer such as a nil
// *redis.Client, is refused with a config.invalid error naming it.
func NewGobreakerStore(client redis.UniversalClient, lockTTL time.Duration) (*GobreakerStore, error) {
	const op = "redisstate.NewGobreakerStore"
	bad := func(field, rule string) error {
		e := contract.New(contract.KindInvalid, op, field+": "+rule).WithCode(breaker.CodeConfigInvalid)
		e.Fields = []contract.FieldError{{Name: field, Reason: rule}}
		return e
	}
	if isNil(client) {
		return nil, bad("client", "must not be nil")
	}
	if lockTTL < 0 {
		return nil, bad("lockTTL", "must be >= 0, got "+lockTTL.String())
	}
	if lockTTL == 0 {
		lockTTL = 5 * time.Second
	}
	return &GobreakerStore{client: client, lockTTL: lockTTL, timeout: DefaultTimeout,
		held: map[string][]string{}, unsure: map[string]string{}}, nil
}

// ErrLocked is what GobreakerStore.Lock returns when another holder has the
// lock (gobreaker retries it until its own lock wait runs out).
var ErrLocked = errors.New("redisstate: lock held by another instance")

// lockScript takes the lock KEYS[1] for the owner value ARGV[1], for
// ARGV[2] ms; it returns 1 when it is taken, or was already this owner's (a
// retry after a lost reply), and 0 when another owner has it.
var lockScript = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`)

var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

func (g *GobreakerStore) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), g.timeout)
}

// Lock takes the lock name, or fails at once when another holder has it.
// After an error the lock may have been taken all the same (the reply was
// lost): the next Lock of name finds it its own.
func (g *GobreakerStore) Lock(name string) error {
	g.mu.Lock()
	owner, ok := g.unsure[name]
	delete(g.unsure, name)
	g.mu.Unlock()
	if !ok {
		var r [12]byte
		_, _ = rand.Read(r[:])
		owner = hex.EncodeToString(r[:])
	}
	ctx, cancel := g.ctx()
	defer cancel()
	// At least 1ms, as go-redis rounds a shorter expiry: PX 0 is refused.
	taken, err := lockScript.Run(ctx, g.client, []string{name}, owner, max(1, g.lockTTL.Milliseconds())).Bool()
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case err != nil:
		g.unsure[name] = owner
		return err
	case !taken:
		return ErrLocked
	}
	g.held[name] = append(g.held[name], owner)
	return nil
}

// Unlock releases the oldest lock name this store took, if it is still
// held. An older one is not (a newer one was taken): releasing it does
// nothing, and the newer one stays held until its turn.
func (g *GobreakerStore) Unlock(name string) error {
	g.mu.Lock()
	owners := g.held[name]
	if len(owners) == 0 {
		g.mu.Unlock()
		return nil
	}
	owner := owners[0]
	if len(owners) == 1 {
		delete(g.held, name)
	} else {
		g.held[name] = owners[1:]
	}
	g.mu.Unlock()
	ctx, cancel := g.ctx()
	defer cancel()
	return unlockScript.Run(ctx, g.client, []string{name}, owner).Err()
}

// GetData returns the data stored under name, or nil when there is none.
func (g *GobreakerStore) GetData(name string) ([]byte, error) {
	ctx, cancel := g.ctx()
	defer cancel()
	b, err := g.client.Get(ctx, name).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return b, err
}

// SetData stores data under name.
func (g *GobreakerStore) SetData(name string, data []byte) error {
	ctx, cancel := g.ctx()
	defer cancel()
	return g.client.Set(ctx, name, data, 0).Err()
}
