package features

import "testing"

func TestBlank(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"", true},
		{" ", true},
		{"\t\n\r\v\f", true},
		{"\u00a0\u3000\u2028", true}, // no-break, ideographic and line separator spaces
		{"\x00\x07\x1b", true},       // control characters (Cc)
		{"\u200b\ufeff\u00ad", true}, // zero-width space, byte order mark, soft hyphen (Cf)
		{" \x00 \u200b ", true},
		{"a", false},
		{" a ", false},
		{"\u0301", false}, // a lone combining mark is a character the tokenizer keeps
		{".", false},
		{"\xff", false}, // invalid UTF-8 is not blank (the reader refuses it on its own)
	} {
		if got := Blank(tc.s); got != tc.want {
			t.Errorf("Blank(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}
