package features

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/headstart-ml/headstart/internal/testutil"
)

// readAll reads every row of data, named name, with opts.
func readAll(name, data string, opts ReaderOptions) ([]Row, []string, error) {
	r, err := NewReader(strings.NewReader(data), name, opts)
	if err != nil {
		return nil, nil, err
	}
	var rows []Row
	for r.Next() {
		rows = append(rows, r.Row())
	}
	return rows, r.Columns(), errors.Join(r.Err(), r.Close())
}

// lab and unl build expected rows.
func lab(i int64, text, label string) Row {
	return Row{Index: i, Text: text, Label: label, HasLabel: true}
}
func unl(i int64, text string) Row { return Row{Index: i, Text: text} }

func TestReader(t *testing.T) {
	for _, tc := range []struct {
		name, file, data string
		opts             ReaderOptions
		want             []Row
		cols             []string
		err              error  // sentinel the error must wrap
		msg              string // text the error message must contain
	}{
		{
			name: "csv", file: "data.csv", data: "text,label\nhello world,pos\nbye,neg\n",
			want: []Row{lab(0, "hello world", "pos"), lab(1, "bye", "neg")}, cols: []string{"text", "label"},
		},
		{
			name: "csv quoted fields", file: "data.csv",
			data: "text,label\n\"a, b\",x\n\"she said \"\"hi\"\"\",y\n\"\",z\n",
			want: []Row{lab(0, "a, b", "x"), lab(1, `she said "hi"`, "y"), lab(2, "", "z")},
		},
		{
			name: "csv embedded newlines", file: "d.csv",
			data: "text,label\n\"line one\nline two\",a\nnext,b\n",
			want: []Row{lab(0, "line one\nline two", "a"), lab(1, "next", "b")},
		},
		{
			name: "csv BOM and CRLF", file: "d.csv",
			data: "\ufefftext,label\r\nhello,1\r\n\"multi\r\nline\",2\r\n",
			want: []Row{lab(0, "hello", "1"), lab(1, "multi\nline", "2")}, cols: []string{"text", "label"},
		},
		{
			name: "csv columns in any order, extras ignored", file: "d.csv",
			data: "id,label,text,extra\n7,a,first,x\n8,b,second,y\n",
			want: []Row{lab(0, "first", "a"), lab(1, "second", "b")}, cols: []string{"id", "label", "text", "extra"},
		},
		{
			name: "csv custom columns", file: "d.csv", opts: ReaderOptions{TextCol: "sentence", LabelCol: "y"},
			data: "sentence,y\nok,1\n", want: []Row{lab(0, "ok", "1")},
		},
		{
			name: "csv without label column", file: "d.csv", data: "text\nalpha\nbeta\n",
			want: []Row{unl(0, "alpha"), unl(1, "beta")},
		},
		{
			name: "csv empty label is no label", file: "d.csv", data: "text,label\na,\nb,x\n",
			want: []Row{unl(0, "a"), lab(1, "b", "x")},
		},
		{
			name: "csv blank lines skipped", file: "d.csv", data: "text,label\n\na,1\n\n\nb,2\n",
			want: []Row{lab(0, "a", "1"), lab(1, "b", "2")},
		},
		{
			name: "csv no final newline", file: "d.csv", data: "text,label\na,1", want: []Row{lab(0, "a", "1")},
		},
		{
			name: "csv header only", file: "d.csv", data: "text,label\n", want: nil,
		},
		{
			name: "csv limit", file: "d.csv", opts: ReaderOptions{Limit: 2},
			data: "text,label\na,1\nb,2\nc,3\n", want: []Row{lab(0, "a", "1"), lab(1, "b", "2")},
		},
		{
			name: "csv missing text column", file: "data.csv", opts: ReaderOptions{TextCol: "txt"},
			data: "text,label\na,1\n", err: ErrMissingColumn,
			msg: `column "txt" not found in data.csv; columns: text, label`,
		},
		{
			name: "csv missing required label", file: "data.csv", opts: ReaderOptions{LabelCol: "y", RequireLabel: true},
			data: "text,label\na,1\n", err: ErrMissingColumn,
			msg: `column "y" not found in data.csv; columns: text, label`,
		},
		{
			name: "csv columns with spaces are quoted in the message", file: "data.csv",
			data: "text , label\na,1\n", err: ErrMissingColumn,
			msg: `column "text" not found in data.csv; columns: "text ", " label"`,
		},
		{
			name: "empty csv", file: "data.csv", data: "", err: ErrMissingColumn,
			msg: `column "text" not found in data.csv; columns: (none)`,
		},
		{
			name: "csv duplicate column", file: "data.csv", data: "text,label,text\na,b,c\n", err: ErrDuplicateColumn,
			msg: `column "text" appears twice in data.csv (columns 1 and 3)`,
		},
		{
			name: "csv invalid UTF-8 in text", file: "data.csv", data: "text,label\nok,1\nbad \xff here,2\n",
			want: []Row{lab(0, "ok", "1")}, err: ErrInvalidUTF8,
			msg: "data.csv: line 3 (row 1): text is not valid UTF-8 (byte 0xff at offset 4)",
		},
		{
			name: "csv invalid UTF-8 in label", file: "data.csv", data: "text,label\nok,\xc3\n",
			err: ErrInvalidUTF8, msg: "data.csv: line 2 (row 0): label is not valid UTF-8",
		},
		{
			name: "csv too many fields", file: "data.csv", data: "text,label\na,1\nb,2,3\n",
			want: []Row{lab(0, "a", "1")}, err: ErrMalformedRow,
			msg: "data.csv: line 3 (row 1): 3 fields, want 2 (columns: text, label)",
		},
		{
			name: "csv too few fields after multi-line row", file: "data.csv", data: "text,label\n\"a\nb\",1\nc\n",
			want: []Row{lab(0, "a\nb", "1")}, err: ErrMalformedRow, msg: "data.csv: line 4 (row 1): 1 fields, want 2",
		},
		{
			name: "csv bare quote", file: "data.csv", data: "text,label\nit 's a \"good\" film,1\n",
			err: ErrMalformedRow, msg: "data.csv: line 2 (row 0): a quote",
		},
		{
			name: "csv unterminated quote", file: "data.csv", data: "text,label\n\"never closed,1\n",
			err: ErrMalformedRow, msg: "data.csv: line 2 (row 0)",
		},
		{
			name: "tsv GLUE-style unescaped quotes", file: "dev.tsv",
			data: "sentence\tlabel\nit 's a \"charming\" film\t1\n\"quoted start\t0\n",
			opts: ReaderOptions{TextCol: "sentence"},
			want: []Row{lab(0, `it 's a "charming" film`, "1"), lab(1, `"quoted start`, "0")},
		},
		{
			name: "tsv CRLF, BOM, blank lines, empty text", file: "d.TSV",
			data: "\ufefftext\tlabel\r\n\r\nabc\tx\r\n\ty\r\n",
			want: []Row{lab(0, "abc", "x"), lab(1, "", "y")}, cols: []string{"text", "label"},
		},
		{
			name: "tsv wrong field count", file: "d.tsv", data: "text\tlabel\na\t1\nb\t2\textra\n",
			want: []Row{lab(0, "a", "1")}, err: ErrMalformedRow, msg: "d.tsv: line 3 (row 1): 3 fields, want 2",
		},
		{
			name: "tsv missing column", file: "d.tsv", data: "sentence\tlabel\na\t1\n", err: ErrMissingColumn,
			msg: `column "text" not found in d.tsv; columns: sentence, label`,
		},
		{
			name: "tsv invalid UTF-8", file: "d.tsv", data: "text\tlabel\n\xe2\x82\t1\n", err: ErrInvalidUTF8,
			msg: "d.tsv: line 2 (row 0): text is not valid UTF-8",
		},
		{
			name: "jsonl", file: "d.jsonl",
			data: `{"text": "hello \"you\"\n", "label": "pos"}` + "\n" +
				`{"label": 3, "text": "num", "other": [1,2]}` + "\n\n" +
				`{"text": "nolabel", "label": null}` + "\r\n" +
				`{"text": "absent"}` + "\n" +
				`{"text": "bool", "label": true}` + "\n" +
				`{"text": "float", "label": 1.0}`,
			want: []Row{lab(0, "hello \"you\"\n", "pos"), lab(1, "num", "3"), unl(2, "nolabel"), unl(3, "absent"),
				lab(4, "bool", "true"), lab(5, "float", "1.0")},
			cols: []string{"text", "label"},
		},
		{
			name: "ndjson with BOM and limit", file: "d.ndjson", opts: ReaderOptions{Limit: 1},
			data: "\ufeff{\"text\":\"a\",\"label\":\"x\"}\n{\"text\":\"b\"}\n", want: []Row{lab(0, "a", "x")},
		},
		{
			name: "jsonl missing text key", file: "d.jsonl",
			data: `{"text":"a"}` + "\n" + `{"txt":"b","label":"1"}` + "\n",
			want: []Row{unl(0, "a")}, err: ErrMissingColumn, msg: `d.jsonl: line 2 (row 1): no key "text"; keys: txt, label`,
		},
		{
			name: "jsonl required label key missing", file: "d.jsonl", opts: ReaderOptions{RequireLabel: true},
			data: `{"text":"a","label":null}` + "\n" + `{"text":"b"}` + "\n",
			want: []Row{unl(0, "a")}, err: ErrMissingColumn, msg: `d.jsonl: line 2 (row 1): no key "label"; keys: text`,
		},
		{
			name: "jsonl text not a string", file: "d.jsonl", data: `{"text": 12}`, err: ErrMalformedRow,
			msg: "d.jsonl: line 1 (row 0): text 12 is not a JSON string",
		},
		{
			name: "jsonl label an object", file: "d.jsonl", data: `{"text": "a", "label": {"x": 1}}`, err: ErrMalformedRow,
			msg: "label {\"x\": 1} is not a string, number or boolean",
		},
		{
			name: "jsonl not an object", file: "d.jsonl", data: `{"text":"a"}` + "\n[1,2]\n", want: []Row{unl(0, "a")},
			err: ErrMalformedRow, msg: "d.jsonl: line 2 (row 1): not a JSON object",
		},
		{
			name: "jsonl first line not an object", file: "d.jsonl", data: "\n\nnull\n", err: ErrMalformedRow,
			msg: "d.jsonl: line 3 (row 0): not a JSON object",
		},
		{
			name: "jsonl invalid UTF-8", file: "d.jsonl", data: "{\"text\": \"caf\xe9\"}\n", err: ErrInvalidUTF8,
			msg: "d.jsonl: line 1 (row 0): text is not valid UTF-8",
		},
		{
			name: "jsonl empty", file: "d.jsonl", data: "\n \n", want: nil,
		},
		{
			name: "explicit format overrides extension", file: "data.txt", opts: ReaderOptions{Format: FormatTSV},
			data: "text\na\n", want: []Row{unl(0, "a")},
		},
		{
			name: "unknown extension", file: "data.dat", data: "text\na\n", err: ErrUnknownFormat,
			msg: "cannot tell the format of data.dat from its extension; want .csv, .tsv, .jsonl, .ndjson or .txt, or name the format (csv, tsv, jsonl, text)",
		},
		{
			name: "text: one text per line, CRLF, blank lines skipped, no quoting", file: "data.txt",
			data: "text\r\n\"quoted\", with comma\tand tab\n\n   \nlast without newline",
			want: []Row{unl(0, "text"), unl(1, "\"quoted\", with comma\tand tab"), unl(2, "last without newline")}, cols: []string{"text"},
		},
		{
			name: "text on stdin, format named", file: "-", opts: ReaderOptions{Format: FormatText},
			data: "I lost my card\nwhere is it?\n", want: []Row{unl(0, "I lost my card"), unl(1, "where is it?")},
		},
		{
			name: "text needs no header, empty input", file: "empty.txt", data: "", want: nil, cols: []string{"text"},
		},
		{
			name: "text invalid UTF-8", file: "d.txt", data: "ok\nbad \xff byte\n", err: ErrInvalidUTF8, want: []Row{unl(0, "ok")},
			msg: "d.txt: line 2 (row 1): text is not valid UTF-8",
		},
		{
			name: "text has no labels", file: "d.txt", opts: ReaderOptions{RequireLabel: true}, data: "a\n", err: ErrMissingColumn,
			msg: "d.txt: plain text (one text per line) has no labels",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, cols, err := readAll(tc.file, tc.data, tc.opts)
			if tc.err == nil && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("error %v; want one wrapping %v", err, tc.err)
				}
				if !strings.Contains(err.Error(), tc.msg) {
					t.Errorf("error %q; want it to contain %q", err, tc.msg)
				}
			}
			if !reflect.DeepEqual(rows, tc.want) {
				t.Errorf("rows\n got %#v\nwant %#v", rows, tc.want)
			}
			if tc.cols != nil && !slices.Equal(cols, tc.cols) {
				t.Errorf("columns %q; want %q", cols, tc.cols)
			}
		})
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"": FormatAuto, "auto": FormatAuto, "CSV": FormatCSV, "tsv": FormatTSV,
		"jsonl": FormatJSONL, "ndjson": FormatJSONL, "text": FormatText, "TXT": FormatText} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	_, err := ParseFormat("parquet")
	if !errors.Is(err, ErrUnknownFormat) || err.Error() != `format "parquet" unknown; want one of auto, csv, tsv, jsonl, text` {
		t.Errorf("ParseFormat(parquet): %v", err)
	}
}

