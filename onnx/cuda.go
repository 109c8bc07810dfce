package onnx

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/headstart-ml/headstart/internal/cache"
)

// The CUDA build of onnxruntime, as scripts/setup.sh gpu lays it out in the
// cache:
//
//	<cache>/onnxruntime/1.24.1-gpu/libonnxruntime.so.1.24.1
//	<cache>/onnxruntime/1.24.1-gpu/libonnxruntime_providers_shared.so
//	<cache>/onnxruntime/1.24.1-gpu/libonnxruntime_providers_cuda.so
//	<cache>/onnxruntime/1.24.1-gpu/cuda/libcudart.so.12, libcublas.so.12, ...
//
// The CUDA build runs the CPU provider as well; it is a separate directory so
// that the default CPU runtime stays the small, tested one.
const (
	// gpuSetupHint tells the user how to get the CUDA build.
	gpuSetupHint = "run scripts/setup.sh gpu (or make setup-gpu)"
	// cudaSubdir is the directory, next to the runtime library, that holds
	// the CUDA and cuDNN libraries the CUDA provider links against.
	cudaSubdir = "cuda"
	// driverLib is the NVIDIA driver's CUDA library. It comes with the
	// driver, never with onnxruntime or the CUDA wheels.
	driverLib = "libcuda.so.1"
)

// GPULibrary returns where scripts/setup.sh gpu puts the CUDA build of
// onnxruntime: <cache>/onnxruntime/1.24.1-gpu/libonnxruntime.so.1.24.1. It
// only computes the path.
func GPULibrary() string {
	return filepath.Join(cache.Dir(), "onnxruntime", cache.RuntimeVersion+"-gpu", "libonnxruntime.so."+cache.RuntimeVersion)
}

// FindLibraryFor is FindLibrary for a session provider. The explicit path
// and $HEADSTART_ORT_LIB decide as in FindLibrary. Otherwise, for
// ProviderCUDA and ProviderAuto, it returns the CUDA build in the cache
// (GPULibrary) when that is there, and the CPU build otherwise; for
// ProviderCPU, always the CPU build.
//
// A CUDA request answered with the CPU build is not an error here: opening a
// CUDA session then fails with ErrCUDAUnavailable, naming the missing
// provider libraries and how to fetch them, and ProviderAuto falls back to
// the CPU.
func FindLibraryFor(explicit string, p Provider) (string, error) {
	if explicit == "" && os.Getenv(EnvLibrary) == "" && p.Kind != ProviderCPU {
		if st, err := os.Stat(GPULibrary()); err == nil && !st.IsDir() {
			return GPULibrary(), nil
		}
	}
	return FindLibrary(explicit)
}

// cudaLoad caches loadCUDA's outcome: the CUDA libraries are loaded once per
// process, like the runtime itself.
var cudaLoad struct {
	once    sync.Once
	err     error
	devices int
}

// ensureCUDA loads the CUDA provider's libraries next to the loaded runtime
// (see loadCUDA) once per process and checks that device exists.
func ensureCUDA(device int) error {
	cudaLoad.once.Do(func() {
		cudaLoad.devices, cudaLoad.err = loadCUDA(filepath.Dir(LibraryPath()))
	})
	if cudaLoad.err != nil {
		return fmt.Errorf("%w: %w", ErrCUDAUnavailable, cudaLoad.err)
	}
	if device >= cudaLoad.devices {
		return fmt.Errorf("%w: cuda:%d: the driver reports %d CUDA device(s); want a device in 0..%d",
			ErrCUDAUnavailable, device, cudaLoad.devices, cudaLoad.devices-1)
	}
	return nil
}

