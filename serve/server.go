package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/headstart-ml/headstart"
)

// Routes.
const (
	RouteEmbed    = "/v1/embed"
	RouteClassify = "/v1/classify"
	RouteHealth   = "/healthz"
	RouteMetrics  = "/metrics"
)

// Options configure a Server. The zero value is valid.
type Options struct {
	// Limits bound each request (zero fields: defaults, see Limits).
	Limits Limits
	// Metrics receives the request counts. Default: NewMetrics(). Pass the one whose
	// ObserveBatch is the Model's OnBatch to export batch sizes too.
	Metrics *Metrics
	// ShutdownTimeout bounds how long Serve waits for requests in flight once its
	// context is done; the rest are cut off. Default 30 s.
	ShutdownTimeout time.Duration
	// ErrorLog receives the http.Server's errors and recovered panics. Default: the
	// log package's standard logger.
	ErrorLog *log.Logger
}

// Server answers the endpoints listed in the package comment from one Model. It is an
// http.Handler; Serve runs it on a listener with graceful shutdown.
type Server struct {
	m        *headstart.Model
	lim      Limits
	metrics  *Metrics
	timeout  time.Duration
	log      *log.Logger
	draining atomic.Bool

	headKeys  []string            // per head: its name as a JSON string
	classKeys [][]string          // per head, per class: the class name as a JSON string
	labelKeys []map[string]string // per head: class name -> JSON string
	multi     []bool              // per head: multi-label (answers "labels" too)
	health    []byte
}

// New returns a Server for m. The Server does not own m: close m after Serve returns.
func New(m *headstart.Model, o Options) *Server {
	s := &Server{m: m, lim: o.Limits.withDefaults(), metrics: o.Metrics, timeout: o.ShutdownTimeout, log: o.ErrorLog}
	if s.metrics == nil {
		s.metrics = NewMetrics()
	}
	s.metrics.mu.Lock()
	s.metrics.queueDepth = m.QueueDepth
	s.metrics.mu.Unlock()
	if s.timeout <= 0 {
		s.timeout = 30 * time.Second
	}
	if s.log == nil {
		s.log = log.Default()
	}
	heads := m.Heads()
	for i, name := range m.HeadNames() {
		s.headKeys = append(s.headKeys, jsonString(name))
		var keys []string
		byName := map[string]string{}
		for _, c := range heads[i].Classes {
			keys = append(keys, jsonString(c))
			byName[c] = keys[len(keys)-1]
		}
		s.classKeys = append(s.classKeys, keys)
		s.labelKeys = append(s.labelKeys, byName)
		s.multi = append(s.multi, heads[i].MultiLabel)
	}
	s.health, _ = json.Marshal(map[string]any{
		"status": "ok", "model": m.Backbone().Name, "heads": m.HeadNames(), "dim": m.Dim(),
		"max_len": m.MaxLen(), "sessions": m.Sessions(), "provider": m.Provider(),
	})
	return s
}

// Metrics returns the server's metrics.
func (s *Server) Metrics() *Metrics { return s.metrics }

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Serve answers requests on ln until ctx is done, then shuts down gracefully: it stops
// accepting, waits up to Options.ShutdownTimeout for the requests in flight, and
// returns nil (or the error that cut the wait short). It returns at once with the
// listener's error if serving fails.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          s.log,
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.draining.Store(true)
	sctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	err := hs.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("serve: shutdown after %v: %w (requests still in flight were cut off)", s.timeout, errors.Join(err, hs.Close()))
	}
	return nil
}

// statusWriter records the status code a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// ServeHTTP routes a request, recovers from panics and records metrics.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s.metrics.inFlight.Add(1)
	defer s.metrics.inFlight.Add(-1)
	sw := &statusWriter{ResponseWriter: w}
	route := "other"
	var texts, truncated int
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Printf("serve: panic answering %s %s: %v", r.Method, r.URL.Path, v)
			if sw.code == 0 {
				writeError(sw, http.StatusInternalServerError, "internal error")
			}
		}
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		if r.Context().Err() != nil && code >= 500 {
			code = 499
		}
		s.metrics.observeRequest(route, code, time.Since(start), texts, truncated)
	}()
	var method string
	switch r.URL.Path {
	case RouteEmbed, RouteClassify:
		method = http.MethodPost
	case RouteHealth, RouteMetrics:
		method = http.MethodGet
	default:
		writeError(sw, http.StatusNotFound, fmt.Sprintf("no endpoint %q; the endpoints are POST %s, POST %s, GET %s, GET %s",
			r.URL.Path, RouteEmbed, RouteClassify, RouteHealth, RouteMetrics))
		return
	}
	route = r.URL.Path
	if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
		sw.Header().Set("Allow", method)
		writeError(sw, http.StatusMethodNotAllowed, fmt.Sprintf("%s takes %s, not %s", route, method, r.Method))
		return
	}
	switch route {
	case RouteHealth:
		if s.draining.Load() {
			writeJSON(sw, http.StatusServiceUnavailable, []byte(`{"status":"draining"}`))
			return
		}
		writeJSON(sw, http.StatusOK, s.health)
	case RouteMetrics:
		sw.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		s.metrics.WriteTo(sw)
	case RouteEmbed, RouteClassify:
		texts, truncated = s.handleModel(sw, r, route)
	}
}

