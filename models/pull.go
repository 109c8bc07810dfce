package models

import (
	"archive/zip"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/headstart-ml/headstart/internal/cache"
	"github.com/headstart-ml/headstart/internal/fileio"
)

// PullOptions configure Pull. The zero value is valid.
type PullOptions struct {
	// Force re-fetches even when the cache already holds a complete, verified copy.
	Force bool
	// Log receives one line per step; nil discards.
	Log io.Writer
	// Mvn is the Maven executable used for maven sources (default "mvn" on PATH).
	Mvn string
	// MavenRepo is the Maven local repository used for maven sources
	// (default $HEADSTART_MAVEN_REPO, else cache.Dir()/m2).
	MavenRepo string
	// Endpoint is the HuggingFace Hub base URL for hf sources
	// (default $HF_ENDPOINT, else https://huggingface.co).
	Endpoint string
	// Client is the HTTP client for hf sources (default http.DefaultClient).
	Client *http.Client
	// Token is sent as a bearer token to the hub when set (default $HF_TOKEN).
	Token string
}

func (o *PullOptions) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", args...)
	}
}

// Pull fetches the model described by m into dir (normally Dir(m.Name)), verifying
// checksums. It is idempotent: files already present with the right sha256 are kept.
// The manifest, with the sha256 of every file filled in, is written last.
func Pull(ctx context.Context, m Manifest, dir string, opts PullOptions) (Paths, error) {
	p := Paths{Name: m.Name, Dir: dir, Model: filepath.Join(dir, ModelFile), Tokenizer: filepath.Join(dir, TokenizerFile), Manifest: m, CardFrom: "registry"}
	if !opts.Force && verified(p) {
		opts.logf("%s: cached in %s", m.Name, dir)
		return p, nil
	}
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return Paths{}, err
	}
	// One pull of a model at a time: a second one waits, then finds the first one's
	// verified files (or, with Force, fetches them again).
	lock, err := fileio.LockWait(ctx, filepath.Join(dir, "pull"))
	if err != nil {
		return Paths{}, fmt.Errorf("models: %s: %w", m.Name, err)
	}
	defer lock.Release()
	if !opts.Force && verified(p) {
		opts.logf("%s: cached in %s (pulled by another run)", m.Name, dir)
		return p, nil
	}
	// Remove the completion marker first: a pull that dies midway must not look complete.
	if err := os.Remove(filepath.Join(dir, ManifestFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return Paths{}, err
	}
	switch m.Source.Kind {
	case "maven":
		err = pullMaven(ctx, &m, dir, &opts)
	case "hf":
		err = pullHub(ctx, &m, dir, &opts)
	default:
		err = fmt.Errorf("models: %s: source kind %q unknown; want one of maven, hf", m.Name, m.Source.Kind)
	}
	if err != nil {
		return Paths{}, err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Paths{}, err
	}
	if err := writeAtomic(filepath.Join(dir, ManifestFile), func(w io.Writer) error { _, err := w.Write(append(b, '\n')); return err }); err != nil {
		return Paths{}, err
	}
	p.Manifest = m
	opts.logf("%s: ready in %s", m.Name, dir)
	return p, nil
}

// verified reports whether dir holds a complete pull whose files match the manifest.
func verified(p Paths) bool {
	b, err := os.ReadFile(filepath.Join(p.Dir, ManifestFile))
	if err != nil {
		return false
	}
	var m Manifest
	if json.Unmarshal(b, &m) != nil {
		return false
	}
	for key, local := range map[string]string{"model": p.Model, "tokenizer": p.Tokenizer} {
		f, ok := m.Files[key]
		if !ok || f.SHA256 == "" {
			return false
		}
		if want := p.Manifest.Files[key].SHA256; want != "" && want != f.SHA256 {
			return false
		}
		if sum, err := fileio.SHA256(local); err != nil || sum != f.SHA256 {
			return false
		}
	}
	return true
}

