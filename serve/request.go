package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"
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

// request is the body of POST /v1/embed and /v1/classify.
type request struct {
	Texts *[]*string `json:"texts"` // pointers tell null from absent and from ""
}

// DecodeRequest reads a request body {"texts": ["...", ...]} and checks it against lim
// (zero fields: defaults). Every error is a *RequestError whose message says what is
// wrong and where (the field, the text's index, the byte offset). It reads at most
// lim.MaxBodyBytes+1 bytes of r.
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
	var req request
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, reqErrorf(http.StatusBadRequest, "invalid JSON: unexpected data after the object at byte %d", dec.InputOffset())
	}
	if req.Texts == nil {
		return nil, reqErrorf(http.StatusBadRequest, `missing field "texts"; want {"texts": ["...", ...]}`)
	}
	ptrs := *req.Texts
	switch {
	case len(ptrs) == 0:
		return nil, reqErrorf(http.StatusBadRequest, `"texts" is empty; send at least one text`)
	case len(ptrs) > lim.MaxTexts:
		return nil, reqErrorf(http.StatusRequestEntityTooLarge, `"texts" holds %d texts; the limit is %d per request (the server's --max-texts)`, len(ptrs), lim.MaxTexts)
	}
	texts := make([]string, len(ptrs))
	for i, p := range ptrs {
		switch {
		case p == nil:
			return nil, reqErrorf(http.StatusBadRequest, "texts[%d] is null; want a string", i)
		case *p == "" && !lim.AllowEmpty:
			return nil, reqErrorf(http.StatusBadRequest, "texts[%d] is empty", i)
		case len(*p) > lim.MaxTextBytes:
			return nil, reqErrorf(http.StatusRequestEntityTooLarge, "texts[%d] is %d bytes long; the limit is %d (the server's --max-text-bytes)", i, len(*p), lim.MaxTextBytes)
		}
		texts[i] = *p
	}
	return texts, nil
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
	case "serve.request":
		return `an object {"texts": ["...", ...]}`
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