// TestReaderLongLine checks a TSV and JSONL line longer than the read buffer.
func TestReaderLongLine(t *testing.T) {
	long := strings.Repeat("word ", 50_000) // 250 kB
	for _, tc := range []struct{ file, data string }{
		{"d.tsv", "text\tlabel\n" + long + "\tx\nshort\ty\n"},
		{"d.jsonl", `{"text":"` + long + `","label":"x"}` + "\n" + `{"text":"short","label":"y"}`},
		{"d.csv", "text,label\n" + long + ",x\nshort,y\n"},
	} {
		rows, _, err := readAll(tc.file, tc.data, ReaderOptions{})
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		want := []Row{lab(0, long, "x"), lab(1, "short", "y")}
		if !reflect.DeepEqual(rows, want) {
			t.Errorf("%s: got %d rows, first text %d bytes", tc.file, len(rows), len(rows[0].Text))
		}
	}
}

func TestOpenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "data.csv")
	if err := os.WriteFile(path, []byte("text,label\na,1\nb,2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for r.Next() {
		n++
	}
	if err := errors.Join(r.Err(), r.Close()); err != nil || n != 2 {
		t.Fatalf("read %d rows, err %v; want 2 rows", n, err)
	}
	if r.Next() {
		t.Error("Next after Close returned true")
	}
	if _, err := Open(filepath.Join(dir, "missing.csv"), ReaderOptions{}); !errors.Is(err, os.ErrNotExist) ||
		!strings.Contains(err.Error(), "missing.csv") {
		t.Errorf("Open(missing): %v", err)
	}
}

