package tokenize

import (
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"

	"github.com/headstart-ml/headstart/internal/testutil"
)

// TestNormalFormsAligned checks that the aligned NFC, NFD, NFKC and NFKD give
// the same text as golang.org/x/text on the corpus (texts holding the
// nfdKeep code points aside), with one span per code point, each inside the
// text. Texts with more than 30 non-starters in a row are left out: there Go
// inserts U+034F (the stream-safe format) and orders the marks on either side
// of it separately; the Rust library does not, nor does nfNorm.
func TestNormalFormsAligned(t *testing.T) {
	corpus := buildCorpus(t, testutil.DataDir())
	for _, f := range []struct {
		name string
		form norm.Form
	}{{"NFC", norm.NFC}, {"NFD", norm.NFD}, {"NFKC", norm.NFKC}, {"NFKD", norm.NFKD}} {
		bad := 0
		for _, c := range corpus {
			if strings.ContainsRune(c.text, 0x11938) {
				continue
			}
			n := nfNorm{f.form}.normalize(newNormStr(c.text, 0))
			want := f.form.String(c.text)
			if strings.Count(want, "\u034f") > strings.Count(c.text, "\u034f") {
				continue
			}
			if got := string(n.r); got != want || len(n.o) != len(n.r) {
				bad++
				if bad < 4 {
					t.Errorf("%s(%+q) = %+q; want %+q", f.name, c.text, got, want)
				}
				continue
			}
			for _, sp := range n.o {
				if sp.start < 0 || sp.end > int32(len(c.text)) || sp.start > sp.end {
					t.Fatalf("%s(%+q): span %v outside the text", f.name, clip(c.text), sp)
				}
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d texts differ", f.name, bad)
		}
	}
}
