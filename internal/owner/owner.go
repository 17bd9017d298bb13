// Package owner marks the context of an operation running under an
// idempotency claim, so that a call made inside it with the same key and
// store — which could only meet its own claim in progress — is refused
// with idempotency.ErrNestedCall by idempotency.Do, the Middleware, Dedup
// and pgstore.DoTx alike, whichever of them holds the claim — or a
// consumer.Consumer, which claims an event's id in its store directly; and
// so that idempotency.Token finds the fencing token of the innermost
// operation. It lives at the root of the module, not in idempotency's, for
// package consumer to reach it.
package owner

import (
	"context"
	"reflect"
)

// Key is the context key under which the context of an operation running
// under a claim answers with itself, an Op.
type Key struct{}

// Op is the context of an operation running under a claim.
type Op interface {
	// Holds reports whether the operation is still running and holds the
	// key (scope, key) in store, a StoreID: an Op compares it with its own
	// store's StoreID with ==, which cannot panic since a StoreID is
	// always comparable.
	Holds(store any, scope, key string) bool
	// Parent returns the context the operation was given: enclosing
	// operations are found through it.
	Parent() context.Context
	// Token returns the fencing token of the operation's claim, false for
	// an operation that runs without one (failing open): idempotency.Token
	// answers with the innermost operation's, never an enclosing one's,
	// which belongs to another key.
	Token() (uint64, bool)
}

// StoreID returns what stands for store in Holds and Nested: the store's
// identity when it has one (a StoreIdentity method, the optional interface
// idempotency.StoreIdentifier, returning a non-empty string), so that two
// store values on the same backing records (two pgstore.Stores on one
// table) match; else store itself when == can compare it, so that every
// operation on it matches, whoever runs it; else self, a comparable value
// of the holder's own (an executor), so that its own operations still
// match: a store == cannot compare (a struct holding a slice, used by
// value) cannot be told the same as another.
//
// Called once per holder, when it is built: the identity is boxed then,
// and comparing it (an identity holding a string) allocates nothing.
func StoreID(store, self any) any {
	if s, ok := store.(interface{ StoreIdentity() string }); ok {
		if id := s.StoreIdentity(); id != "" {
			return identity{id}
		}
	}
	if v := reflect.ValueOf(store); v.IsValid() && v.Comparable() {
		return store
	}
	return self
}

// identity is the StoreID of a store with an identity: a type of its own,
// so it never equals a store that is itself a string.
type identity struct{ id string }

// Nested reports whether ctx is the context of a running operation — o,
// the innermost, or one enclosing it — holding (scope, key) in store, a
// StoreID. A nil o reports false: callers outside any operation pay one
// ctx.Value to find it.
func Nested(o Op, store any, scope, key string) bool {
	for ; o != nil; o, _ = o.Parent().Value(Key{}).(Op) {
		if o.Holds(store, scope, key) {
			return true
		}
	}
	return false
}
