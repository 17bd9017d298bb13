#!/usr/bin/env bash
# scripts/test.sh — the one command that tests every module of sadpath.
#
# For each Go module in the repository (the core and every adapter, example
# and benchmark module): go vet, then go test -race -count=1 over all its
# packages (unit, integration, fuzz seed corpora and Example functions), then
# every benchmark once (-benchtime=1x) so none can rot; finally the tour runs
# as a test of its own (it exits non-zero when an invariant fails).
#
# Integration tests read server addresses from SADPATH_REDIS_ADDR,
# SADPATH_PG_DSN and SADPATH_NATS_URL. Unset, they skip locally — and fail
# when CI is set. With CI set, any skipped test fails this script too.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
log=$(mktemp -t sadpath-test.XXXXXX)
trap 'rm -f "$log"' EXIT
status=0

mapfile -t modules < <(find . -name go.mod -not -path './.git/*' -printf '%h\n' | sort)

for m in "${modules[@]}"; do
	echo "== module ${m#./} =="
	cd "$root/$m"
	if ! go vet ./...; then
		echo "FAIL: go vet in $m"
		status=1
	fi
	if ! go test -race -count=1 -v ./... >"$log.mod" 2>&1; then
		status=1
	fi
	# Show package results and failures, keep the verbose log for counting.
	grep -E '^(ok|FAIL|---|panic:|\?)|^\s+--- (FAIL|SKIP)|_test\.go:[0-9]+:' "$log.mod" | grep -vE '^\s*--- PASS' || true
	cat "$log.mod" >>"$log"
	# Allocation tests are built without -race only (//go:build !race): the
	# race detector changes allocation counts.
	if ! go test -count=1 -v -run 'Alloc' ./... >"$log.alloc" 2>&1; then
		grep -E '^(FAIL|---)|_test\.go:[0-9]+:' "$log.alloc" || true
		echo "FAIL: allocation tests in $m"
		status=1
	fi
	# Count a test once: an allocation test that is not race-excluded also
	# ran (and was counted) in the race pass above; its failure here counts.
	grep -E '^\s*--- (PASS|FAIL|SKIP)' "$log.alloc" |
		awk 'NR == FNR { if ($1 == "---") seen[$3] = 1; next } $2 == "FAIL:" || !seen[$3]' "$log.mod" - >>"$log" || true
	rm -f "$log.alloc"
	if ! go test -run '^$' -bench . -benchtime=1x ./... >"$log.bench" 2>&1; then
		echo "FAIL: benchmarks (-benchtime=1x) in $m"
		cat "$log.bench"
		status=1
	fi
	rm -f "$log.mod" "$log.bench"
done
cd "$root"

if [ -d examples/tour ]; then
	echo "== tour =="
	if ! go run ./examples/tour >"$log.tour" 2>&1; then
		cat "$log.tour"
		echo "FAIL: the tour reported a broken invariant"
		status=1
	else
		tail -n 5 "$log.tour"
	fi
	rm -f "$log.tour"
fi

passed=$(grep -cE '^\s*--- PASS' "$log" || true)
failed=$(grep -cE '^\s*--- FAIL' "$log" || true)
skipped=$(grep -cE '^\s*--- SKIP' "$log" || true)
if [ "$skipped" -gt 0 ]; then
	echo "skipped tests:"
	grep -E '^\s*--- SKIP' -A1 "$log" | head -40
	if [ -n "${CI:-}" ]; then
		echo "FAIL: $skipped tests skipped; in CI every test, integration tests included, must run"
		status=1
	fi
fi
echo
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit $status
