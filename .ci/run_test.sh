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
cat >"$stubs/bin/go" <<STUB
#!/bin/sh
case "\$1" in
env) echo "$stubs/gopath" ;;
version) echo "go version stub" ;;
esac
exit 0
STUB
printf '#!/bin/sh\nexit 0\n' >"$stubs/bin/staticcheck"
printf '#!/bin/sh\necho "fatal: detected dubious ownership in repository" >&2\nexit 128\n' >"$stubs/nogit/git"
chmod +x "$stubs/bin/go" "$stubs/bin/staticcheck" "$stubs/nogit/git"

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
expect "git cannot list the files: the formatting check fails" 1 \
	"ci: git ls-files listed no Go files" PATH="$stubs/bin:$stubs/nogit:$PATH"
exit $failed