func TestScan(t *testing.T) {
	dir := t.TempDir()
	data := "text,label\na,10\n,2\nc,\nd,2\ne,1\n"
	path := filepath.Join(dir, "d.csv")
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(data))
	s, err := Scan(path, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := Summary{Rows: 5, Labelled: 4, EmptyTexts: 1, Labels: []string{"1", "2", "10"},
		Columns: []string{"text", "label"}, SHA256: hex.EncodeToString(sum[:]), Bytes: int64(len(data))}
	s.class = nil // LabelIndex's table, tested in TestLabelNormalisation
	if !reflect.DeepEqual(s, want) {
		t.Errorf("Scan\n got %+v\nwant %+v", s, want)
	}
	// A limit counts fewer rows but still hashes the whole file.
	s, err = Scan(path, ReaderOptions{Limit: 2})
	if err != nil || s.Rows != 2 || s.SHA256 != want.SHA256 || s.Bytes != want.Bytes || !slices.Equal(s.Labels, []string{"2", "10"}) {
		t.Errorf("Scan with limit 2: %+v, %v", s, err)
	}
	// Errors are the reader's.
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("text,label\na,1\nb\n"), 0o644)
	if _, err := Scan(bad, ReaderOptions{}); !errors.Is(err, ErrMalformedRow) {
		t.Errorf("Scan(bad): %v", err)
	}
	if _, err := Scan("-", ReaderOptions{}); err == nil {
		t.Error("Scan(-) succeeded")
	}
}

