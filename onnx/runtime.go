package onnx

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/headstart-ml/headstart/internal/cache"
	"github.com/headstart-ml/headstart/internal/fpu"
)

// EnvLibrary is the environment variable that names the onnxruntime shared
// library, overriding the cache.
const EnvLibrary = "HEADSTART_ORT_LIB"

// setupHint tells the user how to get the runtime.
const setupHint = "run scripts/setup.sh runtime (or make setup)"

// FindLibrary returns the path of the onnxruntime shared library to load.
// It looks, in order, at:
//
//  1. explicit, when not empty (a command-line flag);
//  2. $HEADSTART_ORT_LIB, when set;
//  3. the cache: <cache>/onnxruntime/1.24.1/libonnxruntime.so.1.24.1, where
//     <cache> is $HEADSTART_CACHE or ${XDG_CACHE_HOME:-$HOME/.cache}/headstart.
//
// The first place that is set decides: a path given explicitly or in the
// environment that does not exist is an error, not a reason to look further.
// The error wraps ErrNoRuntime, names the places tried and says how to fetch
// the library. FindLibraryFor picks the CUDA build instead when a session
// will ask for CUDA.
func FindLibrary(explicit string) (string, error) {
	var tried []string
	check := func(what, path string) (string, error) {
		st, err := os.Stat(path)
		if err == nil && !st.IsDir() {
			return path, nil
		}
		reason := "is a directory"
		if err != nil {
			reason = "not found"
			if !errors.Is(err, os.ErrNotExist) {
				reason = err.Error()
			}
		}
		tried = append(tried, fmt.Sprintf("%s %s (%s)", what, path, reason))
		return "", fmt.Errorf("%w: tried %s; %s", ErrNoRuntime, strings.Join(tried, ", "), setupHint)
	}
	if explicit != "" {
		return check("explicit path", explicit)
	}
	if env := os.Getenv(EnvLibrary); env != "" {
		return check("$"+EnvLibrary+" =", env)
	}
	tried = append(tried, "$"+EnvLibrary+" (not set)")
	return check("cache", cache.RuntimeLib())
}

// rt is the package's only global state: the loaded runtime.
var rt struct {
	mu      sync.Mutex
	path    string // absolute path of the loaded library; "" until Init succeeds
	version string
}

// Init loads the onnxruntime shared library at libPath and creates the
// process-wide onnxruntime environment. An empty libPath means
// FindLibrary(""), or, once a library is loaded, that library.
//
// Init is idempotent and safe for concurrent use: once it has succeeded,
// later calls naming the same library (or none) return nil at once, and a
// call naming a different library returns an error, since a process can hold
// only one onnxruntime environment. A failed Init can be retried. This loaded
// runtime is the package's only global state; it lives until the process
// exits.
func Init(libPath string) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if libPath == "" {
		if rt.path != "" {
			return nil
		}
		p, err := FindLibrary("")
		if err != nil {
			return err
		}
		libPath = p
	}
	abs, err := filepath.Abs(libPath)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrNoRuntime, libPath, err)
	}
	if rt.path != "" {
		if rt.path == abs {
			return nil
		}
		return fmt.Errorf("onnx: Init(%q): onnxruntime is already loaded from %s, and a process can load only one", libPath, rt.path)
	}
	if _, err := FindLibrary(abs); err != nil {
		return err
	}
	ort.SetSharedLibraryPath(abs)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("%w: loading %s: %v; %s", ErrNoRuntime, abs, err, setupHint)
	}
	rt.path, rt.version = abs, ort.GetVersion()
	return nil
}

// Version returns the version of the loaded onnxruntime ("1.24.1"), or ""
// before Init has succeeded.
func Version() string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.version
}

// LibraryPath returns the absolute path of the loaded onnxruntime library,
// or "" before Init has succeeded.
func LibraryPath() string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.path
}

// ProviderKind is the kind of execution provider a session runs on.
type ProviderKind uint8

