// Package resultcodec is the compact, versioned binary encoding of an
// idempotency.Result shared by the Redis and PostgreSQL stores.
package resultcodec

import (
	"encoding/binary"
	"errors"
	"net/http"
	"sort"

	"github.com/sadpath/sadpath/idempotency"
)

// resultVersion is the first byte of every encoded result. A new layout gets
// a new version; decode keeps reading the old ones.
const resultVersion byte = 1

// MaxStatus is the largest StatusCode Encode can write: Check refuses
// others, which Decode could not give back.
const MaxStatus = 999

// ErrCorrupt is returned by Decode for bytes that are not a valid encoding.
var ErrCorrupt = errors.New("idempotency: corrupt result encoding")

// Check reports why r cannot be encoded faithfully (a StatusCode outside
// [0, MaxStatus]), or "" when it can. Stores refuse such a result in
// Complete rather than keep what they could not read back.
func Check(r idempotency.Result) string {
	if r.StatusCode < 0 || r.StatusCode > MaxStatus {
		return "status code must be in [0, 999]"
	}
	return ""
}

// Encode writes r as: version byte, uvarint status code, uvarint
// number of header fields, then for each field (sorted by name) its name,
// uvarint number of values and the values, every string as uvarint length
// plus bytes, and finally the body as the rest of the value.
func Encode(r idempotency.Result) []byte {
	n := 1 + 2*binary.MaxVarintLen64 + len(r.Body)
	names := make([]string, 0, len(r.Header))
	for k, vs := range r.Header {
		names = append(names, k)
		n += 2*binary.MaxVarintLen64 + len(k)
		for _, v := range vs {
			n += binary.MaxVarintLen64 + len(v)
		}
	}
	sort.Strings(names)
	b := make([]byte, 0, n)
	b = append(b, resultVersion)
	b = binary.AppendUvarint(b, uint64(max(r.StatusCode, 0)))
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, k := range names {
		vs := r.Header[k]
		b = appendString(b, k)
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			b = appendString(b, v)
		}
	}
	return append(b, r.Body...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Decode is the inverse of Encode. It never panics: anything it
// cannot read returns ErrCorrupt.
func Decode(b []byte) (idempotency.Result, error) {
	var r idempotency.Result
	if len(b) == 0 || b[0] != resultVersion {
		return r, ErrCorrupt
	}
	d := decoder{b: b[1:]}
	status := d.uvarint()
	if status > MaxStatus {
		return r, ErrCorrupt
	}
	r.StatusCode = int(status)
	nf := d.uvarint()
	if nf > uint64(len(d.b)) { // every field takes a byte at least: allocation stays bounded by the value's size
		return r, ErrCorrupt
	}
	if nf > 0 {
		r.Header = make(http.Header, nf)
	}
	for i := uint64(0); i < nf && d.err == nil; i++ {
		k := d.str()
		nv := d.uvarint()
		if nv > uint64(len(d.b)) {
			return idempotency.Result{}, ErrCorrupt
		}
		vs := make([]string, 0, nv)
		for j := uint64(0); j < nv && d.err == nil; j++ {
			vs = append(vs, d.str())
		}
		r.Header[k] = vs
	}
	if d.err != nil {
		return idempotency.Result{}, ErrCorrupt
	}
	if len(d.b) > 0 {
		r.Body = append([]byte(nil), d.b...)
	}
	return r, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = ErrCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = ErrCorrupt
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
