package models

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/headstart-ml/headstart/features"
)

// ErrBackboneMissing: the backbone a feature store or head records cannot be found.
var ErrBackboneMissing = errors.New("models: recorded backbone not found")

// Find returns the local files of the backbone b that a feature store, activation cache
// or head records: its directory b.Dir when it is still there and its model.onnx has
// sha256 b.SHA256 (and its tokenizer.json b.TokenizerSHA256, when recorded), else the
// registry model named b.Name when it is pulled and pinned to (or, unpinned, holds)
// that sha256. Otherwise it returns an error wrapping ErrBackboneMissing that names the
// backbone and says why each place did not hold it.
func Find(b features.Backbone) (Paths, error) {
	var why []string
	if b.Dir != "" {
		p, err := Resolve(b.Dir)
		if err == nil {
			err = matches(p, b, true)
		}
		if err == nil {
			return p, nil
		}
		why = append(why, fmt.Sprintf("directory %s: %v", b.Dir, err))
	}
	if b.Name != "" {
		if m, err := Lookup(b.Name); err == nil {
			p, err := Resolve(m.Name)
			if err == nil {
				err = matches(p, b, m.Files["model"].SHA256 == "")
			}
			if err == nil {
				return p, nil
			}
			why = append(why, fmt.Sprintf("registry model %s: %v", b.Name, err))
		} else if b.Dir == "" {
			why = append(why, fmt.Sprintf("%q is not a registry model", b.Name))
		}
	}
	if len(why) == 0 {
		why = append(why, "nothing records where it is")
	}
	sha := b.SHA256
	if len(sha) > 12 {
		sha = sha[:12]
	}
	return Paths{}, fmt.Errorf("%w: %s (model.onnx sha256 %s): %s; give --model NAME|DIR",
		ErrBackboneMissing, orUnnamed(b.Name), sha, strings.Join(why, "; "))
}

// matches checks p's files against b; hash says whether to hash model.onnx (a
// registry pull is verified against its pinned sha256 when pulled).
func matches(p Paths, b features.Backbone, hash bool) error {
	if b.SHA256 == "" {
		return nil
	}
	if !hash {
		if pinned := p.Manifest.Files["model"].SHA256; pinned != b.SHA256 {
			return fmt.Errorf("holds model.onnx sha256 %s, not %s", short(pinned), short(b.SHA256))
		}
	} else {
		sum, err := FileSHA256(p.Model)
		if err != nil {
			return err
		}
		if sum != b.SHA256 {
			return fmt.Errorf("%s has sha256 %s, not %s", p.Model, short(sum), short(b.SHA256))
		}
	}
	if b.TokenizerSHA256 != "" {
		sum, err := FileSHA256(p.Tokenizer)
		if err != nil {
			return err
		}
		if sum != b.TokenizerSHA256 {
			return fmt.Errorf("%s has sha256 %s, not %s", p.Tokenizer, short(sum), short(b.TokenizerSHA256))
		}
	}
	return nil
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	if s == "" {
		return "(none)"
	}
	return s
}

func orUnnamed(s string) string {
	if s == "" {
		return "(unnamed)"
	}
	return s
}

// ResolveRecorded is Resolve for a run on recorded features: arg (a registry name or
// a directory) when given, else the backbone b that the store, cache or head records
// (Find).
func ResolveRecorded(arg string, b features.Backbone) (Paths, error) {
	if arg != "" {
		return Resolve(arg)
	}
	return Find(b)
}

// ResolveTokenizer returns the tokenizer.json that arg names: the file itself, the
// TokenizerFile of a directory, or that of a registry model (Resolve).
func ResolveTokenizer(arg string) (string, error) {
	if st, err := os.Stat(arg); err == nil {
		if !st.IsDir() {
			return arg, nil
		}
		p := filepath.Join(arg, TokenizerFile)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("--model %s: directory has no %s: %w", arg, TokenizerFile, err)
		}
		return p, nil
	}
	paths, err := Resolve(arg)
	if err != nil {
		return "", err
	}
	return paths.Tokenizer, nil
}