const (
	// ProviderCPU is onnxruntime's default CPU provider (MLAS). The zero
	// value.
	ProviderCPU ProviderKind = iota
	// ProviderCUDA is the CUDA provider on one GPU. It needs the CUDA build
	// of onnxruntime (libonnxruntime_providers_shared.so and
	// libonnxruntime_providers_cuda.so next to the runtime library; see
	// FindLibraryFor and GPULibrary), the CUDA and cuDNN libraries they link
	// against (in the cuda directory beside them, or on the system loader's
	// path), and the NVIDIA driver (libcuda.so.1).
	ProviderCUDA
	// ProviderAuto tries CUDA and falls back to CPU when CUDA is
	// unavailable; Session.Provider reports the choice.
	ProviderAuto
)

// Provider selects an execution provider. The zero value is the CPU.
type Provider struct {
	Kind ProviderKind
	// Device is the CUDA device ordinal (the N of "cuda:N"), used by
	// ProviderCUDA and ProviderAuto. Default 0.
	Device int
}

// providerChoices lists what ParseProvider accepts, for error messages.
const providerChoices = "cpu, cuda, cuda:N, auto, auto:N"

// ParseProvider parses "cpu", "cuda" (device 0), "cuda:N", "auto" or
// "auto:N" (case-insensitive).
func ParseProvider(s string) (Provider, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	switch v {
	case "cpu":
		return Provider{Kind: ProviderCPU}, nil
	case "cuda":
		return Provider{Kind: ProviderCUDA}, nil
	case "auto":
		return Provider{Kind: ProviderAuto}, nil
	}
	for prefix, kind := range map[string]ProviderKind{"cuda:": ProviderCUDA, "auto:": ProviderAuto} {
		if dev, ok := strings.CutPrefix(v, prefix); ok {
			n, err := strconv.Atoi(dev)
			if err != nil || n < 0 {
				return Provider{}, fmt.Errorf("onnx: provider %q: device %q is not a non-negative integer; want one of %s", s, dev, providerChoices)
			}
			return Provider{Kind: kind, Device: n}, nil
		}
	}
	return Provider{}, fmt.Errorf("onnx: provider %q unknown; want one of %s", s, providerChoices)
}

// String returns "cpu", "cuda:N" or "auto" ("auto:N" for a device other
// than 0); ParseProvider reads it back.
func (p Provider) String() string {
	switch p.Kind {
	case ProviderCPU:
		return "cpu"
	case ProviderCUDA:
		return "cuda:" + strconv.Itoa(p.Device)
	case ProviderAuto:
		if p.Device != 0 {
			return "auto:" + strconv.Itoa(p.Device)
		}
		return "auto"
	}
	return fmt.Sprintf("provider(%d)", p.Kind)
}

// OptLevel is onnxruntime's graph optimisation level.
type OptLevel uint8

const (
	// OptAll enables all optimisations, including layout changes and
	// fusions (ORT_ENABLE_ALL). The zero value and the default.
	OptAll OptLevel = iota
	// OptExtended enables basic plus extended fusions (ORT_ENABLE_EXTENDED).
	OptExtended
	// OptBasic enables semantics-preserving rewrites such as constant
	// folding (ORT_ENABLE_BASIC).
	OptBasic
	// OptDisabled runs the graph as written (ORT_DISABLE_ALL).
	OptDisabled
)

var optLevelNames = [...]string{OptAll: "all", OptExtended: "extended", OptBasic: "basic", OptDisabled: "disabled"}

// String returns "all", "extended", "basic" or "disabled".
func (l OptLevel) String() string {
	if int(l) < len(optLevelNames) {
		return optLevelNames[l]
	}
	return fmt.Sprintf("optlevel(%d)", l)
}

// ParseOptLevel parses the names String returns.
func ParseOptLevel(s string) (OptLevel, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	for i, name := range optLevelNames {
		if v == name {
			return OptLevel(i), nil
		}
	}
	return 0, fmt.Errorf("onnx: optimisation level %q unknown; want one of %s", s, strings.Join(optLevelNames[:], ", "))
}

func (l OptLevel) ort() (ort.GraphOptimizationLevel, error) {
	switch l {
	case OptAll:
		return ort.GraphOptimizationLevelEnableAll, nil
	case OptExtended:
		return ort.GraphOptimizationLevelEnableExtended, nil
	case OptBasic:
		return ort.GraphOptimizationLevelEnableBasic, nil
	case OptDisabled:
		return ort.GraphOptimizationLevelDisableAll, nil
	}
	return 0, fmt.Errorf("onnx: optimisation level %d unknown; want one of %s", l, strings.Join(optLevelNames[:], ", "))
}

