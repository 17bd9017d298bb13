package contract

import (
	"bytes"
	"cmp"
	"encoding"
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// errDuplicateName is what nameScanner.scan returns at a member name
// repeated in one object.
var errDuplicateName = errors.New("contract: repeated member name")

const (
	// maxNameDepth is encoding/json's nesting limit: a deeper body is
	// refused by the decoder, so the scanner stops following it there.
	maxNameDepth = 10000
	// smallObject is the most names an object holds before they are
	// indexed: up to it, a new name is compared with each earlier one.
	smallObject = 32
)

// nameHash is a member name hashed as it is (unescaped) and folded as
// encoding/json folds names to match struct fields case-insensitively.
type nameHash struct{ exact, fold uint64 }

// nameFrame is an array or object the scanner is in.
type nameFrame struct {
	start uint32 // index in nameScanner.names of the object's first name
	elems uint32 // an array's elements before the current one
	flags uint8  // frameObject, frameExpectKey, frameExact, frameStruct
}

const (
	frameObject    uint8 = 1 << iota
	frameExpectKey       // the next string is a member name
	frameExact           // names differing in case are distinct (a map's, an interface's, a custom decoder's other than a struct)
	frameStruct          // names are a struct's fields: frameExt.assigned says which are set
)

// frameExt is the state of a frame that is rarely needed: the index of a
// large object's names, the type the frame decodes into, the fields of a
// struct that are set.
type frameExt struct {
	exact, fold nameIndex // the object's names by hash, past smallObject names; fold nil once resolved
	resolved    bool
	target      jsonTarget
	fields      *structFields
	assigned    []bool
}

// nameSlow is the state of a nameScanner that only large objects and
// names differing in case need.
type nameSlow struct {
	ext     []*frameExt // by frame depth
	structs map[reflect.Type]*structFields
}

// nameScanner finds a member name repeated in one object of JSON text, at
// any depth: the same name after unescaping ("a", "\u0061"), or, in an
// object decoded into a struct, two names encoding/json maps to the same
// field ignoring case ("amount", "AMOUNT", "\u212amount" with a Kelvin
// sign). encoding/json keeps the last of them, where a gateway, signature
// check or log in another language reads the first: a repeated name is
// refused, as RFC 7493 (I-JSON) and Go's encoding/json/v2 do.
//
// It keeps two 64-bit hashes (exact and folded, see hashName) of each name
// of the objects it is in, under a seed drawn for each body: two distinct
// names collide by chance (2^-64 a pair); a repetition always has equal
// hashes and is found. The names of an object are
// compared one by one up to smallObject of them, then through hash sets:
// time and memory linear in the size of the body, and no allocation for a
// small body (at most len(nameBuf) names at a time in the objects it is
// in, each of at most len(keyBuf) bytes if escaped). Whether names
// differing in case are one field depends on the type an object decodes
// into, looked up only when two of its names fold alike: a map or an
// interface keeps "a" and "A" apart, as a struct with fields tagged "a"
// and "A" does.
//
// The scanner follows valid JSON; on invalid JSON it may stop or report a
// repetition before the decoder reports the syntax error, never panic.
type nameScanner struct {
	on     bool  // checking: the target is a non-nil pointer and the body is not too deep
	folded bool  // the repetition found ignores case
	keyAt  int64 // offset of the opening quote of the current name
	seed   uint64
	into   any // what the body decodes into
	frames []nameFrame
	names  []nameHash
	key    []byte // the current name, unescaped, when it has escapes; the repeated one once found
	slow   *nameSlow

	frameBuf [6]nameFrame
	nameBuf  [10]nameHash
	keyBuf   [32]byte
}

// init prepares s to check a body decoded into v; it checks nothing when v
// is not a non-nil pointer (the decoder reports that).
func (s *nameScanner) init(v any) {
	if rv := reflect.ValueOf(v); rv.Kind() != reflect.Pointer || rv.IsNil() {
		return
	}
	s.on = true
	s.seed = rand.Uint64()
	s.into = v
	s.frames, s.names, s.key = s.frameBuf[:0], s.nameBuf[:0], s.keyBuf[:0]
}

// scan returns errDuplicateName at the first repeated name in p, the
// whole JSON text.
func (s *nameScanner) scan(p []byte) error {
	if !s.on {
		return nil
	}
	for i := 0; i < len(p); {
		c := p[i]
		i++
		switch c {
		case '{', '[':
			k := len(s.frames)
			if k == maxNameDepth {
				s.on = false // the decoder refuses it as too deep
				return nil
			}
			f := nameFrame{start: uint32(len(s.names))}
			if c == '{' {
				f.flags = frameObject | frameExpectKey
			}
			s.frames = append(s.frames, f)
			if s.slow != nil && k < len(s.slow.ext) && s.slow.ext[k] != nil {
				*s.slow.ext[k] = frameExt{assigned: s.slow.ext[k].assigned[:0]} // an earlier sibling's, reused
			}
		case '}', ']':
			if n := len(s.frames); n > 0 {
				s.names = s.names[:s.frames[n-1].start]
				s.frames = s.frames[:n-1]
			}
		case ',':
			if n := len(s.frames); n > 0 {
				if f := &s.frames[n-1]; f.flags&frameObject != 0 {
					f.flags |= frameExpectKey
				} else {
					f.elems++
				}
			}
		case '"':
			n := len(s.frames)
			if n == 0 || s.frames[n-1].flags&frameExpectKey == 0 {
				i = stringEnd(p, i)
				continue
			}
			s.frames[n-1].flags &^= frameExpectKey
			s.keyAt = int64(i - 1)
			name, end := s.name(p, i)
			if end < 0 {
				return nil // a syntax error the decoder reports
			}
			i = end
			if s.endName(name) {
				return errDuplicateName
			}
		}
	}
	return nil
}

// stringEnd returns the index in p past the closing quote of the string
// that starts at p[i], past its opening quote, or len(p) if p ends first.
func stringEnd(p []byte, i int) int {
	for i < len(p) {
		j := quoteOrBackslash(p[i:])
		if j < 0 {
			break
		}
		i += j + 1
		if p[i-1] == '"' {
			return i
		}
		i++ // the escaped byte; a \u escape's digits are plain text
	}
	return len(p)
}

// name returns the member name that starts at p[i], past its opening
// quote, unescaped as encoding/json unquotes it (a surrogate pair is one
// rune, an unpaired surrogate U+FFFD): in place in p when it has no
// escape, else in s.key. end is the index past its closing quote, or -1
// when p ends first or an escape is invalid: syntax errors the decoder
// reports.
func (s *nameScanner) name(p []byte, i int) (name []byte, end int) {
	// Most names hold no escape: hashed in place.
	if j := quoteOrBackslash(p[i:]); j >= 0 && p[i+j] == '"' {
		return p[i : i+j], i + j + 1
	}
	s.key = s.key[:0]
	for {
		j := quoteOrBackslash(p[i:])
		if j < 0 {
			return nil, -1
		}
		s.key = append(s.key, p[i:i+j]...)
		i += j + 1
		if p[i-1] == '"' {
			return s.key, i
		}
		if i == len(p) {
			return nil, -1
		}
		c := p[i]
		switch c {
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		case '"', '\\', '/':
		case 'u':
			r := getu4(p[i-1:])
			if r < 0 {
				return nil, -1
			}
			i += 5
			if utf16.IsSurrogate(r) {
				r = utf16.DecodeRune(r, getu4(p[i:])) // U+FFFD unless a pair
				if r != utf8.RuneError {
					i += 6
				}
			}
			s.key = utf8.AppendRune(s.key, r)
			continue
		default:
			return nil, -1
		}
		s.key = append(s.key, c)
		i++
	}
}

// quoteOrBackslash returns the index of the first '"' or '\\' in p, or -1.
func quoteOrBackslash(p []byte) int {
	// Names and most values are short: a loop beats two IndexByte calls.
	for j, c := range p[:min(len(p), 16)] {
		if c == '"' || c == '\\' {
			return j
		}
	}
	if len(p) <= 16 {
		return -1
	}
	j := bytes.IndexByte(p, '"')
	if j < 0 {
		j = len(p)
	}
	if k := bytes.IndexByte(p[:j], '\\'); k >= 0 {
		return k
	}
	if j == len(p) {
		return -1
	}
	return j
}

// endName checks name, just read, against the earlier names of its object
// and reports whether it repeats one (then s.key holds it).
func (s *nameScanner) endName(name []byte) bool {
	k := len(s.frames) - 1
	f := &s.frames[k]
	raw := name
	if len(name) > 1 && (name[0] == '+' || name[0] == '0' || (name[0] == '-' && name[1] == '0')) {
		var buf [24]byte
		name = s.intKey(k, name, buf[:0])
	}
	h := hashName(s.seed, name)
	earlier := s.names[f.start:]
	ext := s.extAt(k)
	caseCheck := f.flags&(frameExact|frameStruct) == 0
	folded, dup := false, false
	if ext != nil && ext.exact != nil {
		dup = ext.exact.has(earlier, h.exact, false)
		if caseCheck {
			folded = ext.fold.has(earlier, h.fold, true)
		}
	} else {
		for _, n := range earlier {
			if n.exact == h.exact {
				dup = true
				break
			}
			folded = folded || n.fold == h.fold
		}
	}
	if !dup && folded && caseCheck {
		s.resolveCase(k)
		ext = s.extAt(k)
	}
	if !dup && f.flags&frameStruct != 0 {
		if i := ext.fields.lookup(h); i >= 0 {
			dup, s.folded = ext.assigned[i], ext.assigned[i]
			ext.assigned[i] = true
		}
	}
	if dup {
		s.key = append(s.key[:0], raw...)
		return true
	}
	if len(s.names) == math.MaxUint32 { // a body of 64 GiB: positions no longer fit
		s.on = false
		return false
	}
	if len(s.names) == cap(s.names) {
		s.names = slices.Grow(s.names, len(s.names)) // doubled, not by append's quarters
	}
	s.names = append(s.names, h)
	all := s.names[f.start:]
	switch {
	case ext != nil && ext.exact != nil && 2*len(all) <= len(ext.exact):
		ext.exact.add(h.exact, len(all)-1)
		if f.flags&(frameExact|frameStruct) == 0 {
			ext.fold.add(h.fold, len(all)-1)
		} else {
			ext.fold = nil
		}
	case len(all) > smallObject:
		// Index the object's names in tables at most half full, made
		// twice as large as it grows: linear time overall.
		ext = s.extOf(k)
		size := 4 * smallObject
		if ext.exact != nil {
			size = 2 * len(ext.exact)
		}
		ext.exact, ext.fold = make(nameIndex, size), nil
		if f.flags&(frameExact|frameStruct) == 0 {
			ext.fold = make(nameIndex, size)
		}
		for i, n := range all {
			ext.exact.add(n.exact, i)
			if ext.fold != nil {
				ext.fold.add(n.fold, i)
			}
		}
	}
	return false
}

// intKey returns name, which is not an integer as strconv.FormatInt
// writes it ("+1", "01", "-0"), as the key encoding/json makes of it in
// the object of frame k: in a map with integer keys, it parses names, so
// "+1", "01" and "1" are one key, appended to buf as "1"; elsewhere, or
// when the name does not parse (an error the decoder reports), name.
func (s *nameScanner) intKey(k int, name, buf []byte) []byte {
	switch t := s.target(k); t.kind {
	case targetIntMap:
		if n, err := strconv.ParseInt(string(name), 10, 64); err == nil && !t.t.Key().OverflowInt(n) {
			return strconv.AppendInt(buf, n, 10)
		}
	case targetUintMap:
		if n, err := strconv.ParseUint(string(name), 10, 64); err == nil && !t.t.Key().OverflowUint(n) {
			return strconv.AppendUint(buf, n, 10)
		}
	}
	return name
}

// nameIndex is an open-addressing hash table of the names of an object,
// by their exact or folded hash: each slot holds 1 + a name's position in
// the object, 0 when empty. It is kept at most half full.
type nameIndex []uint32

// has reports whether one of names has the exact (or, if fold, folded)
// hash h.
func (x nameIndex) has(names []nameHash, h uint64, fold bool) bool {
	mask := uint64(len(x) - 1)
	for i := h & mask; x[i] != 0; i = (i + 1) & mask {
		n := names[x[i]-1]
		if (fold && n.fold == h) || (!fold && n.exact == h) {
			return true
		}
	}
	return false
}

// add records the name at position pos, of hash h.
func (x nameIndex) add(h uint64, pos int) {
	mask := uint64(len(x) - 1)
	i := h & mask
	for x[i] != 0 {
		i = (i + 1) & mask
	}
	x[i] = uint32(pos + 1)
}

// resolveCase decides, for the object of frame k holding two names that
// fold alike, whether such names are one: they are when it decodes into a
// struct, whose fields it then tracks; otherwise (a map, an interface, a
// custom decoder of another kind) only exact repetitions count from then
// on.
func (s *nameScanner) resolveCase(k int) {
	f := &s.frames[k]
	t := s.target(k)
	if t.kind != targetStruct {
		f.flags |= frameExact
		return
	}
	ext := s.extOf(k)
	ext.fields = s.fieldsOf(t.t)
	ext.assigned = slices.Grow(ext.assigned[:0], len(ext.fields.list))[:len(ext.fields.list)]
	clear(ext.assigned)
	// The earlier names fold apart from each other: each sets its own
	// field, or none.
	for _, n := range s.names[f.start:] {
		if i := ext.fields.lookup(n); i >= 0 {
			ext.assigned[i] = true
		}
	}
	f.flags |= frameStruct
}

// extAt returns the frameExt of frame k, or nil.
func (s *nameScanner) extAt(k int) *frameExt {
	if s.slow == nil || k >= len(s.slow.ext) {
		return nil
	}
	return s.slow.ext[k]
}

// extOf returns the frameExt of frame k, made if need be.
func (s *nameScanner) extOf(k int) *frameExt {
	if s.slow == nil {
		s.slow = new(nameSlow)
	}
	for len(s.slow.ext) <= k {
		s.slow.ext = append(s.slow.ext, nil)
	}
	if s.slow.ext[k] == nil {
		s.slow.ext[k] = new(frameExt)
	}
	return s.slow.ext[k]
}

// target returns what frame k decodes into, from the nearest frame above
// it whose target is known (each frame's is looked up once).
func (s *nameScanner) target(k int) jsonTarget {
	i := k
	for i >= 0 && (s.extAt(i) == nil || !s.extAt(i).resolved) {
		i--
	}
	var t jsonTarget
	if i >= 0 {
		t = s.extAt(i).target
	}
	for i++; i <= k; i++ {
		if i == 0 {
			rv := reflect.ValueOf(s.into)
			t = indirectTarget(rv.Type(), rv)
		} else if parent := s.frames[i-1]; parent.flags&frameObject == 0 {
			t = t.elem(false, parent.elems)
		} else if start := s.frames[i].start; start > parent.start {
			t = s.member(t, s.names[start-1]) // the parent's last name is this value's
		} else {
			t = jsonTarget{} // no name: invalid JSON
		}
		ext := s.extOf(i)
		ext.target, ext.resolved = t, true
	}
	return t
}

// member returns what the value of the member named h of an object
// decoded into t decodes into.
func (s *nameScanner) member(t jsonTarget, h nameHash) jsonTarget {
	if t.kind != targetStruct {
		return t.elem(true, 0)
	}
	fs := s.fieldsOf(t.t)
	i := fs.lookup(h)
	if i < 0 {
		return jsonTarget{} // an unknown field: the decoder refuses it
	}
	typ, v := t.t, t.v
	for _, x := range fs.list[i].index {
		if typ.Kind() == reflect.Pointer { // an embedded pointer
			typ = typ.Elem()
			if v.IsValid() && !v.IsNil() {
				v = v.Elem()
			} else {
				v = reflect.Value{}
			}
		}
		if v.IsValid() {
			v = v.Field(x)
		}
		typ = typ.Field(x).Type
	}
	return indirectTarget(typ, v)
}

func (s *nameScanner) fieldsOf(t reflect.Type) *structFields {
	if s.slow == nil {
		s.slow = new(nameSlow)
	}
	if fs, ok := s.slow.structs[t]; ok {
		return fs
	}
	if s.slow.structs == nil {
		s.slow.structs = make(map[reflect.Type]*structFields)
	}
	fs := newStructFields(t, s.seed)
	s.slow.structs[t] = fs
	return fs
}

// duplicateError is the error of the repeated name s found.
func (s *nameScanner) duplicateError() *Error {
	name := clip(string(s.key))
	at := strconv.FormatInt(s.keyAt, 10)
	if s.folded {
		const reason = "repeats a field whose name differs only in case"
		return &Error{Kind: KindMalformed, Code: "json.duplicate_field",
			Detail: "field " + strconv.Quote(name) + " at offset " + at + " " + reason,
			Fields: []FieldError{{Name: name, Reason: reason}}}
	}
	return &Error{Kind: KindMalformed, Code: "json.duplicate_field",
		Detail: "field " + strconv.Quote(name) + " is repeated at offset " + at,
		Fields: []FieldError{{Name: name, Reason: "is repeated"}}}
}

// checkNames returns the json.duplicate_field error of the first member
// name repeated in the JSON text b decoded into v, or nil.
func checkNames(b []byte, v any) *Error {
	var s nameScanner
	s.init(v)
	if s.scan(b) != nil {
		return s.duplicateError()
	}
	return nil
}

// Multipliers of wyhash, whose mixing step (mum) hashName uses.
const (
	hashK0 = 0xa0761d6478bd642f
	hashK1 = 0xe7037ed1a0b428db
	hashK2 = 0x8ebc6af09c88c6e3
)

// mum multiplies a and b into 128 bits and folds them into 64.
func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hashName returns the hashes of a name as it is and folded as
// encoding/json folds names to match a struct field: ASCII letters
// upper-cased, every other rune replaced by the smallest rune of its case
// folding orbit (so "k", "K" and the Kelvin sign fold alike). Both are
// hashBytes of those bytes: eight bytes a round of wyhash's mixing step,
// in registers (two distinct names collide by chance, 2^-64 a pair). A
// name that is not valid UTF-8 (checkNames is given bytes nothing checked)
// is hashed as encoding/json unquotes it: each invalid byte is U+FFFD.
func hashName(seed uint64, name []byte) nameHash {
	exact, fold := seed, seed
	var any8 uint64 // the bits of every byte: bit 7 set for a name that is not ASCII
	i := 0
	for ; i+8 <= len(name); i += 8 {
		w := binary.LittleEndian.Uint64(name[i:])
		any8 |= w
		exact = mum(w^hashK0, exact^hashK1)
		fold = mum(upperASCII(w)^hashK0, fold^hashK1)
	}
	var tail uint64
	for j := len(name) - 1; j >= i; j-- {
		tail = tail<<8 | uint64(name[j])
	}
	any8 |= tail
	n := uint64(len(name)) << 56 // above the seven bytes a tail has at most
	h := nameHash{exact: mum((tail|n)^hashK0, exact^hashK2)}
	if any8&0x8080808080808080 != 0 {
		if !utf8.Valid(name) {
			return hashName(seed, validUTF8(name))
		}
		h.fold = hashBytes(seed, foldUnicode(name))
	} else {
		h.fold = mum((upperASCII(tail)|n)^hashK0, fold^hashK2)
	}
	return h
}

// hashBytes is hashName's hash of b as it is.
func hashBytes(seed uint64, b []byte) uint64 {
	h := seed
	i := 0
	for ; i+8 <= len(b); i += 8 {
		h = mum(binary.LittleEndian.Uint64(b[i:])^hashK0, h^hashK1)
	}
	var tail uint64
	for j := len(b) - 1; j >= i; j-- {
		tail = tail<<8 | uint64(b[j])
	}
	return mum((tail|uint64(len(b))<<56)^hashK0, h^hashK2)
}

// upperASCII upper-cases the ASCII bytes of w that are 'a' to 'z'.
func upperASCII(w uint64) uint64 {
	const hi = 0x8080808080808080
	atLeastA := (w &^ hi) + 0x1f1f1f1f1f1f1f1f // bit 7 set in bytes >= 'a' (of their low 7 bits)
	pastZ := (w &^ hi) + 0x0505050505050505    // bit 7 set in bytes > 'z'
	return w - (atLeastA&^pastZ&^w&hi)>>2
}

// foldUnicode folds name, which is not ASCII, as hashName describes.
func foldUnicode(name []byte) []byte {
	out := make([]byte, 0, len(name))
	for i := 0; i < len(name); {
		if c := name[i]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			out = append(out, c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(name[i:])
		out = utf8.AppendRune(out, foldRune(r))
		i += size
	}
	return out
}

// validUTF8 returns b with each byte that does not start a valid UTF-8
// sequence replaced by U+FFFD, as encoding/json unquotes a string (unlike
// bytes.ToValidUTF8, which replaces a run of them by one).
func validUTF8(b []byte) []byte {
	out := make([]byte, 0, len(b)+8)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		out = utf8.AppendRune(out, r)
		b = b[size:]
	}
	return out
}

// foldRune returns the smallest rune of r's case folding orbit.
func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}

