package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/headstart-ml/headstart/features"
)

// Limits bound what one request may ask for. The zero value applies the defaults.
type Limits struct {
	// MaxBodyBytes is the largest request body. Default 1 MiB.
	MaxBodyBytes int64
	// MaxTexts is the most texts one request may hold. Default 256.
	MaxTexts int
	// MaxTextBytes is the longest text, in bytes. Default 16 KiB. (Texts longer than
	// the model's max_len tokens are accepted, truncated and reported as such.)
	MaxTextBytes int
	// AllowEmpty accepts empty texts (embedded as [CLS] [SEP]).
	AllowEmpty bool
}

func (l Limits) withDefaults() Limits {
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = 1 << 20
	}
	if l.MaxTexts <= 0 {
		l.MaxTexts = 256
	}
	if l.MaxTextBytes <= 0 {
		l.MaxTextBytes = 16 << 10
	}
	return l
}

// RequestError is a request the server refuses, with the HTTP status to answer.
type RequestError struct {
	Status int
	Msg    string
}

func (e *RequestError) Error() string { return e.Msg }

func reqErrorf(status int, format string, args ...any) *RequestError {
	return &RequestError{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// DecodeRequest reads a request body {"texts": ["...", ...]} and checks it against lim
// (zero fields: defaults). Every error is a *RequestError whose message says what is
// wrong and where (the field, the text's index, the byte offset). It reads at most
// lim.MaxBodyBytes+1 bytes of r.
//
// The decoding is strict where encoding/json is lenient: the body is one JSON object
// whose only key is "texts", spelled exactly so (encoding/json would also take "Texts"
// or "TEXTS") and given once (encoding/json would keep the last of repeated keys), so
// that a proxy or client library that reads the body differently cannot make the server
// embed other texts than the ones it saw. A text that is empty or blank (only
// whitespace, control or format characters: features.Blank) is refused unless
// lim.AllowEmpty is set.
func DecodeRequest(r io.Reader, lim Limits) ([]string, error) {
	lim = lim.withDefaults()
	body, err := io.ReadAll(io.LimitReader(r, lim.MaxBodyBytes+1))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe) || int64(len(body)) > lim.MaxBodyBytes:
		return nil, reqErrorf(http.StatusRequestEntityTooLarge, "request body is larger than %d bytes (the server's --max-body)", lim.MaxBodyBytes)
	case err != nil:
		return nil, reqErrorf(http.StatusBadRequest, "reading the request body: %v", err)
	case len(bytes.TrimSpace(body)) == 0:
		return nil, reqErrorf(http.StatusBadRequest, `empty request body; want {"texts": ["...", ...]}`)
	case !utf8.Valid(body):
		return nil, reqErrorf(http.StatusBadRequest, "request body is not valid UTF-8 (byte %d)", invalidAt(body))
	}
	ptrs, err := decodeTexts(body)
	if err != nil {
		return nil, err
	}
	switch {
	case ptrs == nil:
		return nil, reqErrorf(http.StatusBadRequest, `missing field "texts"; want {"texts": ["...", ...]}`)
	case len(*ptrs) == 0:
		return nil, reqErrorf(http.StatusBadRequest, `"texts" is empty; send at least one text`)
	case len(*ptrs) > lim.MaxTexts:
		return nil, reqErrorf(http.StatusRequestEntityTooLarge, `"texts" holds %d texts; the limit is %d per request (the server's --max-texts)`, len(*ptrs), lim.MaxTexts)
	}
	texts := make([]string, len(*ptrs))
	for i, p := range *ptrs {
		switch {
		case p == nil:
			return nil, reqErrorf(http.StatusBadRequest, "texts[%d] is null; want a string", i)
		case *p == "" && !lim.AllowEmpty:
			return nil, reqErrorf(http.StatusBadRequest, "texts[%d] is empty", i)
		case features.Blank(*p) && !lim.AllowEmpty:
			return nil, reqErrorf(http.StatusBadRequest, "texts[%d] (%s) holds only whitespace or control characters; it would embed as an empty text", i, clipQuote(*p))
		case len(*p) > lim.MaxTextBytes:
			return nil, reqErrorf(http.StatusRequestEntityTooLarge, "texts[%d] is %d bytes long; the limit is %d (the server's --max-text-bytes)", i, len(*p), lim.MaxTextBytes)
		}
		texts[i] = *p
	}
	return texts, nil
}