// SessionOptions configures a Session. The zero value is valid: default
// threading, all optimisations, CPU.
type SessionOptions struct {
	// IntraOpThreads is the number of threads one operator (a MatMul) is
	// split over. 0 (default) lets onnxruntime choose: one per physical
	// core.
	IntraOpThreads int
	// InterOpThreads is the number of threads that run independent
	// operators at once. 0 (default) lets onnxruntime choose. It matters
	// only in parallel execution mode, which this package does not enable.
	InterOpThreads int
	// OptLevel is the graph optimisation level. Default OptAll.
	OptLevel OptLevel
	// Provider is the execution provider. Default (zero value) CPU.
	Provider Provider
	// KeepSubnormals runs the CPU kernels with IEEE 754 subnormal floats. By default
	// they are flushed to zero, on the thread that calls Run and on onnxruntime's own
	// threads: masked attention scores otherwise turn into subnormals that slow every
	// operation touching them by an order of magnitude (see package internal/fpu), and
	// flushing changes results only below float32's smallest normal number.
	KeepSubnormals bool
}

// Session runs one model. Create it with NewSessionFromFile or
// NewSessionFromBytes and release it with Close.
//
// Run is safe for concurrent use, and concurrent runs share the one copy of
// the weights: with IntraOpThreads 1, N goroutines calling Run keep N cores
// busy with no synchronisation inside a run, which on small batches beats one
// run spread over N threads (see Extract's Runs). Close must not overlap a Run.
type Session struct {
	sess     *ort.DynamicAdvancedSession
	inputs   []TensorInfo
	outputs  []TensorInfo
	inDims   [][]string // symbolic dimension names per input, for Run's checks
	outDims  [][]string // symbolic dimension names per output
	provider Provider
	fallback error
	// keepSubnormals: Run leaves the thread's floating-point control as it is.
	keepSubnormals bool

	// direct is true while Run lets onnxruntime write outputs straight
	// into dst: every output's shape follows from the inputs' (fixed sizes,
	// or symbolic names that the inputs carry). It turns false for good if
	// a run with those shapes fails and one without them succeeds.
	direct atomic.Bool

	// scratch holds *runState values, one per Run in flight.
	scratch sync.Pool
}

// runState is the scratch of one Run.
type runState struct {
	inVals  []ort.Value
	outVals []ort.Value
	sym     map[string]int64 // symbolic dimension sizes of this run
}

// NewSessionFromFile opens the model at path. inputNames and outputNames
// select the inputs Run feeds and the outputs it returns, in that order; nil
// means all of the model's, in graph order. Every selected input must be
// int64 and every selected output float32 (what Run exchanges).
//
// The file is checked before onnxruntime sees it: one that is not an ONNX
// model gives an error wrapping ErrNotONNX. Init must have succeeded
// (otherwise the error wraps ErrNoRuntime). For ProviderCUDA, an error
// wrapping ErrCUDAUnavailable names what is missing.
func NewSessionFromFile(path string, inputNames, outputNames []string, opts SessionOptions) (*Session, error) {
	if err := checkInit(); err != nil {
		return nil, err
	}
	sum, err := summarizeFile(path)
	if err != nil {
		return nil, err
	}
	return newSession(sum, path, func(o *ort.SessionOptions, in, out []string) (*ort.DynamicAdvancedSession, error) {
		return ort.NewDynamicAdvancedSession(path, in, out, o)
	}, inputNames, outputNames, opts)
}

// NewSessionFromBytes is NewSessionFromFile for a model held in memory, such
// as the result of Model.Marshal. onnxruntime copies what it needs; data may
// be reused after the call. Models that keep weights in external data files
// must be opened from a file instead.
func NewSessionFromBytes(data []byte, inputNames, outputNames []string, opts SessionOptions) (*Session, error) {
	if err := checkInit(); err != nil {
		return nil, err
	}
	sum, err := summarizeBytes(data, "model data")
	if err != nil {
		return nil, err
	}
	return newSession(sum, "model data", func(o *ort.SessionOptions, in, out []string) (*ort.DynamicAdvancedSession, error) {
		return ort.NewDynamicAdvancedSessionWithONNXData(data, in, out, o)
	}, inputNames, outputNames, opts)
}