func pullMaven(ctx context.Context, m *Manifest, dir string, opts *PullOptions) error {
	parts := strings.Split(m.Source.Coordinates, ":")
	if len(parts) != 3 {
		return fmt.Errorf("models: %s: maven coordinates %q must be group:artifact:version", m.Name, m.Source.Coordinates)
	}
	group, artifact, version := parts[0], parts[1], parts[2]
	repo := opts.MavenRepo
	if repo == "" {
		repo = os.Getenv("HEADSTART_MAVEN_REPO")
	}
	if repo == "" {
		repo = filepath.Join(cache.Dir(), "m2")
	}
	jar := filepath.Join(repo, filepath.FromSlash(strings.ReplaceAll(group, ".", "/")), artifact, version, artifact+"-"+version+".jar")
	if sum, err := fileio.SHA256(jar); err != nil || sum != m.Source.SHA256 {
		mvn := opts.Mvn
		if mvn == "" {
			mvn = "mvn"
		}
		// mvn -q prints nothing while it downloads (minutes for a large jar), so say what
		// comes and how large it is before, and what came after.
		opts.logf("%s: fetching %s with %s (holds the %s model file; a first run also fetches Maven's dependency plugin)",
			m.Name, m.Source.Coordinates, mvn, byteSize(m.Files["model"].Size))
		start := time.Now()
		cmd := exec.CommandContext(ctx, mvn, "-q", "-B", "dependency:get",
			"-Dmaven.repo.local="+repo, "-Dartifact="+m.Source.Coordinates, "-Dtransitive=false")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s: %s %s: %v\n%s", ErrFetch, m.Name, mvn, m.Source.Coordinates, err, tail(out, 2000))
		}
		sum, err := fileio.SHA256(jar)
		if err != nil {
			return fmt.Errorf("%w: %s: mvn succeeded but %s is missing: %v", ErrFetch, m.Name, jar, err)
		}
		if sum != m.Source.SHA256 {
			return fmt.Errorf("%w: %s: %s has sha256 %s, want %s", ErrChecksum, m.Name, jar, sum, m.Source.SHA256)
		}
		opts.logf("%s: fetched %s, %s, sha256 ok (%s)", m.Name, filepath.Base(jar), fileSize(jar), time.Since(start).Round(100*time.Millisecond))
	}
	zr, err := zip.OpenReader(jar)
	if err != nil {
		return fmt.Errorf("models: %s: open %s: %w", m.Name, jar, err)
	}
	defer zr.Close()
	for key, local := range map[string]string{"model": ModelFile, "tokenizer": TokenizerFile} {
		f, ok := m.Files[key]
		if !ok {
			return fmt.Errorf("models: %s: manifest lists no %q file", m.Name, key)
		}
		dst := filepath.Join(dir, local)
		if sum, err := fileio.SHA256(dst); err == nil && sum == f.SHA256 {
			continue
		}
		entry, err := zr.Open(f.Path)
		if err != nil {
			return fmt.Errorf("models: %s: %s has no entry %s: %w", m.Name, jar, f.Path, err)
		}
		err = writeAtomicVerify(dst, func(w io.Writer) error {
			_, err := io.Copy(w, entry)
			return err
		}, func(tmp string) error {
			got, err := fileio.SHA256(tmp)
			if err != nil {
				return err
			}
			if got != f.SHA256 {
				return fmt.Errorf("%w: %s: %s in %s has sha256 %s, want %s", ErrChecksum, m.Name, f.Path, jar, got, f.SHA256)
			}
			return nil
		})
		entry.Close()
		if err != nil {
			return err
		}
		opts.logf("%s: %s -> %s (%s, sha256 ok)", m.Name, f.Path, dst, fileSize(dst))
	}
	return nil
}

// pullHub downloads files from a HuggingFace Hub repository at a pinned revision:
//
//	GET {endpoint}/{repo}/resolve/{revision}/{path}
//
// Each file is checked against the manifest's sha256 when it has one; otherwise against
// the hash the hub reports: X-Linked-Etag (the sha256 of an LFS file) or, for a file kept
// in git, ETag (its git blob sha1). A file with no checksum from either side is refused.
func pullHub(ctx context.Context, m *Manifest, dir string, opts *PullOptions) error {
	endpoint := opts.Endpoint
	if endpoint == "" {
		endpoint = os.Getenv("HF_ENDPOINT")
	}
	if endpoint == "" {
		endpoint = "https://huggingface.co"
	}
	token := opts.Token
	if token == "" {
		token = os.Getenv("HF_TOKEN")
	}
	client := opts.Client
	if client == nil {
		client = http.DefaultClient
	}
	if m.Source.Repo == "" || m.Source.Revision == "" {
		return fmt.Errorf("models: %s: hf source needs repo and revision", m.Name)
	}
	for key, local := range map[string]string{"model": ModelFile, "tokenizer": TokenizerFile} {
		f, ok := m.Files[key]
		if !ok {
			return fmt.Errorf("models: %s: manifest lists no %q file", m.Name, key)
		}
		dst := filepath.Join(dir, local)
		if f.SHA256 != "" {
			if sum, err := fileio.SHA256(dst); err == nil && sum == f.SHA256 {
				continue
			}
		}
		u := strings.TrimRight(endpoint, "/") + "/" + m.Source.Repo + "/resolve/" + url.PathEscape(m.Source.Revision) + "/" + f.Path
		opts.logf("%s: downloading %s", m.Name, u)
		sum, err := download(ctx, client, u, token, dst, f.SHA256)
		if err != nil {
			return fmt.Errorf("models: %s: %w", m.Name, err)
		}
		f.SHA256 = sum
		m.Files[key] = f
		opts.logf("%s: %s -> %s (%s, sha256 ok)", m.Name, f.Path, dst, fileSize(dst))
	}
	return nil
}

