package cache

import (
	"path/filepath"
	"testing"
)

func TestDir(t *testing.T) {
	tests := []struct {
		name                 string
		headstart, xdg, home string
		want                 string
	}{
		{"headstart wins", "/h", "/x", "/home/u", "/h"},
		{"xdg", "", "/x", "/home/u", "/x/headstart"},
		{"home", "", "", "/home/u", "/home/u/.cache/headstart"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("HEADSTART_CACHE", tt.headstart)
			t.Setenv("XDG_CACHE_HOME", tt.xdg)
			t.Setenv("HOME", tt.home)
			if got := Dir(); got != tt.want {
				t.Errorf("Dir() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPaths(t *testing.T) {
	t.Setenv("HEADSTART_CACHE", "/c")
	tests := []struct{ got, want string }{
		{RuntimeLib(), "/c/onnxruntime/1.24.1/libonnxruntime.so.1.24.1"},
		{ModelDir("all-minilm-l6-v2"), "/c/models/all-minilm-l6-v2"},
		{VenvPython(), "/c/venv-test/bin/python"},
	}
	for _, tt := range tests {
		if filepath.ToSlash(tt.got) != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