func checkInit() error {
	if LibraryPath() == "" {
		return fmt.Errorf("%w: onnx.Init has not been called", ErrNoRuntime)
	}
	return nil
}

type createFunc func(o *ort.SessionOptions, in, out []string) (*ort.DynamicAdvancedSession, error)

func newSession(sum *modelSummary, what string, create createFunc, inputNames, outputNames []string, opts SessionOptions) (*Session, error) {
	s := &Session{keepSubnormals: opts.KeepSubnormals}
	var err error
	var inIdx []int
	if s.inputs, inIdx, err = selectInfos("input", what, sum.inputs, inputNames, DTypeInt64); err != nil {
		return nil, err
	}
	for _, i := range inIdx {
		s.inDims = append(s.inDims, sum.inDims[i])
	}
	var outIdx []int
	if s.outputs, outIdx, err = selectInfos("output", what, sum.outputs, outputNames, DTypeFloat32); err != nil {
		return nil, err
	}
	for _, i := range outIdx {
		s.outDims = append(s.outDims, sum.outDims[i])
	}
	s.direct.Store(s.outputShapesKnown())
	if opts.IntraOpThreads < 0 || opts.InterOpThreads < 0 {
		return nil, fmt.Errorf("onnx: thread counts must be >= 0 (0 = runtime default), got intra-op %d, inter-op %d",
			opts.IntraOpThreads, opts.InterOpThreads)
	}
	if _, err := opts.OptLevel.ort(); err != nil {
		return nil, err
	}
	if opts.Provider.Device < 0 {
		return nil, fmt.Errorf("onnx: provider %s: negative device", opts.Provider)
	}
	in, out := names(s.inputs), names(s.outputs)

	switch p := opts.Provider; p.Kind {
	case ProviderCPU:
		s.sess, err = createSession(create, in, out, opts, Provider{Kind: ProviderCPU})
		s.provider = Provider{Kind: ProviderCPU}
	case ProviderCUDA:
		s.sess, err = createSession(create, in, out, opts, p)
		s.provider = p
	case ProviderAuto:
		cuda := Provider{Kind: ProviderCUDA, Device: p.Device}
		s.sess, err = createSession(create, in, out, opts, cuda)
		s.provider = cuda
		if err != nil {
			s.fallback = err
			s.provider = Provider{Kind: ProviderCPU}
			s.sess, err = createSession(create, in, out, opts, s.provider)
		}
	default:
		return nil, fmt.Errorf("onnx: provider %s unknown; want one of %s", p, providerChoices)
	}
	if err != nil {
		return nil, fmt.Errorf("onnx: opening %s on %s: %w", what, s.provider, err)
	}
	nin, nout := len(s.inputs), len(s.outputs)
	s.scratch.New = func() any {
		return &runState{inVals: make([]ort.Value, nin), outVals: make([]ort.Value, nout), sym: make(map[string]int64)}
	}
	return s, nil
}

// selectInfos picks the named entries of all (all of them for nil names),
// checking that they exist, are not repeated and have dtype want.
func selectInfos(kind, what string, all []TensorInfo, names []string, want DType) ([]TensorInfo, []int, error) {
	var idx []int
	if names == nil {
		for i := range all {
			idx = append(idx, i)
		}
	} else {
		seen := make(map[string]bool)
		for _, n := range names {
			if seen[n] {
				return nil, nil, fmt.Errorf("onnx: %s: %s %q named twice", what, kind, n)
			}
			seen[n] = true
			i := indexOf(all, n)
			if i < 0 {
				return nil, nil, fmt.Errorf("onnx: %s: no %s %q; the model's %ss are %s", what, kind, n, kind, namesOf(all))
			}
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil, nil, fmt.Errorf("onnx: %s: no %ss selected", what, kind)
	}
	sel := make([]TensorInfo, len(idx))
	for j, i := range idx {
		sel[j] = all[i].clone()
		if sel[j].DType != want {
			return nil, nil, fmt.Errorf("onnx: %s: %s %q is %s; Session supports %s %ss only",
				what, kind, sel[j].Name, sel[j].DType, want, kind)
		}
	}
	return sel, idx, nil
}

func indexOf(ts []TensorInfo, name string) int {
	for i, t := range ts {
		if t.Name == name {
			return i
		}
	}
	return -1
}

func names(ts []TensorInfo) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}

