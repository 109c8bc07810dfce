package features

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestSpecDefaults(t *testing.T) {
	got := Spec{Pooling: " CLS "}.WithDefaults()
	want := Spec{Pooling: "cls", Layers: []int{-1}, MaxLen: DefaultMaxLen}
	if err := got.Compare(want); err != nil {
		t.Fatal(err)
	}
	if got := (Spec{}).WithDefaults().String(); got != "pooling=mean layers=-1 normalize=false max_len=128" {
		t.Errorf("canonical default: %q", got)
	}
	// WithDefaults copies Layers: changing the result does not touch DefaultLayers.
	d := Spec{}.WithDefaults()
	d.Layers[0] = 7
	if DefaultLayers[0] != -1 {
		t.Fatalf("WithDefaults shares DefaultLayers")
	}
}

func TestSpecFill(t *testing.T) {
	card := Spec{Pooling: "cls", Normalize: true, MaxLen: 512, Prefix: "query: "}
	cases := []struct {
		name string
		in   Spec
		want string
	}{
		{"zero takes the card", Spec{}, `pooling=cls layers= normalize=true max_len=512 prefix="query: "`},
		{"given fields stay", Spec{Pooling: "max", Layers: []int{-2, -1}, MaxLen: 64, Prefix: "passage: "},
			`pooling=max layers=-2,-1 normalize=true max_len=64 prefix="passage: "`},
	}
	for _, c := range cases {
		if got := c.in.Fill(card).String(); got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	cases := []struct {
		spec Spec
		kind error
		msg  string
	}{
		{Spec{}, nil, ""},
		{Spec{Pooling: "avg"}, ErrUnknownPooling, `pooling "avg" unknown; want one of mean, cls, max, last`},
		{Spec{MaxLen: 1}, ErrBadSpec, "max_len 1 must be at least 2"},
		{Spec{Layers: []int{-1, -1}}, ErrBadSpec, "name layer -1 twice"},
	}
	for _, c := range cases {
		err := c.spec.Validate()
		if c.kind == nil {
			if err != nil {
				t.Errorf("%v: %v", c.spec, err)
			}
			continue
		}
		if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%v: got %v, want %v containing %q", c.spec, err, c.kind, c.msg)
		}
	}
}

func TestSpecCompare(t *testing.T) {
	a := Spec{Pooling: "mean", Layers: []int{6}, Normalize: true, MaxLen: 256}
	if err := a.Compare(a.Clone()); err != nil {
		t.Fatal(err)
	}
	b := a.Clone()
	b.Pooling, b.Prefix = "cls", "query: "
	err := a.Compare(b)
	if !errors.Is(err, ErrSpecMismatch) {
		t.Fatalf("got %v, want ErrSpecMismatch", err)
	}
	if want := `pooling mean vs cls; prefix "" vs "query: "`; !strings.Contains(err.Error(), want) {
		t.Errorf("got %q, want it to name %q", err, want)
	}
	// Every field is compared.
	for _, f := range []func(*Spec){
		func(s *Spec) { s.Pooling = "max" }, func(s *Spec) { s.Layers = []int{5} },
		func(s *Spec) { s.Normalize = false }, func(s *Spec) { s.MaxLen = 128 }, func(s *Spec) { s.Prefix = "x" },
	} {
		c := a.Clone()
		f(&c)
		if d := a.Diff(c); len(d) != 1 {
			t.Errorf("%v vs %v: diff %v, want one field", a, c, d)
		}
	}
}

// TestSpecJSON: a Spec embedded in a record writes the fields stores and heads always
// had, adds prefix only when set, and reads files written before it existed.
func TestSpecJSON(t *testing.T) {
	type record struct {
		Name string `json:"name"`
		Spec
		Dim int `json:"dim"`
	}
	b, err := json.Marshal(record{Name: "x", Spec: Spec{Pooling: "mean", Layers: []int{6}, MaxLen: 128}, Dim: 3})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"name":"x","pooling":"mean","layers":[6],"normalize":false,"max_len":128,"dim":3}`; string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
	var r record
	if err := json.Unmarshal([]byte(`{"name":"x","pooling":"cls","layers":[6],"normalize":true,"max_len":512,"prefix":"query: ","dim":3}`), &r); err != nil {
		t.Fatal(err)
	}
	if r.Spec.String() != `pooling=cls layers=6 normalize=true max_len=512 prefix="query: "` || r.Dim != 3 {
		t.Errorf("read %+v", r)
	}
}
