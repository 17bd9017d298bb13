package redisstate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
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
// The lock's owner token is per store, not per acquisition: Unlock(name)
// is all gobreaker.SharedDataStore passes, so nothing tells one holder
// from another in the same process, and no bookkeeping inside the store
// could. Another process's lock is never released, but within a process a
// holder whose lock expired (held past lockTTL), and was taken since by
// another goroutine sharing this store, releases that goroutine's lock
// when it unlocks, letting a third one in alongside it. Choose a lockTTL
// longer than the longest call run under the lock.
type GobreakerStore struct {
	client  redis.UniversalClient
	token   string
	lockTTL time.Duration
	timeout time.Duration
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
	var r [12]byte
	_, _ = rand.Read(r[:])
	return &GobreakerStore{client: client, token: hex.EncodeToString(r[:]), lockTTL: lockTTL, timeout: DefaultTimeout}, nil
}

// ErrLocked is what GobreakerStore.Lock returns when another holder has the
// lock (gobreaker retries it until its own lock wait runs out).
var ErrLocked = errors.New("redisstate: lock held by another instance")

var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

func (g *GobreakerStore) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), g.timeout)
}

// Lock takes the lock name, or fails at once when another holder has it.
func (g *GobreakerStore) Lock(name string) error {
	ctx, cancel := g.ctx()
	defer cancel()
	ok, err := g.client.SetNX(ctx, name, g.token, g.lockTTL).Result()
	if err != nil {
		return err
	}
	if !ok {
		return ErrLocked
	}
	return nil
}

// Unlock releases the lock name if this store holds it.
func (g *GobreakerStore) Unlock(name string) error {
	ctx, cancel := g.ctx()
	defer cancel()
	return unlockScript.Run(ctx, g.client, []string{name}, g.token).Err()
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
