// Package testenv gives integration tests the addresses of real servers.
//
// Each server's address comes from an environment variable. When it is unset
// a test skips with a message naming the variable — unless the CI variable is
// set, in which case it fails: in CI every integration test must run.
package testenv

import (
	"os"
	"testing"
)

// Environment variables naming the servers integration tests use.
const (
	EnvRedisAddr   = "SADPATH_REDIS_ADDR" // host:port, e.g. 127.0.0.1:6379
	EnvPostgresDSN = "SADPATH_PG_DSN"     // e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable
	EnvNATSURL     = "SADPATH_NATS_URL"   // e.g. nats://127.0.0.1:4222
)

// RedisAddr returns the Redis address, or skips (fails in CI).
func RedisAddr(t testing.TB) string { return need(t, EnvRedisAddr) }

// PostgresDSN returns the PostgreSQL DSN, or skips (fails in CI).
func PostgresDSN(t testing.TB) string { return need(t, EnvPostgresDSN) }

// NATSURL returns the NATS URL, or skips (fails in CI).
func NATSURL(t testing.TB) string { return need(t, EnvNATSURL) }

func need(t testing.TB, env string) string {
	t.Helper()
	v := os.Getenv(env)
	if v != "" {
		return v
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("integration test needs %s; in CI it must run, not skip", env)
	}
	t.Skipf("integration test skipped: set %s to run it", env)
	return ""
}