// createSession builds onnxruntime session options for p and creates the
// session. p is ProviderCPU or ProviderCUDA.
func createSession(create createFunc, in, out []string, opts SessionOptions, p Provider) (sess *ort.DynamicAdvancedSession, err error) {
	o, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("creating session options: %w", err)
	}
	defer func() {
		if derr := o.Destroy(); derr != nil {
			err = errors.Join(err, fmt.Errorf("destroying session options: %w", derr))
		}
	}()
	if opts.IntraOpThreads > 0 {
		if err := o.SetIntraOpNumThreads(opts.IntraOpThreads); err != nil {
			return nil, fmt.Errorf("setting %d intra-op threads: %w", opts.IntraOpThreads, err)
		}
	}
	if opts.InterOpThreads > 0 {
		if err := o.SetInterOpNumThreads(opts.InterOpThreads); err != nil {
			return nil, fmt.Errorf("setting %d inter-op threads: %w", opts.InterOpThreads, err)
		}
	}
	lvl, err := opts.OptLevel.ort()
	if err != nil {
		return nil, err
	}
	if err := o.SetGraphOptimizationLevel(lvl); err != nil {
		return nil, fmt.Errorf("setting optimisation level %s: %w", opts.OptLevel, err)
	}
	if !opts.KeepSubnormals {
		if err := o.AddSessionConfigEntry("session.set_denormal_as_zero", "1"); err != nil {
			return nil, fmt.Errorf("setting session.set_denormal_as_zero: %w", err)
		}
	}
	if p.Kind == ProviderCUDA {
		if err := appendCUDA(o, p.Device); err != nil {
			return nil, err
		}
	}
	// onnxruntime may set the flush flags on the thread that creates the session
	// (session.set_denormal_as_zero): keep that from leaking into the Go thread.
	st := fpu.Flush()
	sess, err = create(o, in, out)
	fpu.Restore(st)
	if err != nil && p.Kind == ProviderCUDA {
		return nil, cudaError(p.Device, err)
	}
	return sess, err
}

// appendCUDA enables the CUDA provider on device in o. On failure the error
// wraps ErrCUDAUnavailable and names what is missing (see loadCUDA).
func appendCUDA(o *ort.SessionOptions, device int) (err error) {
	if err := ensureCUDA(device); err != nil {
		return err
	}
	cu, err := ort.NewCUDAProviderOptions()
	if err != nil {
		return cudaError(device, err)
	}
	defer func() {
		if derr := cu.Destroy(); derr != nil {
			err = errors.Join(err, fmt.Errorf("destroying CUDA provider options: %w", derr))
		}
	}()
	if err := cu.Update(map[string]string{"device_id": strconv.Itoa(device)}); err != nil {
		return cudaError(device, err)
	}
	if err := o.AppendExecutionProviderCUDA(cu); err != nil {
		return cudaError(device, err)
	}
	return nil
}

// cudaError wraps ErrCUDAUnavailable around what onnxruntime said once the
// libraries loaded (ensureCUDA has named anything missing before).
func cudaError(device int, err error) error {
	return fmt.Errorf("%w: device %d, onnxruntime %s at %s: %v", ErrCUDAUnavailable, device, Version(), LibraryPath(), err)
}

// Inputs describes the inputs Run feeds, in Run's order.
func (s *Session) Inputs() []TensorInfo { return cloneInfos(s.inputs) }

// Outputs describes the outputs Run returns, in Run's order.
func (s *Session) Outputs() []TensorInfo { return cloneInfos(s.outputs) }

// Provider reports the execution provider the session runs on: ProviderCPU
// or ProviderCUDA with its device, never ProviderAuto.
func (s *Session) Provider() Provider { return s.provider }

// Fallback reports why a session asked for ProviderAuto runs on the CPU: the
// error (wrapping ErrCUDAUnavailable, usually) that CUDA gave. It is nil when
// the session did not fall back.
func (s *Session) Fallback() error { return s.fallback }

