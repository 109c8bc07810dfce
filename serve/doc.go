// Package serve is the HTTP front of a headstart.Model: JSON in, JSON out, with
// Prometheus metrics. `pipeline serve` runs it.
//
// # Endpoints
//
//	POST /v1/embed     {"texts": ["...", ...]}
//	                   -> {"embeddings": [[f, ...], ...], "truncated": [bool, ...]}
//	POST /v1/classify  {"texts": ["...", ...]}
//	                   -> {"results": [{"HEAD": {"label": "...", "probs": {"CLASS": p, ...}}, ...}, ...],
//	                       "truncated": [bool, ...]}
//	                   a multi-label head answers {"label": "...", "labels": ["...", ...], "probs": {...}}
//	GET  /healthz      -> {"status": "ok", ...}; 503 {"status": "draining"} during shutdown
//	GET  /metrics      Prometheus text format 0.0.4
//
// One result per text, in order. "label" is the most probable class; a multi-label head
// (head.Head.MultiLabel) also answers "labels", its label set: the classes whose
// probability is at least the Model's threshold (headstart.OpenOptions.Threshold,
// `pipeline serve --threshold`, default 0.5), in the head's class order, [] when none.
// truncated[i] says that text i was cut at the model's max_len tokens. Embeddings are float32 values written with the fewest digits that
// read back to the same float32.
//
// # Errors
//
// Every error is a JSON object {"error": "..."} with a 4xx or 5xx status:
//
//	400  body not JSON, not an object, a field of the wrong type, an unknown field,
//	     "texts" missing, null or empty, a text null or empty, invalid UTF-8
//	404  unknown path; /v1/classify on a server without heads
//	405  wrong method (the Allow header lists the right one)
//	413  body over Limits.MaxBodyBytes, more than Limits.MaxTexts texts, or a text over
//	     Limits.MaxTextBytes bytes
//	499  (metrics only) the client went away before the answer
//	500  an internal error (the handler recovers from panics)
//	503  the model is closed (shutting down)
//
// # Micro-batching
//
// The server hands each request's texts to the Model in one call; with
// headstart.OpenOptions.Batching the Model merges concurrent requests into shared
// forwards. Pass Metrics.ObserveBatch as OpenOptions.OnBatch to export the batch sizes.
package serve
