package pgstore

import (
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/idempotency/internal/resultcodec"
)

// The result encoding is shared with the other store (see resultcodec).
var errCorrupt = resultcodec.ErrCorrupt

func encodeResult(r idempotency.Result) []byte { return resultcodec.Encode(r) }

func decodeResult(b []byte) (idempotency.Result, error) { return resultcodec.Decode(b) }
