package idempotency

import (
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// detachStrings copies every string of a plain value, nested in structs
// and arrays, unexported ones included, out of the memory it shared.
func TestDetachStrings(t *testing.T) {
	type inner struct {
		C string
		N int
	}
	type value struct {
		A string
		b string
		E string
		B [2]inner
	}
	big := strings.Repeat("0123456789", 100)
	v := value{A: big[:3], b: big[10:15], B: [2]inner{{C: big[20:22], N: 1}, {C: big[30:31], N: 2}}}
	want := v
	detachStrings(unsafe.Pointer(&v), factsOf(reflect.TypeFor[value]()).strs)
	if v != want {
		t.Fatalf("detached %+v, want %+v", v, want)
	}
	lo, hi := uintptr(unsafe.Pointer(unsafe.StringData(big))), uintptr(unsafe.Pointer(unsafe.StringData(big)))+uintptr(len(big))
	for _, s := range []string{v.A, v.b, v.B[0].C, v.B[1].C} {
		if p := uintptr(unsafe.Pointer(unsafe.StringData(s))); p >= lo && p < hi {
			t.Errorf("%q still points into the larger string", s)
		}
	}
	var none struct{ N [4]int }
	detachStrings(unsafe.Pointer(&none), factsOf(reflect.TypeOf(none)).strs) // no strings: nothing to do
}
