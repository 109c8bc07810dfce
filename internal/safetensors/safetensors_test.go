package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestEncodeParse(t *testing.T) {
	tensors := []Tensor{
		{Name: "b", Dtype: "F32", Shape: []int64{2, 3}, Begin: 16, End: 40},
		{Name: "a", Dtype: "I64", Shape: []int64{2}, Begin: 0, End: 16},
		{Name: "empty", Dtype: "U8", Shape: []int64{0, 4}, Begin: 40, End: 40},
	}
	meta := map[string]string{"k": `{"json":"in a string"}`, "z": "2"}
	hdr, err := Encode(meta, tensors)
	if err != nil {
		t.Fatal(err)
	}
	if len(hdr)%8 != 0 || binary.LittleEndian.Uint64(hdr) != uint64(len(hdr)-8) {
		t.Fatalf("header of %d bytes, length prefix %d: want a multiple of 8 and the rest's length", len(hdr), binary.LittleEndian.Uint64(hdr))
	}
	// The layout every reader relies on: metadata first, tensors in the order given.
	want := `{"__metadata__":{"k":"{\"json\":\"in a string\"}","z":"2"},"b":{"dtype":"F32","shape":[2,3],"data_offsets":[16,40]},`
	if !strings.HasPrefix(string(hdr[8:]), want) {
		t.Fatalf("header %s\nwant it to start %s", hdr[8:], want)
	}
	file := append(hdr, make([]byte, 40)...)
	f, err := Parse(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.Meta, meta) || f.Base != int64(len(hdr)) || !reflect.DeepEqual(f.Names(), []string{"a", "b", "empty"}) {
		t.Fatalf("parsed %+v", f)
	}
	for _, x := range tensors {
		if !reflect.DeepEqual(f.Tensors[x.Name], x) {
			t.Errorf("tensor %s: %+v; want %+v", x.Name, f.Tensors[x.Name], x)
		}
	}
}

func TestParseInvalid(t *testing.T) {
	file := func(h string, data int) []byte {
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
		return append(append(b, h...), make([]byte, data)...)
	}
	cases := []struct {
		name string
		b    []byte
		msg  string
	}{
		{"short", []byte{1, 2}, "too short"},
		{"huge header", binary.LittleEndian.AppendUint64(nil, 1<<40), "does not fit"},
		{"zero header", file("", 0), "header length 0"},
		{"not an object", file("[1]", 0), "does not start with '{'"},
		{"bad JSON", file("{x", 0), "not valid JSON"},
		{"metadata not strings", file(`{"__metadata__":{"n":1}}`, 0), "not a map of strings"},
		{"unknown dtype", file(`{"t":{"dtype":"Q7","shape":[1],"data_offsets":[0,1]}}`, 1), "dtype \"Q7\" unknown"},
		{"shape disagrees", file(`{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, 4), "does not match"},
		{"negative dim", file(`{"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, 4), "does not match"},
		{"overflow", file(`{"t":{"dtype":"F64","shape":[4611686018427387904,4],"data_offsets":[0,8]}}`, 8), "does not match"},
		{"gap", file(`{"t":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, 2), "gap or overlap"},
		{"overlap", file(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}`, 3), "gap or overlap"},
		{"trailing bytes", file(`{"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, 2), "truncated or corrupt"},
		{"truncated", file(`{"t":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}`, 3), "truncated or corrupt"},
	}
	for _, c := range cases {
		_, err := Parse(bytes.NewReader(c.b), int64(len(c.b)))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v; want ErrInvalid saying %q", c.name, err, c.msg)
		}
	}
}
