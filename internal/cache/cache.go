// Package cache locates headstart's user cache: the directory outside the
// clone where scripts/setup.sh puts the pinned onnxruntime library, the
// models and the Python reference venv.
//
// The cache directory is, in order of preference:
//
//	$HEADSTART_CACHE
//	$XDG_CACHE_HOME/headstart
//	$HOME/.cache/headstart
//
// This is the same rule scripts/setup.sh applies, so that what the script
// fetches is what the Go code finds. The functions here only compute paths;
// they neither create nor check anything.
package cache

import (
	"os"
	"path/filepath"
)

// RuntimeVersion is the onnxruntime release that scripts/setup.sh pins.
const RuntimeVersion = "1.24.1"

// Dir returns the cache directory: $HEADSTART_CACHE if set, else
// $XDG_CACHE_HOME/headstart, else $HOME/.cache/headstart. If none of these
// variables is set it falls back to os.UserCacheDir, and finally to a
// relative ".cache/headstart".
func Dir() string {
	if d := os.Getenv("HEADSTART_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "headstart")
	}
	if h := os.Getenv("HOME"); h != "" {
		return filepath.Join(h, ".cache", "headstart")
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "headstart")
	}
	return filepath.Join(".cache", "headstart")
}

// RuntimeLib returns where scripts/setup.sh runtime puts the onnxruntime
// shared library:
//
//	<Dir>/onnxruntime/<RuntimeVersion>/libonnxruntime.so.<RuntimeVersion>
func RuntimeLib() string {
	return filepath.Join(Dir(), "onnxruntime", RuntimeVersion, "libonnxruntime.so."+RuntimeVersion)
}

// ModelDir returns the directory of a pulled model, <Dir>/models/<name>,
// which holds model.onnx and tokenizer.json.
func ModelDir(name string) string {
	return filepath.Join(Dir(), "models", name)
}

// VenvPython returns the interpreter of the reference venv that
// scripts/setup.sh venv creates, <Dir>/venv-test/bin/python. Tests run the
// Python reference scripts with it.
func VenvPython() string {
	return filepath.Join(Dir(), "venv-test", "bin", "python")
}
