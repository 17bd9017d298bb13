package contract

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
)

// diffObj is a struct whose fields' names all fold apart: two names
// encoding/json maps to one of its fields are the names that fold like it.
type diffObj struct {
	A     any                `json:"a"`
	K     any                `json:"k"` // "K" and the Kelvin sign fold to it
	S     any                `json:"s"` // "S" and 'ſ' fold to it
	E     any                `json:"é"`
	Items []diffObj          `json:"items"`
	Sub   *diffObj           `json:"sub"`
	ByID  map[int]diffObj    `json:"by_id"`
	Named map[string]diffObj `json:"named"`
	Raw   json.RawMessage    `json:"raw"`
}

// diffNames are the names the bodies of the differential test are made of:
// names that fold alike, integers in several spellings, names that need
// escapes, a name past the scanner's buffer.
var diffNames = []string{"a", "A", "k", "K", "\u212a", "s", "S", "\u017f", "é", "É", "items", "ITEMS", "sub", "Sub",
	"by_id", "BY_ID", "named", "raw", "RAW", "x", "X", "1", "01", "+1", "-0", "0", "10", `a"b`, `a\b`, "a/b", "\u00e9\u212a",
	"\U0001d11e", strings.Repeat("long", 10), strings.Repeat("LONG", 10), "", "\x01"}

// diffName writes name as a JSON string, escaping each character or not at
// random, as a client may.
func diffName(r *rand.Rand, b *strings.Builder, name string) {
	b.WriteByte('"')
	for _, c := range name {
		switch {
		case c == '"' || c == '\\' || c < 0x20:
			if r.IntN(2) == 0 && c != 1 {
				b.WriteByte('\\')
				b.WriteRune(c)
			} else {
				fmt.Fprintf(b, `\u%04x`, c)
			}
		case c == '/' && r.IntN(2) == 0:
			b.WriteString(`\/`)
		case r.IntN(4) > 0:
			b.WriteRune(c)
		case c > 0xffff:
			hi, lo := utf16.EncodeRune(c)
			fmt.Fprintf(b, `\u%04x\u%04X`, hi, lo)
		default:
			fmt.Fprintf(b, `\u%04X`, c)
		}
	}
	b.WriteByte('"')
}

func diffValue(r *rand.Rand, b *strings.Builder, depth int) {
	switch n := r.IntN(10); {
	case depth > 3 || n < 3:
		b.WriteString([]string{"1", `"x"`, "null", "true", `"{\"a\":1,\"a\":2}"`, "-2.5"}[r.IntN(6)])
	case n < 8:
		b.WriteByte('{')
		members := r.IntN(5)
		if r.IntN(20) == 0 {
			members = 40 // past the names an object holds unindexed
		}
		for i := range members {
			if i > 0 {
				b.WriteByte(',')
			}
			name := diffNames[r.IntN(len(diffNames))]
			if members > 5 && r.IntN(8) > 0 {
				name = "m" + strconv.Itoa(i)
			}
			diffName(r, b, name)
			b.WriteByte(':')
			diffValue(r, b, depth+1)
		}
		b.WriteByte('}')
	default:
		b.WriteByte('[')
		for i := range r.IntN(3) {
			if i > 0 {
				b.WriteByte(',')
			}
			diffValue(r, b, depth+1)
		}
		b.WriteByte(']')
	}
}

// What a JSON value decodes into, for refRepeated.
type refKind int

const (
	refAny     refKind = iota // an interface, a json.RawMessage, a value of the wrong type: names compared exactly
	refStruct                 // a diffObj
	refSlice                  // a []diffObj
	refIntMap                 // a map[int]diffObj
	refNameMap                // a map[string]diffObj
)

