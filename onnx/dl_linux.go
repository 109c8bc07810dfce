//go:build linux

package onnx

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

// hs_dlopen loads path (RTLD_NOW; RTLD_GLOBAL or RTLD_LOCAL) and returns the
// handle, or NULL with the loader's message in *err (malloc'd). dlerror is
// read on the same thread as dlopen, inside this one call.
static void *hs_dlopen(const char *path, int global, char **err) {
	void *h = dlopen(path, RTLD_NOW | (global ? RTLD_GLOBAL : RTLD_LOCAL));
	if (h == NULL) {
		const char *e = dlerror();
		*err = strdup(e != NULL ? e : "unknown dlopen error");
	}
	return h;
}

typedef int (*hs_cuInit)(unsigned int);
typedef int (*hs_cuDeviceGetCount)(int *);
typedef int (*hs_cuGetErrorName)(int, const char **);

// hs_cuda_devices loads the driver library, calls cuInit(0) and
// cuDeviceGetCount. It returns 0 and sets *count, or: -1 (driver not loaded,
// message in *err), -2 (a symbol missing, message in *err), or the CUresult
// of the failed call, with its name in *err when the driver gives one.
static int hs_cuda_devices(const char *lib, int *count, char **err) {
	void *h = hs_dlopen(lib, 1, err);
	if (h == NULL) {
		return -1;
	}
	hs_cuInit init = (hs_cuInit)dlsym(h, "cuInit");
	hs_cuDeviceGetCount getCount = (hs_cuDeviceGetCount)dlsym(h, "cuDeviceGetCount");
	hs_cuGetErrorName errName = (hs_cuGetErrorName)dlsym(h, "cuGetErrorName");
	if (init == NULL || getCount == NULL) {
		*err = strdup("cuInit or cuDeviceGetCount not found");
		return -2;
	}
	int rc = init(0);
	if (rc == 0) {
		rc = getCount(count);
	}
	if (rc != 0 && errName != NULL) {
		const char *name = NULL;
		if (errName(rc, &name) == 0 && name != NULL) {
			*err = strdup(name);
		}
	}
	return rc;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// dlopen loads the shared library at path for the life of the process. The
// error is the dynamic loader's message, which names the file it could not
// open or the symbol it could not find.
func dlopen(path string, global bool) error {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var cerr *C.char
	g := C.int(0)
	if global {
		g = 1
	}
	if C.hs_dlopen(cpath, g, &cerr) == nil {
		defer C.free(unsafe.Pointer(cerr))
		return errors.New(C.GoString(cerr))
	}
	return nil
}

// cudaDevices loads the NVIDIA driver's libcuda.so.1, initialises it and
// returns the number of CUDA devices.
func cudaDevices() (int, error) {
	clib := C.CString(driverLib)
	defer C.free(unsafe.Pointer(clib))
	var count C.int
	var cerr *C.char
	rc := C.hs_cuda_devices(clib, &count, &cerr)
	msg := ""
	if cerr != nil {
		msg = C.GoString(cerr)
		C.free(unsafe.Pointer(cerr))
	}
	switch {
	case rc == 0:
		return int(count), nil
	case rc == -1:
		return 0, fmt.Errorf("%s (the NVIDIA driver) not found (%s); the CUDA provider needs an NVIDIA GPU and its driver", driverLib, msg)
	case rc == -2:
		return 0, fmt.Errorf("%s: %s", driverLib, msg)
	case msg != "":
		return 0, fmt.Errorf("%s: cuInit/cuDeviceGetCount failed: %s (CUresult %d)", driverLib, msg, int(rc))
	}
	return 0, fmt.Errorf("%s: cuInit/cuDeviceGetCount failed: CUresult %d", driverLib, int(rc))
}