// Run feeds inputs (one per input name given at creation, in that order) to
// the model and returns the outputs (one per output name, in that order) in
// dst, which it reuses: dst is resized to the number of outputs, and each
// dst[i].Data and dst[i].Shape keeps its backing array when large enough
// (the dst[i].Data must not overlap). dst may be nil. inputs are not
// modified and not retained.
//
// When the declared output shapes follow from the input shapes (as
// [batch_size, sequence_length, 384] follows from input_ids), onnxruntime
// writes straight into dst, and a Run with buffers large enough allocates
// only a few small bookkeeping values. Otherwise onnxruntime allocates the
// outputs and Run copies them into dst.
//
// Each input's shape must have the declared rank, match the declared fixed
// dimensions, and agree with the other inputs on dimensions that share a
// symbolic name (batch_size, sequence_length); len(Data) must equal the
// product of the shape. Errors name the offending input.
func (s *Session) Run(dst []Float32Tensor, inputs []Int64Tensor) (_ []Float32Tensor, err error) {
	if s.sess == nil {
		return dst, errors.New("onnx: Run on a closed Session")
	}
	st := s.scratch.Get().(*runState)
	defer s.scratch.Put(st)
	if err := s.checkInputs(st, inputs); err != nil {
		return dst, err
	}
	if cap(dst) >= len(s.outputs) {
		dst = dst[:len(s.outputs)]
	} else {
		dst = append(dst[:cap(dst)], make([]Float32Tensor, len(s.outputs)-cap(dst))...)
	}
	defer func() {
		err = errors.Join(err, st.release())
	}()
	for i, in := range inputs {
		t, err := ort.NewTensor(ort.Shape(in.Shape), in.Data)
		if err != nil {
			return dst, fmt.Errorf("onnx: input %q: %w", s.inputs[i].Name, err)
		}
		st.inVals[i] = t
	}
	if !s.keepSubnormals {
		fp := fpu.Flush()
		defer fpu.Restore(fp)
	}
	if s.direct.Load() && s.bindOutputs(st, dst) {
		directErr := s.sess.Run(st.inVals, st.outVals)
		if directErr == nil {
			return dst, nil
		}
		// Perhaps the declared output shapes are wrong: try again with
		// outputs onnxruntime allocates.
		if err := st.releaseOutputs(); err != nil {
			return dst, err
		}
		if err := s.runAllocated(st, dst); err != nil {
			return dst, fmt.Errorf("onnx: run: %w", directErr)
		}
		s.direct.Store(false)
		return dst, nil
	}
	return dst, s.runAllocated(st, dst)
}

// runAllocated runs with outputs that onnxruntime allocates, and copies them
// into dst.
func (s *Session) runAllocated(st *runState, dst []Float32Tensor) error {
	if err := s.sess.Run(st.inVals, st.outVals); err != nil {
		return fmt.Errorf("onnx: run: %w", err)
	}
	for i, v := range st.outVals {
		t, ok := v.(*ort.Tensor[float32])
		if !ok {
			return fmt.Errorf("onnx: output %q: got %T, want a float32 tensor", s.outputs[i].Name, v)
		}
		dst[i].Shape = append(dst[i].Shape[:0], t.GetShape()...)
		dst[i].Data = append(dst[i].Data[:0], t.GetData()...)
	}
	return nil
}

// outputShapesKnown reports whether every output's shape follows from the
// input shapes.
func (s *Session) outputShapesKnown() bool {
	inSym := make(map[string]bool)
	for _, dims := range s.inDims {
		for _, d := range dims {
			if d != "" {
				inSym[d] = true
			}
		}
	}
	for i, o := range s.outputs {
		if len(o.Shape) == 0 { // unknown rank, or a scalar
			return false
		}
		for d, size := range o.Shape {
			if size < 0 && !inSym[s.outDims[i][d]] {
				return false
			}
		}
	}
	return true
}