func download(ctx context.Context, client *http.Client, u, token, dst, wantSHA256 string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("%w: GET %s: %v", ErrFetch, u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return "", fmt.Errorf("%w: GET %s: %s: %s", ErrFetch, u, resp.Status, strings.TrimSpace(string(b)))
	}
	lfs := strings.Trim(resp.Header.Get("X-Linked-Etag"), `"`)
	etag := strings.TrimPrefix(strings.Trim(resp.Header.Get("ETag"), `"`), "W/")
	etag = strings.Trim(etag, `"`)
	var sum string
	err = writeAtomicVerify(dst, func(w io.Writer) error {
		_, err := io.Copy(w, resp.Body)
		return err
	}, func(tmp string) error {
		// The checks read back the file that will be renamed into place, not the stream.
		var err error
		if sum, err = fileio.SHA256(tmp); err != nil {
			return err
		}
		switch {
		case wantSHA256 != "":
			if sum != wantSHA256 {
				return fmt.Errorf("%w: %s has sha256 %s, want %s", ErrChecksum, u, sum, wantSHA256)
			}
		case isHex(lfs, 64):
			if sum != lfs {
				return fmt.Errorf("%w: %s has sha256 %s, the hub says %s", ErrChecksum, u, sum, lfs)
			}
		case isHex(etag, 40):
			// A git-stored file: the ETag is the git blob sha1 of its content.
			f, err := os.Open(tmp)
			if err != nil {
				return err
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return err
			}
			h1 := sha1.New()
			h1.Write([]byte("blob " + strconv.FormatInt(st.Size(), 10) + "\x00"))
			if _, err := io.Copy(h1, f); err != nil {
				return err
			}
			if blob := hex.EncodeToString(h1.Sum(nil)); blob != etag {
				return fmt.Errorf("%w: %s has git blob sha1 %s, the hub says %s", ErrChecksum, u, blob, etag)
			}
		default:
			return fmt.Errorf("%w: %s: no sha256 in the manifest and none from the hub; refusing an unverified file", ErrChecksum, u)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return sum, nil
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// writeAtomic writes dst atomically through a uniquely named temporary file
// (fileio.Create).
func writeAtomic(dst string, write func(io.Writer) error) error {
	return writeAtomicVerify(dst, write, nil)
}

// writeAtomicVerify is writeAtomic with a check of the temporary file (named by its
// argument), run after the data is synced to disk and before the rename; a failed check
// removes the temporary file.
func writeAtomicVerify(dst string, write func(io.Writer) error, verify func(tmp string) error) (err error) {
	f, err := fileio.Create(dst)
	if err != nil {
		return fmt.Errorf("models: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, f.Abort())
		}
	}()
	if err = write(f); err != nil {
		return fmt.Errorf("models: write %s: %w", dst, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("models: write %s: %w", dst, err)
	}
	if verify != nil {
		if err = verify(f.Name()); err != nil {
			return err
		}
	}
	return f.Commit()
}

// FileSHA256 returns the hex sha256 of a file's content (fileio.SHA256).
func FileSHA256(path string) (string, error) { return fileio.SHA256(path) }

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// byteSize formats n bytes for a progress line: "86.2 MB" (decimal units, as pip and
// Maven print them); "size unknown" for n <= 0.
func byteSize(n int64) string {
	switch {
	case n <= 0:
		return "size unknown"
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	case n < 1000*1000*1000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	default:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	}
}

// fileSize is byteSize of the file at path.
func fileSize(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return "size unknown"
	}
	return byteSize(st.Size())
}
