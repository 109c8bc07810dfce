package models

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/headstart-ml/headstart/features"
)

// TestRegistryCards: every registry model states its card's conventions, and the ones
// the model cards give are the ones recorded.
func TestRegistryCards(t *testing.T) {
	ms, err := List()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		c := m.Card()
		if err := c.Validate(); err != nil || c.Pooling == "" || c.MaxLen < 2 {
			t.Errorf("%s: card %v: %v", m.Name, c, err)
		}
		if m.Prefix != "" {
			if _, ok := m.Prefixes[m.Prefix]; !ok {
				t.Errorf("%s: default prefix %q not among %v", m.Name, m.Prefix, m.Prefixes)
			}
		}
	}
	want := map[string]string{
		"all-minilm-l6-v2":    "pooling=mean layers= normalize=true max_len=256",
		"all-minilm-l6-v2-q":  "pooling=mean layers= normalize=true max_len=256",
		"bge-small-en-v1.5":   "pooling=cls layers= normalize=true max_len=512",
		"bge-small-en-v1.5-q": "pooling=cls layers= normalize=true max_len=512",
		"bge-small-zh-v1.5":   "pooling=cls layers= normalize=true max_len=512",
		"e5-small-v2":         `pooling=mean layers= normalize=true max_len=512 prefix="query: "`,
		"e5-small-v2-q":       `pooling=mean layers= normalize=true max_len=512 prefix="query: "`,
	}
	for name, w := range want {
		m, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Card().String(); got != w {
			t.Errorf("%s: card %s, want %s", name, got, w)
		}
	}
}

func TestPrefixText(t *testing.T) {
	e5, err := Lookup("e5-small-v2")
	if err != nil {
		t.Fatal(err)
	}
	mini, err := Lookup(Default)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		m        Manifest
		role     string
		want, in string // in: what the error must say
	}{
		{e5, "query", "query: ", ""},
		{e5, "passage", "passage: ", ""},
		{e5, NoPrefix, "", ""},
		{mini, NoPrefix, "", ""},
		{e5, "document", "", "want one of passage, query, none"},
		{mini, "query", "", "takes texts as they are"},
	}
	for _, c := range cases {
		got, err := c.m.PrefixText(c.role)
		if c.in != "" {
			if !errors.Is(err, ErrNoPrefix) || !strings.Contains(err.Error(), c.in) {
				t.Errorf("%s %q: got %v, want ErrNoPrefix saying %q", c.m.Name, c.role, err, c.in)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s %q: got %q, %v; want %q", c.m.Name, c.role, got, err, c.want)
		}
	}
}

// TestResolveSentenceTransformers: a directory without manifest.json takes the card's
// conventions from its sentence-transformers files, as sentence-transformers reads them.
func TestResolveSentenceTransformers(t *testing.T) {
	write := func(dir string, files map[string]string) {
		t.Helper()
		for name, body := range files {
			p := filepath.Join(dir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	base := map[string]string{ModelFile: "x", TokenizerFile: "x"}
	modules := `[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
		{"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
		{"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}]`
	cases := []struct {
		name  string
		files map[string]string
		card  string // Card().String(); "" for no card
		from  string
		err   string
	}{
		{"bare directory", nil, "", "", ""},
		{"bge-style", map[string]string{
			stModules:               modules,
			"1_Pooling/config.json": `{"word_embedding_dimension":384,"pooling_mode_cls_token":true,"pooling_mode_mean_tokens":false}`,
			stConfig:                `{"max_seq_length":512,"do_lower_case":true}`,
			hfConfig:                `{"hidden_size":384,"num_hidden_layers":12}`,
		}, "pooling=cls layers= normalize=true max_len=512", "sentence-transformers files", ""},
		{"e5-style prompts", map[string]string{
			stModules:               modules,
			"1_Pooling/config.json": `{"pooling_mode_mean_tokens":true}`,
			stConfig:                `{"max_seq_length":512}`,
			stPrompts:               `{"prompts":{"query":"query: ","passage":"passage: "},"default_prompt_name":"query"}`,
		}, `pooling=mean layers= normalize=true max_len=512 prefix="query: "`, "sentence-transformers files", ""},
		{"no normalize module", map[string]string{
			stModules:               `[{"path":"1_Pooling","type":"sentence_transformers.models.Pooling"}]`,
			"1_Pooling/config.json": `{"pooling_mode_max_tokens":true}`,
		}, "pooling=max layers= normalize=false max_len=0", "sentence-transformers files", ""},
		{"two pooling modes", map[string]string{
			stModules:               `[{"path":"1_Pooling","type":"sentence_transformers.models.Pooling"}]`,
			"1_Pooling/config.json": `{"pooling_mode_max_tokens":true,"pooling_mode_mean_tokens":true}`,
		}, "", "", "exactly one of mean, cls, max, last"},
		{"malformed", map[string]string{stConfig: `{"max_seq_length":`}, "", "", stConfig},
		{"unknown default prompt", map[string]string{stConfig: `{}`, stPrompts: `{"prompts":{"query":"q: "},"default_prompt_name":"doc"}`}, "", "", `default_prompt_name "doc"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			write(dir, base)
			write(dir, c.files)
			p, err := Resolve(dir)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %v, want an error naming %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.CardFrom != c.from {
				t.Errorf("CardFrom %q, want %q", p.CardFrom, c.from)
			}
			got := ""
			if p.CardFrom != "" {
				got = p.Manifest.Card().String()
			}
			if got != c.card {
				t.Errorf("card %q, want %q", got, c.card)
			}
		})
	}
	// scripts/export_onnx.py's manifest: query_prefix and passage_prefix are roles.
	dir := t.TempDir()
	write(dir, base)
	write(dir, map[string]string{ManifestFile: `{"name":"x","pooling":"mean","normalize":true,"max_len":128,"query_prefix":"query: ","passage_prefix":"passage: "}`})
	p, err := Resolve(dir)
	if err != nil {
		t.Fatal(err)
	}
	if q, err := p.Manifest.PrefixText("passage"); err != nil || q != "passage: " || p.Manifest.Card().Prefix != "" || p.CardFrom != ManifestFile {
		t.Errorf("export_onnx.py manifest: %+v (%q, %v)", p.Manifest, q, err)
	}
	// config.json gives the hidden size and layer count the graph is checked against.
	dir = t.TempDir()
	write(dir, base)
	write(dir, map[string]string{stConfig: `{"max_seq_length":128}`, hfConfig: `{"hidden_size":512,"num_hidden_layers":4}`})
	p, err = Resolve(dir)
	if err != nil || p.Manifest.HiddenSize != 512 || p.Manifest.Layers != 4 {
		t.Fatalf("Resolve: %+v, %v", p.Manifest, err)
	}
	var _ features.Spec = p.Manifest.Card()
}