// handleModel answers /v1/embed and /v1/classify; it returns the number of texts and of
// truncated texts of an accepted request.
func (s *Server) handleModel(w http.ResponseWriter, r *http.Request, route string) (int, int) {
	task := headstart.TaskEmbed
	if route == RouteClassify {
		task = headstart.TaskClassify
		if len(s.headKeys) == 0 {
			writeError(w, http.StatusNotFound, "this server has no heads: start pipeline serve with --head FILE to classify; POST /v1/embed works")
			return 0, 0
		}
	}
	if r.ContentLength > s.lim.MaxBodyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is %d bytes; the limit is %d (the server's --max-body)", r.ContentLength, s.lim.MaxBodyBytes))
		return 0, 0
	}
	texts, err := DecodeRequest(http.MaxBytesReader(w, r.Body, s.lim.MaxBodyBytes+1), s.lim)
	if err != nil {
		var re *RequestError
		if errors.As(err, &re) {
			writeError(w, re.Status, re.Msg)
		} else {
			writeError(w, http.StatusBadRequest, err.Error())
		}
		return 0, 0
	}
	out, err := s.m.Run(r.Context(), texts, task)
	if err != nil {
		var te *headstart.TextError
		switch {
		case errors.As(err, &te):
			writeError(w, http.StatusBadRequest, fmt.Sprintf("texts[%d]: %v", te.Index, te.Err))
		case errors.Is(err, headstart.ErrClosed):
			writeError(w, http.StatusServiceUnavailable, "the server is shutting down")
		case r.Context().Err() != nil:
			writeError(w, http.StatusServiceUnavailable, "request cancelled")
		default:
			s.log.Printf("serve: %s: %v", route, err)
			writeError(w, http.StatusInternalServerError, err.Error())
		}
		return 0, 0
	}
	ntrunc := 0
	for _, t := range out.Truncated {
		if t {
			ntrunc++
		}
	}
	b := make([]byte, 0, 64+len(texts)*(16+8*s.m.Dim()))
	var ok bool
	if task == headstart.TaskEmbed {
		b, ok = s.appendEmbed(b, out)
	} else {
		b, ok = s.appendClassify(b, out)
	}
	if !ok {
		writeError(w, http.StatusInternalServerError, "the model produced a NaN or infinite value")
		return len(texts), ntrunc
	}
	writeJSON(w, http.StatusOK, b)
	return len(texts), ntrunc
}

// appendEmbed writes {"embeddings": [...], "truncated": [...]}; ok is false on a
// non-finite value.
func (s *Server) appendEmbed(b []byte, out headstart.Output) (_ []byte, ok bool) {
	ok = true
	b = append(b, `{"embeddings":[`...)
	for i, row := range out.Embeddings {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		for j, v := range row {
			if j > 0 {
				b = append(b, ',')
			}
			b, ok = appendFloat(b, v, ok)
		}
		b = append(b, ']')
	}
	b = append(b, "],"...)
	return appendTruncated(b, out.Truncated), ok
}

// appendClassify writes {"results": [...], "truncated": [...]}; a multi-label head's
// object has "labels" (its label set, [] when empty) between "label" and "probs".
func (s *Server) appendClassify(b []byte, out headstart.Output) (_ []byte, ok bool) {
	ok = true
	b = append(b, `{"results":[`...)
	for i, res := range out.Results {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		for h, p := range res.Predictions {
			if h > 0 {
				b = append(b, ',')
			}
			b = append(b, s.headKeys[h]...)
			b = append(b, `:{"label":`...)
			b = append(b, s.labelKeys[h][p.Label]...)
			if s.multi[h] {
				b = append(b, `,"labels":[`...)
				for k, l := range p.Labels {
					if k > 0 {
						b = append(b, ',')
					}
					b = append(b, s.labelKeys[h][l]...)
				}
				b = append(b, ']')
			}
			b = append(b, `,"probs":{`...)
			for k, v := range p.Probs {
				if k > 0 {
					b = append(b, ',')
				}
				b = append(b, s.classKeys[h][k]...)
				b = append(b, ':')
				b, ok = appendFloat(b, v, ok)
			}
			b = append(b, "}}"...)
		}
		b = append(b, '}')
	}
	b = append(b, "],"...)
	return appendTruncated(b, out.Truncated), ok
}

func appendTruncated(b []byte, t []bool) []byte {
	b = append(b, `"truncated":[`...)
	for i, v := range t {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendBool(b, v)
	}
	return append(b, "]}"...)
}

// appendFloat writes v with the fewest digits that read back to the same float32
// (0 in place of a non-finite value, and ok false).
func appendFloat(b []byte, v float32, ok bool) ([]byte, bool) {
	f := float64(v)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, '0'), false
	}
	return strconv.AppendFloat(b, f, 'g', -1, 32), ok
}

func writeJSON(w http.ResponseWriter, code int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(code)
	w.Write(body)
	w.Write([]byte{'\n'})
}

func writeError(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	writeJSON(w, code, b)
}
