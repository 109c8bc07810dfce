package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/headstart-ml/headstart"
	"github.com/headstart-ml/headstart/features"
)

func TestDecodeRequest(t *testing.T) {
	lim := Limits{MaxBodyBytes: 200, MaxTexts: 3, MaxTextBytes: 10}
	for _, tc := range []struct {
		body   string
		want   []string
		status int
	}{
		{`{"texts": ["a", "b c"]}`, []string{"a", "b c"}, 0},
		{` {"texts":["é\u00e9\n"]} `, []string{"éé\n"}, 0},
		{`{"texts": ["a"], "texts": ["b"]}`, nil, 400}, // a repeated key is refused, not last-wins
		{`{"texts": ["a"], "te\u0078ts": ["b"]}`, nil, 400},
		{`{"TEXTS": ["a"]}`, nil, 400}, // keys are case-sensitive
		{`{"Texts": ["a"]}`, nil, 400},
		{`{"texts": ["a"], "Texts": ["b"]}`, nil, 400},
		{`{"texts": ["a"], "x": 1}`, nil, 400}, // unknown keys are refused
		{`{"texts": null}`, nil, 400},
		{`[["a"]]`, nil, 400},
		{`{"texts": [" "]}`, nil, 400}, // only whitespace or control characters: refused as empty
		{`{"texts": ["a", "\t\n\r\u3000"]}`, nil, 400},
		{`{"texts": ["\u0000\u200b\ufeff"]}`, nil, 400},
		{`{"texts": [" a "]}`, []string{" a "}, 0},
		{`{"texts": ["a", "b", "c", "d"]}`, nil, 413},
		{`{"texts": ["0123456789x"]}`, nil, 413},
		{`{"texts": ["` + strings.Repeat("a", 300) + `"]}`, nil, 413},
		{`{"texts": [""]}`, nil, 400},
		{`{"texts": [true]}`, nil, 400},
		{`{"texts": [1e999]}`, nil, 400},
		{`{"texts": "a"}`, nil, 400},
		{`{"texts": []}`, nil, 400},
		{`{"texts": ["a"]`, nil, 400},
		{`{"texts": ["a"]} {"texts": ["b"]}`, nil, 400},
		{`"texts"`, nil, 400},
		{`42`, nil, 400},
		{"\xef\xbb\xbf{\"texts\": [\"a\"]}", nil, 400}, // a byte order mark is not JSON
		{"{\"texts\": [\"a\x00\"]}", nil, 400},         // raw control characters are not JSON
		{`{"texts": ["a\u0000"]}`, []string{"a\x00"}, 0},
	} {
		got, err := DecodeRequest(strings.NewReader(tc.body), lim)
		if tc.status == 0 {
			if err != nil || strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("%q: %q, %v; want %q", tc.body, got, err, tc.want)
			}
			continue
		}
		var re *RequestError
		if !errors.As(err, &re) || re.Status != tc.status || re.Msg == "" {
			t.Errorf("%q: %v; want a RequestError with status %d", tc.body, err, tc.status)
		}
	}
	// A body reader that fails is a 400; one cut by http.MaxBytesReader a 413.
	if _, err := DecodeRequest(failingReader{}, lim); !isStatus(err, 400) {
		t.Errorf("failing reader: %v", err)
	}
	big := http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(strings.NewReader(strings.Repeat(" ", 100))), 50)
	if _, err := DecodeRequest(big, Limits{}); !isStatus(err, 413) {
		t.Errorf("MaxBytesReader: %v", err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func isStatus(err error, status int) bool {
	var re *RequestError
	return errors.As(err, &re) && re.Status == status
}

// FuzzDecodeRequest: any body is either accepted, giving texts within the limits, or
// refused with a 4xx RequestError; nothing panics. An accepted request re-encoded
// decodes to the same texts.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"texts": ["hello", "world"]}`, `{"texts": []}`, `{"texts": [null]}`, `{"texts": "a"}`,
		`{"texts": ["a\ud800b"]}`, `{"texts": ["\u00e9"], "x": 1}`, `[["a"]]`, `{"texts": [1, {}]}`,
		"{\"texts\": [\"\xff\"]}", `{"texts": ["` + strings.Repeat("ab", 40) + `"]}`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	lim := Limits{MaxBodyBytes: 4096, MaxTexts: 8, MaxTextBytes: 64}
	f.Fuzz(func(t *testing.T, body []byte) {
		texts, err := DecodeRequest(bytes.NewReader(body), lim)
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) || re.Status < 400 || re.Status > 499 || re.Msg == "" || !utf8.ValidString(re.Msg) {
				t.Fatalf("error %#v is not a 4xx RequestError with a message", err)
			}
			if texts != nil {
				t.Fatal("texts returned with an error")
			}
			return
		}
		if len(texts) == 0 || len(texts) > lim.MaxTexts {
			t.Fatalf("%d texts accepted", len(texts))
		}
		for i, s := range texts {
			if features.Blank(s) || len(s) > lim.MaxTextBytes || !utf8.ValidString(s) {
				t.Fatalf("text %d %q accepted", i, s)
			}
		}
		again, err := DecodeRequest(strings.NewReader(textsBody(texts...)), Limits{})
		if err != nil || strings.Join(again, "\x00") != strings.Join(texts, "\x00") {
			t.Fatalf("re-encoded request decodes to %q, %v; want %q", again, err, texts)
		}
	})
}

