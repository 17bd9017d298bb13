package depcheck

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// forbidden are module path fragments that belong in adapter modules only.
var forbidden = []string{
	"github.com/redis/", "github.com/jackc/", "github.com/nats-io/",
	"go.opentelemetry.io/otel/sdk", "go.opentelemetry.io/otel/exporters",
	"github.com/failsafe-go/", "github.com/avast/", "github.com/hashicorp/",
}

func TestCoreBuildListHasNoHeavyDependencies(t *testing.T) {
	cmd := exec.Command("go", "list", "-m", "all")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -m all: %v\n%s", err, out)
	}
	mods := strings.Fields(string(out))
	if len(mods) == 0 || mods[0] != "github.com/sadpath/sadpath" {
		t.Fatalf("unexpected go list output:\n%s", out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path := strings.Fields(line)[0]
		for _, f := range forbidden {
			if strings.HasPrefix(path, f) {
				t.Errorf("the core module's build list contains %s: it belongs in an adapter module", path)
			}
		}
	}
}
