//go:build !linux

package onnx

import (
	"errors"
	"runtime"
)

// errNoDL says that loading the CUDA libraries is implemented on Linux only.
var errNoDL = errors.New("loading the CUDA provider's libraries is implemented on Linux only, not " + runtime.GOOS)

func dlopen(path string, global bool) error { return errNoDL }

func cudaDevices() (int, error) { return 0, errNoDL }
