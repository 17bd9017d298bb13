#!/usr/bin/env bash
# .ci/run_test.sh — tests of .ci/run's own checks. It runs .ci/run with
# stand-ins for go and staticcheck (so nothing is installed, built or tested)
# on a machine where Redis, PostgreSQL and NATS with JetStream are already up
# on their default ports, as .ci/run leaves them. Exit status 0: every case
# passed.
#
#	bash .ci/run_test.sh
set -uo pipefail
cd "$(dirname "$0")/.."
stubs=$(mktemp -d -t sadpath-ci-test.XXXXXX)
trap 'rm -rf "$stubs"' EXIT
mkdir -p "$stubs/bin" "$stubs/nogit"
mkdir -p "$stubs/stale"
# go install writes a staticcheck that passes into GOPATH/bin.
cat >"$stubs/bin/go" <<STUB
#!/bin/sh
case "\$1 \${2:-}" in
"env GOPATH") echo "$stubs/gopath" ;;
"env GOBIN") echo ;;
"version "*) echo "go version stub" ;;
"install "*) mkdir -p "$stubs/gopath/bin" && printf '#!/bin/sh\\nexit 0\\n' >"$stubs/gopath/bin/staticcheck" &&
	chmod +x "$stubs/gopath/bin/staticcheck" ;;
esac
exit 0
STUB
printf '#!/bin/sh\necho "stale staticcheck: not the pinned one"\nexit 1\n' >"$stubs/stale/staticcheck"
printf '#!/bin/sh\necho "fatal: detected dubious ownership in repository" >&2\nexit 128\n' >"$stubs/nogit/git"
chmod +x "$stubs/bin/go" "$stubs/stale/staticcheck" "$stubs/nogit/git"

failed=0
# expect NAME WANT_STATUS WANT_OUTPUT [ENV...]: run .ci/run with ENV.
expect() {
	local name=$1 want=$2 grep=$3 out status
	shift 3
	out=$(env PATH="$stubs/bin:$PATH" CI=true "$@" bash .ci/run </dev/null 2>&1)
	status=$?
	if { [ "$want" = 0 ] && [ "$status" -ne 0 ]; } || { [ "$want" != 0 ] && [ "$status" -eq 0 ]; } ||
		! grep -qF -- "$grep" <<<"$out"; then
		echo "--- FAIL: $name: status $status (want ${want/1/non-zero}), output without \"$grep\":"
		tail -n 20 <<<"$out" | sed 's/^/	/'
		failed=1
		return
	fi
	echo "--- PASS: $name"
}

expect "servers up: the run passes" 0 "tests: 0 passed, 0 failed, 0 skipped"
expect "another staticcheck first in PATH: the pinned one runs" 0 "tests: 0 passed, 0 failed, 0 skipped" \
	PATH="$stubs/bin:$stubs/stale:$PATH"
expect "git cannot list the files: the formatting check fails" 1 \
	"ci: git ls-files listed no Go files" PATH="$stubs/bin:$stubs/nogit:$PATH"
# A machine where Redis is up but redis-server is not installed (Redis in
# another container): PATH holds every command but redis-server, and an
# apt-get that records what it was asked to install.
mkdir -p "$stubs/noredis"
for d in /usr/local/go/bin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
	for f in "$d"/*; do
		[ -x "$f" ] && [ ! -e "$stubs/noredis/${f##*/}" ] && ln -s "$f" "$stubs/noredis/${f##*/}"
	done
done
rm -f "$stubs/noredis/redis-server" "$stubs/noredis/apt-get"
printf '#!/bin/sh\necho "$*" >>"%s"\n' "$stubs/apt.log" >"$stubs/noredis/apt-get"
chmod +x "$stubs/noredis/apt-get"
expect "Redis up, redis-server not installed: the run passes" 0 "tests: 0 passed, 0 failed, 0 skipped" \
	PATH="$stubs/bin:$stubs/noredis"
if grep -q 'install .*redis-server' "$stubs/apt.log" 2>/dev/null; then
	echo "--- PASS: Redis up, redis-server not installed: it is installed"
else
	echo "--- FAIL: Redis up, redis-server not installed: it is not installed (the redisstore restart and cluster tests need it)"
	failed=1
fi

nats=$(command -v nats-server || echo /usr/sbin/nats-server)
if [ -x "$nats" ]; then
	# A NATS server without JetStream, as Debian's nats-server service runs.
	port=$((20000 + RANDOM % 20000))
	while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
	"$nats" -a 127.0.0.1 -p "$port" >/dev/null 2>&1 &
	nats_pid=$!
	for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
	expect "NATS without JetStream: the run fails" 1 \
		"ci: the NATS server at 127.0.0.1:$port does not run JetStream" SADPATH_NATS_URL="nats://u:pw@127.0.0.1:$port"
	kill "$nats_pid"
	wait "$nats_pid" 2>/dev/null
else
	echo "--- FAIL: NATS without JetStream: no nats-server to run one"
	failed=1
fi
exit $failed
