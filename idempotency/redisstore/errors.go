package redisstore

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/sadpath/sadpath/contract"
)

// mapError classifies an error from go-redis as a contract error:
//
//   - context canceled: KindCanceled (the caller gave up);
//   - context deadline or a network timeout: KindTimeout, retryable — the
//     command may have run;
//   - Redis refusing for a while (LOADING, READONLY after a failover,
//     MASTERDOWN, CLUSTERDOWN, TRYAGAIN, BUSY, OOM, max clients), also when
//     a command inside a script met it: KindUnavailable;
//   - any other server error (a script error, WRONGTYPE): KindInternal;
//   - everything else — refused or reset connections, EOF, a closed client,
//     an exhausted pool: KindUnavailable, retryable.
//
// The cause stays wrapped, so errors.Is(err, context.Canceled) still holds.
func mapError(op string, err error) *contract.Error {
	code := "redisstore.unavailable"
	kind := contract.KindUnavailable
	var ne net.Error
	var re redis.Error
	switch {
	case errors.Is(err, context.Canceled):
		kind, code = contract.KindCanceled, "redisstore.canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		kind, code = contract.KindTimeout, "redisstore.timeout"
	case errors.Is(err, errCorrupt), errors.Is(err, errReply):
		kind, code = contract.KindInternal, "redisstore.corrupt"
	case errors.As(err, &re):
		if !transientServerError(re.Error()) {
			kind, code = contract.KindInternal, "redisstore.server_error"
		}
	}
	return contract.Wrap(kind, op, err).WithCode(code)
}

// transientServerError reports whether a server error is one Redis gives
// for a while (a failover, a load, a full memory) rather than for good.
//
// Redis 7 answers a script whose command failed with that command's error
// and code ("READONLY … script: …"). Earlier versions, and servers that
// kept their format, wrap it: "ERR Error running script (call to f_…):
// @user_script:4: @user_script: 4: -READONLY …"; the code is read after the
// first ": -" then.
func transientServerError(msg string) bool {
	msg = strings.TrimPrefix(msg, "ERR ")
	if strings.HasPrefix(msg, "Error running script") {
		i := strings.Index(msg, ": -")
		if i < 0 {
			return false
		}
		msg = msg[i+len(": -"):]
	}
	for _, p := range []string{"LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "OOM", "MISCONF", "NOREPLICAS", "MOVED", "ASK", "max number of clients"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}