// loadCUDA makes the CUDA provider of the runtime in dir loadable, and says
// precisely what is missing when it is not. It returns the number of CUDA
// devices.
//
// onnxruntime dlopens dir/libonnxruntime_providers_cuda.so when a session
// asks for CUDA; that library names libcudart.so.12, libcublas.so.12,
// libcudnn.so.9 and others as DT_NEEDED without a search path of its own, so
// the dynamic loader would look for them only in the system directories and
// $LD_LIBRARY_PATH, which the loader reads once, at process start. Instead,
// loadCUDA loads each of them that dir/cuda holds (scripts/setup.sh gpu puts
// them there) by absolute path, dependencies first, with RTLD_GLOBAL; a later
// lookup by soname then finds the loaded copy. Libraries that dir/cuda does
// not hold are left to the system loader (a system CUDA installation, or
// $LD_LIBRARY_PATH set before the process started).
//
// It then loads the driver (libcuda.so.1), initialises it and counts the
// devices, and loads by soname, from the system loader's path, every other
// library the provider needs, so that a missing one is named by the loader's
// own message ("libcublasLt.so.12: cannot open shared object file") rather
// than by onnxruntime's generic failure later. All of these errors are
// joined: every missing piece is reported at once.
func loadCUDA(dir string) (devices int, err error) {
	shared := filepath.Join(dir, "libonnxruntime_providers_shared.so")
	provider := filepath.Join(dir, "libonnxruntime_providers_cuda.so")
	var missing []string
	for _, p := range []string{shared, provider} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, filepath.Base(p))
		}
	}
	if len(missing) > 0 {
		if gpu := GPULibrary(); filepath.Dir(gpu) != dir {
			if _, err := os.Stat(gpu); err == nil {
				return 0, fmt.Errorf("%s not found in %s: this process loaded onnxruntime from there, not the CUDA build in %s, and a process can load onnxruntime only once (open the first session with the CUDA provider, or pass its path explicitly)",
					strings.Join(missing, " and "), dir, gpu)
			}
		}
		return 0, fmt.Errorf("%s not found in %s: this onnxruntime is not the CUDA build; %s, which puts it in %s, or point --ort-lib ($%s) at an onnxruntime-gpu %s build",
			strings.Join(missing, " and "), dir, gpuSetupHint, filepath.Dir(GPULibrary()), EnvLibrary, cache.RuntimeVersion)
	}
	seen := map[string]bool{driverLib: true} // the driver is checked on its own below
	if err := preloadNeeded(provider, filepath.Join(dir, cudaSubdir), seen); err != nil {
		return 0, err
	}
	var errs []error
	devices, derr := cudaDevices()
	if derr != nil {
		errs = append(errs, derr)
	}
	// What the provider needs beyond what dir/cuda held must come from the
	// system loader's path. (The provider itself is not loaded here: its
	// initialisers need the host interface that onnxruntime sets up first.)
	needed, err := neededLibs(provider)
	if err != nil {
		return 0, err
	}
	// The loader's messages are "NAME: reason"; names with the same reason
	// are listed together.
	var libErrs, reasons []string
	byReason := map[string][]string{}
	for _, name := range needed {
		if !seen[name] {
			if err := dlopen(name, true); err != nil {
				reason, ok := strings.CutPrefix(err.Error(), name+": ")
				if !ok {
					libErrs = append(libErrs, err.Error())
					continue
				}
				if byReason[reason] == nil {
					reasons = append(reasons, reason)
				}
				byReason[reason] = append(byReason[reason], name)
			}
		}
	}
	for _, r := range reasons {
		libErrs = append(libErrs, strings.Join(byReason[r], ", ")+": "+r)
	}
	if len(libErrs) > 0 {
		errs = append(errs, fmt.Errorf("%s needs libraries that are neither in %s (where scripts/setup.sh gpu puts them) nor on the system loader's path: %s",
			filepath.Base(provider), filepath.Join(dir, cudaSubdir), strings.Join(libErrs, "; ")))
	}
	if len(errs) > 0 {
		return 0, joinedError(errs)
	}
	if devices == 0 {
		return 0, errors.New("the NVIDIA driver is loaded but reports no CUDA device")
	}
	return devices, nil
}

// preloadNeeded loads, by absolute path and dependencies first, every
// library that the ELF file at path needs and that dir holds, and marks it in
// seen.
func preloadNeeded(path, dir string, seen map[string]bool) error {
	needed, err := neededLibs(path)
	if err != nil {
		return err
	}
	for _, name := range needed {
		p := filepath.Join(dir, name)
		if seen[name] {
			continue
		}
		if _, err := os.Stat(p); err != nil {
			continue // not ours: the system loader will look for it
		}
		seen[name] = true
		if err := preloadNeeded(p, dir, seen); err != nil {
			return err
		}
		if err := dlopen(p, true); err != nil {
			return err
		}
	}
	return nil
}

// neededLibs returns the DT_NEEDED entries of the ELF file at path.
func neededLibs(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	libs, err := f.ImportedLibraries()
	if err != nil {
		return nil, fmt.Errorf("reading the dependencies of %s: %w", path, err)
	}
	return libs, nil
}

// joinedError is errors.Join on one line: its messages separated by "; ".
type joinedError []error

func (e joinedError) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (e joinedError) Unwrap() []error { return e }
