package redisstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/idempotency/storetest"
)

// TestConformanceOnCluster runs the conformance suite through a
// redis.ClusterClient against a private one-node Redis Cluster (every slot
// assigned to it): the scripts name their key in KEYS, so the client routes
// each call by the record's hash tag, as it would across many nodes.
func TestConformanceOnCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private redis-server")
	}
	dir := t.TempDir()
	addr, _ := privateRedis(t, "--cluster-enabled", "yes", "--cluster-config-file", dir+"/nodes.conf")
	ctx := context.Background()
	admin := redis.NewClient(&redis.Options{Addr: addr})
	defer admin.Close()
	if err := admin.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		info, _ := admin.ClusterInfo(ctx).Result()
		if strings.Contains(info, "cluster_state:ok") {
			break
		}
		if i == 200 {
			t.Fatalf("cluster not ok:\n%s", info)
		}
		time.Sleep(25 * time.Millisecond)
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr}})
	t.Cleanup(func() { _ = cc.Close() })
	s, err := New(Config{Client: cc})
	if err != nil {
		t.Fatal(err)
	}
	// The record key's slot is the slot of its hash tag.
	k := idempotency.Key{Scope: "s", Key: "{not-a-tag}"}
	full, err := admin.ClusterKeySlot(ctx, s.redisKey(recordID(k))).Result()
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := admin.ClusterKeySlot(ctx, recordID(k)).Result()
	if full != tag {
		t.Fatalf("key slot %d, hash tag slot %d", full, tag)
	}
	storetest.Run(t, func(t *testing.T) (idempotency.Store, storetest.Clock) { return s, nil })
}
