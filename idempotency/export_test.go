package idempotency

import "unsafe"

// SetMemoryHash replaces the hash s indexes and shards keys by, so tests
// can make keys collide. Call it before using s.
func SetMemoryHash(s *MemoryStore, h func(Key) uint64) { s.testHash = h }

// MemShardSize is the size of a MemoryStore shard.
const MemShardSize = unsafe.Sizeof(memShard{})
