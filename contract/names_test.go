package contract

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// hashName's folded hashes are equal exactly when encoding/json folds two
// names alike (bytes.EqualFold, its rule), its exact hashes when the names
// are equal, whichever of its paths (eight ASCII bytes at a time, a tail,
// runes) a name takes.
func TestHashNameFoldsAsEncodingJSON(t *testing.T) {
	names := []string{"", "a", "A", "k", "K", "\u212a", "s", "S", "ſ", "@", "`", "[", "{", "z", "Z", "_",
		"amount_minor", "AMOUNT_MINOR", "Amount_Minor", "amount_minoR", "amount_minor1", "amount_mino",
		"abcdefgh", "ABCDEFGH", "abcdefgH", "abcdefghi", "abcdefghI", "\x00", "\x00\x00", "a\x00",
		"é", "É", "ǆ", "ǅ", "Ǆ", "ß", "ẞ", "straße", "STRAẞE", "ﬀ", "Ω", "ω", "Ω",
		"booked_at", "booKed_at", "boo\u212aed_at", strings.Repeat("x", 100), strings.Repeat("X", 100),
		strings.Repeat("x", 99) + "\u212a", strings.Repeat("x", 99) + "k", "payer€", "PAYER€",
	}
	seed := uint64(0x1234567890abcdef)
	for _, a := range names {
		ha := hashName(seed, []byte(a))
		if ha.exact != hashBytes(seed, []byte(a)) {
			t.Errorf("%q: exact hash is not hashBytes", a)
		}
		for _, b := range names {
			hb := hashName(seed, []byte(b))
			if (ha.fold == hb.fold) != bytes.EqualFold([]byte(a), []byte(b)) {
				t.Errorf("%q and %q: folded hashes equal %v, EqualFold %v", a, b, ha.fold == hb.fold, bytes.EqualFold([]byte(a), []byte(b)))
			}
			if (ha.exact == hb.exact) != (a == b) {
				t.Errorf("%q and %q: exact hashes equal %v", a, b, ha.exact == hb.exact)
			}
		}
	}
}

type FieldsEmbedA struct {
	X int `json:"x"`
	Y int
	Z int `json:"z"`
}

type FieldsEmbedB struct {
	X int `json:"x"`
	Y int `json:"Y"`
	W int
}

type FieldsEmbedC struct{ FieldsEmbedA }

type fieldsTricky struct {
	FieldsEmbedA
	*FieldsEmbedB
	FieldsEmbedC
	K      int `json:"k"`
	Kelvin int `json:"K"`
	Skip   int `json:"-"`
	//lint:ignore SA5008 a field named "-", as encoding/json reads this tag
	Dash int `json:"-,"`
	//lint:ignore SA5008 a name encoding/json refuses: the Go name is used
	Bad    int `json:"a\\b"`
	Opts   int `json:",omitempty"`
	hidden int //lint:ignore U1000 unexported: encoding/json ignores it
	Z      int
}

// jsonFields resolves names to the fields encoding/json sets: each name is
// decoded alone into a fresh struct and the field it set is compared with
// the one lookup finds.
func TestJSONFieldsMatchEncodingJSON(t *testing.T) {
	typ := reflect.TypeFor[fieldsTricky]()
	fs := newStructFields(typ, 7)
	names := []string{"x", "X", "y", "Y", "z", "Z", "w", "W", "k", "K", "\u212a", "Skip", "skip", "-", "Dash",
		"Bad", "a\\b", "Opts", "opts", "hidden", "Kelvin", "kelvin", "FieldsEmbedA", "Hidden"}
	for _, name := range names {
		v := reflect.ValueOf(&fieldsTricky{FieldsEmbedB: &FieldsEmbedB{}})
		if err := json.Unmarshal([]byte(`{`+strconv.Quote(name)+`:1}`), v.Interface()); err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		var set []int
		var walk func(v reflect.Value, index []int)
		walk = func(v reflect.Value, index []int) {
			for i := range v.NumField() {
				f := v.Field(i)
				if f.Kind() == reflect.Pointer && !f.IsNil() {
					f = f.Elem()
				}
				idx := append(append([]int(nil), index...), i)
				switch f.Kind() {
				case reflect.Struct:
					walk(f, idx)
				case reflect.Int:
					if f.Int() == 1 {
						if set != nil {
							t.Fatalf("%q set two fields", name)
						}
						set = idx
					}
				}
			}
		}
		walk(v.Elem(), nil)
		var got []int
		if i := fs.lookup(hashName(7, []byte(name))); i >= 0 {
			got = fs.list[i].index
		}
		if !reflect.DeepEqual(got, set) {
			t.Errorf("%q: lookup gives field %v, encoding/json sets %v", name, got, set)
		}
	}
}