// FuzzHandler sends arbitrary methods, paths and bodies through the whole handler with
// a real model: every answer is a valid JSON object (or the metrics text) with a status
// below 500, and a 200 to /v1/* holds one result per text.
func FuzzHandler(f *testing.F) {
	for _, s := range []struct{ method, path, body string }{
		{"POST", RouteEmbed, `{"texts": ["hello"]}`},
		{"POST", RouteClassify, `{"texts": ["I lost my card", "x"]}`},
		{"POST", RouteClassify, `{"texts": [1]}`},
		{"GET", RouteHealth, ``},
		{"GET", RouteMetrics, ``},
		{"PUT", "/v1/embed/../classify", `{}`},
		{"POST", RouteEmbed, "{\"texts\": [\"\xff\"]}"},
	} {
		f.Add(s.method, s.path, []byte(s.body))
	}
	m := openModel(f, headstart.OpenOptions{Threads: 1, Batching: true})
	srv := New(m, Options{Limits: Limits{MaxBodyBytes: 2048, MaxTexts: 4, MaxTextBytes: 256}, ErrorLog: log.New(io.Discard, "", 0)})
	f.Fuzz(func(t *testing.T, method, path string, body []byte) {
		req, err := http.NewRequest(method, "http://localhost/", bytes.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		req.URL.Path = path
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		res := rec.Result()
		got := rec.Body.Bytes()
		if res.StatusCode >= 500 {
			t.Fatalf("%s %q %q: %d %s", method, path, body, res.StatusCode, got)
		}
		if path == RouteMetrics && res.StatusCode == 200 {
			return
		}
		var obj map[string]any
		if err := json.Unmarshal(got, &obj); err != nil {
			t.Fatalf("%s %q %q: %d, answer not a JSON object: %v: %s", method, path, body, res.StatusCode, err, got)
		}
		if res.StatusCode != 200 {
			if msg, _ := obj["error"].(string); msg == "" {
				t.Fatalf("%d without an error message: %s", res.StatusCode, got)
			}
			return
		}
		if path == RouteEmbed || path == RouteClassify {
			texts, err := DecodeRequest(bytes.NewReader(body), srv.lim)
			if err != nil {
				t.Fatalf("200 for a body DecodeRequest refuses: %v", err)
			}
			key := "embeddings"
			if path == RouteClassify {
				key = "results"
			}
			if rows, _ := obj[key].([]any); len(rows) != len(texts) {
				t.Fatalf("%d %s for %d texts", len(rows), key, len(texts))
			}
		}
	})
}
