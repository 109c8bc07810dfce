package onnx

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestFindLibraryFor(t *testing.T) {
	dir := t.TempDir()
	explicit := filepath.Join(dir, "libonnxruntime.so")
	if err := os.WriteFile(explicit, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cacheDir := filepath.Join(dir, "cache")
	t.Setenv("HEADSTART_CACHE", cacheDir)
	cpu := filepath.Join(cacheDir, "onnxruntime", "1.24.1", "libonnxruntime.so.1.24.1")
	gpu := filepath.Join(cacheDir, "onnxruntime", "1.24.1-gpu", "libonnxruntime.so.1.24.1")
	if GPULibrary() != gpu {
		t.Fatalf("GPULibrary() = %q, want %q", GPULibrary(), gpu)
	}
	for _, p := range []string{cpu, gpu} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	cudaP, autoP, cpuP := Provider{Kind: ProviderCUDA, Device: 1}, Provider{Kind: ProviderAuto}, Provider{}
	tests := []struct {
		name     string
		explicit string
		env      string
		gpuBuild bool
		p        Provider
		want     string
	}{
		{"cpu ignores the CUDA build", "", "", true, cpuP, cpu},
		{"cuda takes the CUDA build", "", "", true, cudaP, gpu},
		{"auto takes the CUDA build", "", "", true, autoP, gpu},
		{"cuda without the CUDA build gets the CPU build", "", "", false, cudaP, cpu},
		{"auto without the CUDA build gets the CPU build", "", "", false, autoP, cpu},
		{"explicit wins", explicit, "", true, cudaP, explicit},
		{"env wins", "", explicit, true, autoP, explicit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(gpu)
			if err := os.WriteFile(cpu, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			if tt.gpuBuild {
				if err := os.WriteFile(gpu, []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv(EnvLibrary, tt.env)
			got, err := FindLibraryFor(tt.explicit, tt.p)
			if err != nil || got != tt.want {
				t.Errorf("FindLibraryFor(%q, %v) = %q, %v; want %q", tt.explicit, tt.p, got, err, tt.want)
			}
		})
	}

	// Neither build: the CPU build's error, naming the setup step.
	os.Remove(gpu)
	os.Remove(cpu)
	t.Setenv(EnvLibrary, "")
	if _, err := FindLibraryFor("", cudaP); !errors.Is(err, ErrNoRuntime) || !strings.Contains(err.Error(), "scripts/setup.sh runtime") {
		t.Errorf("FindLibraryFor with nothing cached: %v; want ErrNoRuntime naming scripts/setup.sh runtime", err)
	}
}

// fakeLib compiles a shared library named name into dir whose DT_NEEDED
// lists the libraries in needed (found at link time in linkDir).
func fakeLib(t *testing.T, dir, name, linkDir string, needed ...string) {
	t.Helper()
	cc := strings.Fields(os.Getenv("CC")) // may carry flags ("gcc -m64")
	if len(cc) == 0 {
		cc = []string{"cc"}
	}
	src := filepath.Join(t.TempDir(), "fake.c")
	if err := os.WriteFile(src, []byte("int headstart_fake_"+strings.NewReplacer(".", "_", "-", "_").Replace(name)+"(void) { return 1; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{cc[0]}
	args = append(args, cc[1:]...)
	args = append(args, "-shared", "-fPIC", "-o", filepath.Join(dir, name), "-Wl,-soname,"+name, src, "-Wl,--no-as-needed", "-L"+linkDir)
	for _, n := range needed {
		args = append(args, "-l:"+n)
	}
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s (cgo needs a C compiler, so the tests do too)", args, err, out)
	}
}

// TestLoadCUDAFakeLibs checks loadCUDA's loading and its messages with stand-in
// libraries built here: a provider needing a "BLAS" (which needs its "Lt"
// part) and a "runtime", laid out as scripts/setup.sh gpu does. Unique sonames
// keep the loaded stand-ins from meeting the real CUDA libraries.
func TestLoadCUDAFakeLibs(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("loading the CUDA libraries is implemented on Linux only")
	}
	dir := t.TempDir()
	cuda := filepath.Join(dir, cudaSubdir)
	stash := filepath.Join(dir, "stash")
	for _, d := range []string{cuda, stash} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const blasLt, blas, rt = "libhsfake_blasLt.so.7", "libhsfake_blas.so.7", "libhsfake_rt.so.7"
	fakeLib(t, cuda, blasLt, cuda)
	fakeLib(t, cuda, blas, cuda, blasLt) // no search path: loads only if blasLt is loaded first
	fakeLib(t, stash, rt, stash)
	both := t.TempDir()
	for _, n := range []string{blasLt, blas, rt} {
		src := filepath.Join(cuda, n)
		if n == rt {
			src = filepath.Join(stash, n)
		}
		if err := os.Symlink(src, filepath.Join(both, n)); err != nil {
			t.Fatal(err)
		}
	}
	fakeLib(t, dir, "libonnxruntime_providers_cuda.so", both, blas, rt)
	if err := os.WriteFile(filepath.Join(dir, "libonnxruntime_providers_shared.so"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	// The runtime is missing: named, with where it was looked for.
	_, err := loadCUDA(dir)
	if err == nil || !strings.Contains(err.Error(), rt+": cannot open shared object file") || !strings.Contains(err.Error(), cuda) {
		t.Fatalf("loadCUDA without %s: %v; want an error naming it and %s", rt, err, cuda)
	}
	if strings.Contains(err.Error(), blas) {
		t.Errorf("loadCUDA: %v; %s and %s are in %s and load, dependency first", err, blas, blasLt, cuda)
	}
	t.Logf("without %s: %v", rt, err)

	// Everything in place: what is left is the driver, if this machine has none.
	if err := os.Rename(filepath.Join(stash, rt), filepath.Join(cuda, rt)); err != nil {
		t.Fatal(err)
	}
	devices, err := loadCUDA(dir)
	switch {
	case err == nil:
		t.Logf("all libraries loaded; the driver reports %d CUDA device(s)", devices)
	case strings.Contains(err.Error(), "libhsfake"):
		t.Errorf("loadCUDA with every library in place: %v", err)
	case !strings.Contains(err.Error(), driverLib):
		t.Errorf("loadCUDA with every library in place: %v; want only the driver (%s) reported", err, driverLib)
	default:
		t.Logf("every library in place; no driver here: %v", err)
	}
}

// TestLoadCUDAGPUBuild loads the real CUDA build when scripts/setup.sh gpu has
// fetched it (2.7 GB: optional, never fetched by make setup or CI). Every CUDA
// library must then load from the cache, and all that may be missing is the
// NVIDIA driver, which the error must name.
func TestLoadCUDAGPUBuild(t *testing.T) {
	lib := GPULibrary()
	if _, err := os.Stat(lib); err != nil {
		t.Skipf("optional check not run: the CUDA build is not in the cache (%s); scripts/setup.sh gpu fetches it", lib)
	}
	t.Logf("the CUDA build is in the cache (%s): checking that its CUDA libraries load", lib)
	devices, err := loadCUDA(filepath.Dir(lib))
	if err == nil {
		t.Logf("CUDA loaded: %d device(s)", devices)
		return
	}
	msg := err.Error()
	if !strings.Contains(msg, driverLib+" (the NVIDIA driver)") {
		t.Fatalf("loadCUDA(%s): %v; want every CUDA library loaded and, at most, the driver missing", filepath.Dir(lib), err)
	}
	if strings.Contains(msg, "needs libraries") {
		t.Errorf("loadCUDA(%s): %v; the CUDA libraries in cuda/ did not all load", filepath.Dir(lib), err)
	}
	t.Logf("CUDA libraries loaded; no driver on this machine: %v", err)
}