// refRepeated reads one value from dec, decoded into kind, and reports
// whether encoding/json would set something twice: a name repeated in an
// object, or two names of a diffObj that fold like one of its fields, or
// two keys of a map[int]diffObj that parse to one integer. It is the
// reference the scanner is compared with, built on json.Decoder's tokens
// (names unescaped by encoding/json) and bytes.EqualFold (encoding/json's
// rule for matching a field ignoring case).
func refRepeated(t *testing.T, dec *json.Decoder, kind refKind) bool {
	tok, err := dec.Token()
	if err != nil {
		t.Fatal(err)
	}
	switch tok {
	case json.Delim('{'):
		var names []string
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				t.Fatal(err)
			}
			name := tok.(string)
			child := refAny
			for _, earlier := range names {
				if earlier == name {
					return true
				}
			}
			switch kind {
			case refStruct:
				field, ok := diffField(name)
				if ok {
					for _, earlier := range names {
						if f, ok := diffField(earlier); ok && f.Name == field.Name {
							return true
						}
					}
					switch field.Name {
					case "Items":
						child = refSlice
					case "Sub":
						child = refStruct
					case "ByID":
						child = refIntMap
					case "Named":
						child = refNameMap
					}
				}
			case refIntMap:
				if n, err := strconv.ParseInt(name, 10, 64); err == nil {
					for _, earlier := range names {
						if m, err := strconv.ParseInt(earlier, 10, 64); err == nil && m == n {
							return true
						}
					}
				}
				child = refStruct
			case refNameMap:
				child = refStruct
			}
			names = append(names, name)
			if refRepeated(t, dec, child) {
				return true
			}
		}
	case json.Delim('['):
		child := refAny
		if kind == refSlice {
			child = refStruct
		}
		for dec.More() {
			if refRepeated(t, dec, child) {
				return true
			}
		}
	default:
		return false
	}
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	return false
}

// diffField returns the field of diffObj encoding/json sets from name.
func diffField(name string) (reflect.StructField, bool) {
	typ := reflect.TypeFor[diffObj]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if bytes.EqualFold([]byte(tag), []byte(name)) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// DecodeJSON refuses a body exactly when encoding/json would set
// something twice decoding it (by a reference built on json.Decoder's
// tokens), decodes any other body as json.Unmarshal does, and gives the
// same result whatever the size of the reads that deliver the body: a
// name, an escape, a surrogate pair or a UTF-8 sequence split between two
// reads included.
func TestDecodeJSONRepeatedNamesDifferential(t *testing.T) {
	targets := []struct {
		name string
		kind refKind
		new  func() any
	}{
		{"any", refAny, func() any { return new(any) }},
		{"struct", refStruct, func() any { return new(diffObj) }},
		{"slice", refSlice, func() any { return new([]diffObj) }},
		{"map[int]", refIntMap, func() any { return new(map[int]diffObj) }},
		{"map[string]", refNameMap, func() any { return new(map[string]diffObj) }},
	}
	r := rand.New(rand.NewPCG(7, 11))
	var repeated, distinct int
	for range 1500 {
		var b strings.Builder
		diffValue(r, &b, 0)
		body := b.String()
		if body[0] != '{' && body[0] != '[' {
			continue // DecodeJSON refuses a top-level null
		}
		for _, tt := range targets {
			want := refRepeated(t, json.NewDecoder(strings.NewReader(body)), tt.kind)
			v := tt.new()
			err := decodeJSON(strings.NewReader(body), 0, v, false)
			if e := As(err); (e != nil && e.Code == "json.duplicate_field") != want {
				t.Fatalf("%s: %s: DecodeJSON = %v, encoding/json sets something twice: %v", tt.name, body, err, want)
			}
			if want {
				repeated++
			} else {
				distinct++
				ref := tt.new()
				refErr := json.Unmarshal([]byte(body), ref)
				if (err == nil) != (refErr == nil) || (err == nil && !reflect.DeepEqual(v, ref)) {
					t.Fatalf("%s: %s: DecodeJSON = %v, %#v; json.Unmarshal = %v, %#v", tt.name, body, err, v, refErr, ref)
				}
			}
			for size := 1; size <= 7; size++ {
				chunked := decodeJSON(&chunkReader{s: body, size: size}, 0, tt.new(), false)
				if fmt.Sprint(chunked) != fmt.Sprint(err) {
					t.Fatalf("%s: %s in reads of %d: %v, in one read: %v", tt.name, body, size, chunked, err)
				}
			}
		}
	}
	if repeated < 1000 || distinct < 1000 {
		t.Fatalf("%d bodies repeat a name, %d do not: the generator needs tuning", repeated, distinct)
	}
}