// decodeTexts walks the tokens of body, which must be one JSON object with the single
// key "texts" (exact case, once) and nothing after it, and returns the key's value: nil
// when the key is absent. A "texts" that is null is an error.
func decodeTexts(body []byte) (*[]*string, error) {
	const want = `want {"texts": ["...", ...]}`
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonError(err)
	}
	if tok == nil {
		return nil, reqErrorf(http.StatusBadRequest, `the body is null: missing field "texts"; %s`, want)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, reqErrorf(http.StatusBadRequest, "the body is a JSON %s; want an object {\"texts\": [\"...\", ...]}", tokenKind(tok))
	}
	var texts *[]*string
	for dec.More() {
		at := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonError(err)
		}
		key, _ := tok.(string)
		switch {
		case key == "texts" && texts != nil:
			return nil, reqErrorf(http.StatusBadRequest, `field "texts" appears twice (again at byte %d); send it once`, at)
		case key != "texts" && strings.EqualFold(key, "texts"):
			return nil, reqErrorf(http.StatusBadRequest, `unknown field %q at byte %d; field names are case-sensitive: want "texts"`, key, at)
		case key != "texts":
			return nil, reqErrorf(http.StatusBadRequest, `unknown field %q at byte %d; the only field is "texts"`, key, at)
		}
		var v []*string
		if err := dec.Decode(&v); err != nil {
			return nil, jsonError(err)
		}
		if v == nil {
			return nil, reqErrorf(http.StatusBadRequest, `"texts" is null; %s`, want)
		}
		texts = &v
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, reqErrorf(http.StatusBadRequest, "invalid JSON: unexpected data after the object at byte %d", dec.InputOffset())
	}
	return texts, nil
}

// tokenKind names the JSON kind of a token that starts a value.
func tokenKind(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		if t == '[' {
			return "array"
		}
	case string:
		return "string"
	case float64, json.Number:
		return "number"
	case bool:
		return "boolean"
	case nil:
		return "null"
	}
	return "value"
}

// clipQuote quotes a text for an error message, shortened.
func clipQuote(s string) string {
	const max = 40
	if len(s) > max {
		s = s[:max]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		return strconv.Quote(s) + "..."
	}
	return strconv.Quote(s)
}

// jsonError describes a json.Decoder error for the client.
func jsonError(err error) *RequestError {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return reqErrorf(http.StatusBadRequest, "invalid JSON at byte %d: %s", se.Offset, trimJSON(se.Error()))
	case errors.As(err, &te):
		where := "the body"
		switch kind := te.Type.String(); {
		case kind == "string" || kind == "*string":
			where = `an element of "texts"`
		case kind == "[]*string":
			where = `"texts"`
		case te.Field != "":
			where = fmt.Sprintf("%q", te.Field)
		}
		return reqErrorf(http.StatusBadRequest, "%s is a JSON %s (byte %d); want %s", where, te.Value, te.Offset, jsonKind(te.Type.String()))
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return reqErrorf(http.StatusBadRequest, "invalid JSON: the body ends early")
	}
	return reqErrorf(http.StatusBadRequest, "invalid request: %s", trimJSON(err.Error()))
}

func trimJSON(s string) string {
	if len(s) > 6 && s[:6] == "json: " {
		return s[6:]
	}
	return s
}

// jsonKind names the JSON a Go type of the request takes.
func jsonKind(goType string) string {
	switch goType {
	case "[]*string", "*[]*string":
		return "an array of strings"
	case "string", "*string":
		return "a string"
	}
	return goType
}

// invalidAt returns the offset of the first invalid UTF-8 sequence in b.
func invalidAt(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}
