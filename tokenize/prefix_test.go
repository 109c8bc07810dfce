package tokenize

import (
	"errors"
	"slices"
	"testing"
)

// TestPrefix: Options.Prefix encodes every text as the prefixed text would be, and
// counts against MaxLen; errors still point into the caller's text.
func TestPrefix(t *testing.T) {
	path := modelTokenizer(t, "all-minilm-l6-v2")
	plain, err := Load(path, Options{MaxLen: 8})
	if err != nil {
		t.Fatal(err)
	}
	pre, err := Load(path, Options{MaxLen: 8, Prefix: "query: "})
	if err != nil {
		t.Fatal(err)
	}
	if pre.Prefix() != "query: " || plain.Prefix() != "" {
		t.Fatalf("Prefix() = %q, %q", pre.Prefix(), plain.Prefix())
	}
	for _, text := range []string{"How do I top up my card?", "", "Café naïve résumé"} {
		got, err := pre.Encode(text)
		if err != nil {
			t.Fatal(err)
		}
		want, err := plain.Encode("query: " + text)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.IDs, want.IDs) || got.NumTokens != want.NumTokens || got.Truncated != want.Truncated {
			t.Errorf("%q: prefixed %v (%d), want %v (%d)", text, got.IDs, got.NumTokens, want.IDs, want.NumTokens)
		}
		none, _ := plain.Encode(text)
		if slices.Equal(got.IDs, none.IDs) {
			t.Errorf("%q: the prefix changed nothing", text)
		}
	}
	if _, err := pre.Encode("ok \xff"); !errors.Is(err, ErrInvalidUTF8) || err.Error() != "tokenize: invalid UTF-8 at byte 3" {
		t.Errorf("invalid UTF-8: %v", err)
	}
	if _, err := Load(path, Options{Prefix: "\xff"}); !errors.Is(err, ErrOption) {
		t.Errorf("invalid prefix: %v", err)
	}
}