// jsonTarget is what a JSON value decodes into, as far as member names are
// concerned.
type jsonTarget struct {
	kind targetKind
	t    reflect.Type  // the struct, map, slice or array type
	v    reflect.Value // the struct, slice or array itself when it exists (reached from the target through fields, elements and non-nil pointers)
}

type targetKind uint8

const (
	targetOther  targetKind = iota // a json.Unmarshaler that is not a struct, a type error, an unknown field: names are compared exactly
	targetAny                      // an empty interface: map[string]any, []any
	targetStruct                   // names match fields, exactly or else ignoring case
	targetMap
	targetIntMap  // a map whose keys encoding/json parses with strconv.ParseInt
	targetUintMap // a map whose keys encoding/json parses with strconv.ParseUint
	targetSeq     // a slice or an array
)

// elem returns what the members (object) or element i of a value decoded
// into t decode into. encoding/json decodes a map's members into new
// values, but an array's elements into those the slice (up to its
// capacity) or array holds, and drops those past an array's length.
func (t jsonTarget) elem(object bool, i uint32) jsonTarget {
	switch {
	case t.kind == targetAny:
		return t
	case t.kind >= targetMap && t.kind <= targetUintMap && object:
		return indirectTarget(t.t.Elem(), reflect.Value{})
	case t.kind == targetSeq && !object:
		if t.t.Kind() == reflect.Array && int64(i) >= int64(t.t.Len()) {
			return jsonTarget{}
		}
		var v reflect.Value
		if t.v.IsValid() && int64(i) < int64(t.v.Cap()) {
			v = t.v
			if v.Kind() == reflect.Slice {
				v = v.Slice(0, v.Cap())
			}
			v = v.Index(int(i))
		}
		return indirectTarget(t.t.Elem(), v)
	}
	return jsonTarget{}
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// indirectTarget follows pointers and interfaces as encoding/json's
// indirect does: a non-nil interface holding a non-nil pointer is decoded
// into what it points to, an empty one takes a map[string]any; a type
// whose pointer has an UnmarshalJSON (or UnmarshalText) method decodes
// itself. A struct type is taken to decode its object as a struct does
// even then: its method most often hands it to encoding/json as a type
// without the method (type plain T; json.Unmarshal(b, (*plain)(t))),
// which matches names to fields ignoring case; and encoding/json decodes
// an unnamed struct with a method promoted from an embedded field as a
// struct.
func indirectTarget(t reflect.Type, v reflect.Value) jsonTarget {
	for {
		if t.Kind() == reflect.Pointer {
			if t.Elem().Kind() != reflect.Struct && (t.Implements(jsonUnmarshaler) || t.Implements(textUnmarshaler)) {
				return jsonTarget{}
			}
			t = t.Elem()
			if v.IsValid() && !v.IsNil() {
				v = v.Elem()
			} else {
				v = reflect.Value{}
			}
			continue
		}
		if pt := reflect.PointerTo(t); t.Kind() != reflect.Struct && (pt.Implements(jsonUnmarshaler) || pt.Implements(textUnmarshaler)) {
			return jsonTarget{}
		}
		switch t.Kind() {
		case reflect.Interface:
			if v.IsValid() && !v.IsNil() {
				if e := v.Elem(); e.Kind() == reflect.Pointer && !e.IsNil() {
					t, v = e.Type(), e
					continue
				}
			}
			if t.NumMethod() == 0 {
				return jsonTarget{kind: targetAny}
			}
		case reflect.Struct:
			return jsonTarget{kind: targetStruct, t: t, v: v}
		case reflect.Map:
			// encoding/json decodes a key with UnmarshalText if its type
			// has one, else parses an integer key.
			kind := targetMap
			if k := t.Key(); !reflect.PointerTo(k).Implements(textUnmarshaler) {
				switch k.Kind() {
				case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
					kind = targetIntMap
				case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
					kind = targetUintMap
				}
			}
			return jsonTarget{kind: kind, t: t}
		case reflect.Slice, reflect.Array:
			return jsonTarget{kind: targetSeq, t: t, v: v}
		}
		return jsonTarget{}
	}
}

// structFields are the fields encoding/json decodes a struct's members
// into, by the rules of its typeFields: exported fields (and those of
// embedded structs, promoted unless hidden by a shallower or tagged field
// of the same name), named by their tag or Go name, in index order.
type structFields struct {
	list        []structField
	exact, fold map[uint64]int // name hash to position in list; fold: the first field in index order
}

type structField struct {
	name  string
	index []int
	tag   bool
}

// lookup returns the position of the field a member name sets, as
// encoding/json matches it (the field of that exact name, else the first
// whose name folds alike), or -1.
func (fs *structFields) lookup(h nameHash) int {
	if i, ok := fs.exact[h.exact]; ok {
		return i
	}
	if i, ok := fs.fold[h.fold]; ok {
		return i
	}
	return -1
}

func newStructFields(t reflect.Type, seed uint64) *structFields {
	list := jsonFields(t)
	fs := &structFields{list: list, exact: make(map[uint64]int, len(list)), fold: make(map[uint64]int, len(list))}
	for i, f := range list {
		h := hashName(seed, []byte(f.name))
		fs.exact[h.exact] = i
		if !mapHas(fs.fold, h.fold) {
			fs.fold[h.fold] = i
		}
	}
	return fs
}

func mapHas(m map[uint64]int, k uint64) bool {
	_, ok := m[k]
	return ok
}

// jsonFields lists the fields of struct type t as encoding/json's
// typeFields does, in index order.
func jsonFields(t reflect.Type) []structField {
	type queued struct {
		typ   reflect.Type
		index []int
	}
	var current []queued
	next := []queued{{typ: t}}
	var count, nextCount map[reflect.Type]int
	visited := map[reflect.Type]bool{}
	var fields []structField
	for len(next) > 0 {
		current, next = next, current[:0]
		count, nextCount = nextCount, map[reflect.Type]int{}
		for _, f := range current {
			if visited[f.typ] {
				continue
			}
			visited[f.typ] = true
			for i := range f.typ.NumField() {
				sf := f.typ.Field(i)
				if sf.Anonymous {
					ft := sf.Type
					if ft.Kind() == reflect.Pointer {
						ft = ft.Elem()
					}
					if !sf.IsExported() && ft.Kind() != reflect.Struct {
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, _, _ := strings.Cut(tag, ",")
				if !isValidTag(name) {
					name = ""
				}
				index := append(slices.Clone(f.index), i)
				ft := sf.Type
				if ft.Name() == "" && ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if name != "" || !sf.Anonymous || ft.Kind() != reflect.Struct {
					tagged := name != ""
					if name == "" {
						name = sf.Name
					}
					fields = append(fields, structField{name: name, index: index, tag: tagged})
					if count[f.typ] > 1 {
						// Two embeddings of one type at this depth:
						// the duplicate annihilates the field.
						fields = append(fields, fields[len(fields)-1])
					}
					continue
				}
				nextCount[ft]++
				if nextCount[ft] == 1 {
					next = append(next, queued{typ: ft, index: index})
				}
			}
		}
	}
	slices.SortFunc(fields, func(a, b structField) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		if c := cmp.Compare(len(a.index), len(b.index)); c != 0 {
			return c
		}
		if a.tag != b.tag {
			if a.tag {
				return -1
			}
			return 1
		}
		return slices.Compare(a.index, b.index)
	})
	out := fields[:0]
	for advance, i := 0, 0; i < len(fields); i += advance {
		name := fields[i].name
		for advance = 1; i+advance < len(fields) && fields[i+advance].name == name; advance++ {
		}
		group := fields[i : i+advance]
		// The shallowest field dominates, a tagged one among equals;
		// two equals cancel each other (an error in Go).
		if len(group) > 1 && len(group[0].index) == len(group[1].index) && group[0].tag == group[1].tag {
			continue
		}
		out = append(out, group[0])
	}
	slices.SortFunc(out, func(a, b structField) int { return slices.Compare(a.index, b.index) })
	return out
}

// isValidTag is encoding/json's rule for a name in a json tag.
func isValidTag(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case !unicode.IsLetter(c) && !unicode.IsDigit(c):
			return false
		}
	}
	return true
}