// bindOutputs sizes dst for this run's output shapes (from st.sym) and wraps
// each dst[i].Data in an onnxruntime tensor in st.outVals. It returns false,
// binding nothing, if a shape is empty.
func (s *Session) bindOutputs(st *runState, dst []Float32Tensor) bool {
	for i, o := range s.outputs {
		n := int64(1)
		for d, size := range o.Shape {
			if size < 0 {
				size = st.sym[s.outDims[i][d]]
			}
			n *= size
		}
		if n <= 0 {
			return false
		}
	}
	for i, o := range s.outputs {
		shape := dst[i].Shape[:0]
		n := int64(1)
		for d, size := range o.Shape {
			if size < 0 {
				size = st.sym[s.outDims[i][d]]
			}
			shape = append(shape, size)
			n *= size
		}
		dst[i].Shape = shape
		if int64(cap(dst[i].Data)) < n {
			dst[i].Data = make([]float32, n)
		}
		dst[i].Data = dst[i].Data[:n]
		t, err := ort.NewTensor(ort.Shape(shape), dst[i].Data)
		if err != nil {
			st.releaseOutputs()
			return false
		}
		st.outVals[i] = t
	}
	return true
}

// release destroys this run's onnxruntime values.
func (st *runState) release() error {
	var errs []error
	for i, v := range st.inVals {
		if v != nil {
			if err := v.Destroy(); err != nil {
				errs = append(errs, fmt.Errorf("onnx: releasing input tensor: %w", err))
			}
			st.inVals[i] = nil
		}
	}
	return errors.Join(append(errs, st.releaseOutputs())...)
}

func (st *runState) releaseOutputs() error {
	var errs []error
	for i, v := range st.outVals {
		if v != nil {
			if err := v.Destroy(); err != nil {
				errs = append(errs, fmt.Errorf("onnx: releasing output tensor: %w", err))
			}
			st.outVals[i] = nil
		}
	}
	return errors.Join(errs...)
}

// checkInputs validates the inputs against the declared shapes and records
// the sizes of symbolic dimensions in st.sym.
func (s *Session) checkInputs(st *runState, inputs []Int64Tensor) error {
	if len(inputs) != len(s.inputs) {
		return fmt.Errorf("onnx: Run got %d inputs, want %d (%s)", len(inputs), len(s.inputs), namesOf(s.inputs))
	}
	clear(st.sym)
	symFrom := func(name string) string { // the first input with this symbolic dimension
		for i, dims := range s.inDims {
			if slices.Contains(dims, name) {
				return s.inputs[i].Name
			}
		}
		return ""
	}
	for i, in := range inputs {
		info := s.inputs[i]
		if len(in.Shape) == 0 {
			return fmt.Errorf("onnx: input %q: empty shape", info.Name)
		}
		if info.Shape != nil && len(in.Shape) != len(info.Shape) {
			return fmt.Errorf("onnx: input %q: shape %v has rank %d, model wants rank %d %v",
				info.Name, in.Shape, len(in.Shape), len(info.Shape), info.Shape)
		}
		n := int64(1)
		for d, size := range in.Shape {
			if size <= 0 {
				return fmt.Errorf("onnx: input %q: shape %v: dimension %d is %d, want > 0", info.Name, in.Shape, d, size)
			}
			if info.Shape != nil && info.Shape[d] >= 0 && info.Shape[d] != size {
				return fmt.Errorf("onnx: input %q: shape %v: dimension %d is %d, model wants %d %v",
					info.Name, in.Shape, d, size, info.Shape[d], info.Shape)
			}
			if dims := s.inDims[i]; dims != nil && dims[d] != "" {
				if prev, ok := st.sym[dims[d]]; ok && prev != size {
					return fmt.Errorf("onnx: input %q: shape %v: dimension %d (%s) is %d, but input %q has %s = %d",
						info.Name, in.Shape, d, dims[d], size, symFrom(dims[d]), dims[d], prev)
				}
				st.sym[dims[d]] = size
			}
			if n > (1<<62)/size {
				return fmt.Errorf("onnx: input %q: shape %v is too large", info.Name, in.Shape)
			}
			n *= size
		}
		if int64(len(in.Data)) != n {
			return fmt.Errorf("onnx: input %q: %d values for shape %v, want %d", info.Name, len(in.Data), in.Shape, n)
		}
	}
	return nil
}

// Close releases the session. It is safe to call more than once; calls
// after the first return nil.
func (s *Session) Close() error {
	if s.sess == nil {
		return nil
	}
	err := s.sess.Destroy()
	s.sess = nil
	if err != nil {
		return fmt.Errorf("onnx: closing session: %w", err)
	}
	return nil
}
