package models

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Files of a sentence-transformers model directory that carry its conventions.
const (
	stModules = "modules.json"                      // the pipeline: Transformer, Pooling, Normalize modules
	stConfig  = "sentence_bert_config.json"         // max_seq_length
	stPrompts = "config_sentence_transformers.json" // prompts and default_prompt_name
	hfConfig  = "config.json"                       // hidden_size, num_hidden_layers
)

// readSentenceTransformers reads a model card's conventions from the
// sentence-transformers files in dir, as sentence-transformers (v3) loads them:
// modules.json lists the modules (a Pooling module's directory holds config.json with
// its pooling_mode_* flags; a Normalize module means normalised embeddings),
// sentence_bert_config.json gives max_seq_length, config_sentence_transformers.json
// the prompts (Prefixes) and default_prompt_name (Prefix), and a HuggingFace
// config.json the hidden size and layer count. found is false when dir has neither
// modules.json nor sentence_bert_config.json; a file that is there but malformed is an
// error naming it.
func readSentenceTransformers(dir string) (m Manifest, found bool, err error) {
	var modules []struct {
		Path string `json:"path"`
		Type string `json:"type"`
	}
	okModules, err := readJSON(filepath.Join(dir, stModules), &modules)
	if err != nil {
		return m, false, err
	}
	var cfg struct {
		MaxSeqLength int `json:"max_seq_length"`
	}
	okConfig, err := readJSON(filepath.Join(dir, stConfig), &cfg)
	if err != nil {
		return m, false, err
	}
	if !okModules && !okConfig {
		return m, false, nil
	}
	m.MaxLen = cfg.MaxSeqLength
	m.Pooling = "mean" // a Transformer without a Pooling module is mean-pooled by sentence-transformers
	for _, mod := range modules {
		switch {
		case strings.HasSuffix(mod.Type, ".Pooling"):
			var pc map[string]any
			path := filepath.Join(dir, filepath.FromSlash(mod.Path), "config.json")
			ok, err := readJSON(path, &pc)
			if err != nil {
				return m, false, err
			}
			if !ok {
				return m, false, fmt.Errorf("models: %s lists a Pooling module in %q, which has no config.json", filepath.Join(dir, stModules), mod.Path)
			}
			var modes []string
			for key, name := range map[string]string{
				"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls",
				"pooling_mode_max_tokens": "max", "pooling_mode_lasttoken": "last",
			} {
				if on, _ := pc[key].(bool); on {
					modes = append(modes, name)
				}
			}
			for key, v := range pc {
				if on, _ := v.(bool); on && strings.HasPrefix(key, "pooling_mode_") && !strings.Contains("pooling_mode_mean_tokens pooling_mode_cls_token pooling_mode_max_tokens pooling_mode_lasttoken", key) {
					modes = append(modes, key)
				}
			}
			if len(modes) != 1 {
				return m, false, fmt.Errorf("models: %s: pooling modes %v; headstart takes exactly one of mean, cls, max, last", path, modes)
			}
			m.Pooling = modes[0]
		case strings.HasSuffix(mod.Type, ".Normalize"):
			m.Normalize = true
		}
	}
	var prompts struct {
		Prompts           map[string]string `json:"prompts"`
		DefaultPromptName *string           `json:"default_prompt_name"`
	}
	if _, err := readJSON(filepath.Join(dir, stPrompts), &prompts); err != nil {
		return m, false, err
	}
	for role, text := range prompts.Prompts {
		if text == "" {
			continue
		}
		if m.Prefixes == nil {
			m.Prefixes = map[string]string{}
		}
		m.Prefixes[role] = text
	}
	if p := prompts.DefaultPromptName; p != nil && *p != "" {
		if _, ok := m.Prefixes[*p]; !ok {
			return m, false, fmt.Errorf("models: %s: default_prompt_name %q is not among the prompts", filepath.Join(dir, stPrompts), *p)
		}
		m.Prefix = *p
	}
	var hf struct {
		HiddenSize int `json:"hidden_size"`
		Layers     int `json:"num_hidden_layers"`
	}
	if _, err := readJSON(filepath.Join(dir, hfConfig), &hf); err != nil {
		return m, false, err
	}
	m.HiddenSize, m.Layers = hf.HiddenSize, hf.Layers
	return m, true, nil
}

// readJSON decodes the file at path into v; ok is false when there is no such file.
func readJSON(path string, v any) (ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("models: %s: %w", path, err)
	}
	return true, nil
}