func TestSortLabels(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"10", "2", "-1", "1"}, []string{"-1", "1", "2", "10"}},
		{[]string{"b", "a", "10", "2"}, []string{"10", "2", "a", "b"}},
		{[]string{"positive", "negative"}, []string{"negative", "positive"}},
	} {
		got := slices.Clone(tc.in)
		SortLabels(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("SortLabels(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

// TestScanSST2 reads the repository's SST-2 dev split (872 rows, two labels).
func TestScanSST2(t *testing.T) {
	path := testutil.Data(t, "sst2/dev.csv")
	s, err := Scan(path, ReaderOptions{RequireLabel: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.Rows != 872 || s.Labelled != 872 || !slices.Equal(s.Labels, []string{"negative", "positive"}) {
		t.Errorf("SST-2 dev: %d rows, %d labelled, labels %q; want 872, 872, [negative positive]", s.Rows, s.Labelled, s.Labels)
	}
}

// csvBench is a synthetic CSV of n SST-2-like rows (seeded).
func csvBench(n int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("the a film movie is of and to it 's charming bleak , . \"quoted\" journey desperate often")
	var b bytes.Buffer
	b.WriteString("text,label\n")
	for range n {
		k := 3 + rng.IntN(30)
		var s strings.Builder
		for j := range k {
			if j > 0 {
				s.WriteByte(' ')
			}
			s.WriteString(words[rng.IntN(len(words))])
		}
		text := s.String()
		if strings.ContainsAny(text, ",\"") {
			text = `"` + strings.ReplaceAll(text, `"`, `""`) + `"`
		}
		fmt.Fprintf(&b, "%s,%s\n", text, []string{"negative", "positive"}[rng.IntN(2)])
	}
	return b.Bytes()
}

func BenchmarkReadCSV(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		data := csvBench(n)
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				r, err := NewReader(bytes.NewReader(data), "bench.csv", ReaderOptions{})
				if err != nil {
					b.Fatal(err)
				}
				rows := 0
				for r.Next() {
					rows++
				}
				if r.Err() != nil || rows != n {
					b.Fatalf("%d rows, %v", rows, r.Err())
				}
			}
		})
	}
}

func ExampleNewReader() {
	data := "text,label\n\"Hello, world\",greeting\nno label here,\n"
	r, err := NewReader(strings.NewReader(data), "data.csv", ReaderOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	for r.Next() {
		row := r.Row()
		fmt.Printf("%d %q %q %v\n", row.Index, row.Text, row.Label, row.HasLabel)
	}
	if err := r.Err(); err != nil {
		fmt.Println(err)
	}
	_, err = NewReader(strings.NewReader(data), "data.csv", ReaderOptions{TextCol: "txt"})
	fmt.Println(err)
	// Output:
	// 0 "Hello, world" "greeting" true
	// 1 "no label here" "" false
	// column "txt" not found in data.csv; columns: text, label
}
