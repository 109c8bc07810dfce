package headstart

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/headstart-ml/headstart/internal/fileio"
	"github.com/headstart-ml/headstart/models"
	"github.com/headstart-ml/headstart/onnx"
)

// QuantizeOptions configure QuantizeModel. Model and Out are required.
type QuantizeOptions struct {
	// Model is a registry name or a directory holding model.onnx and tokenizer.json (an
	// fp32 encoder).
	Model string
	// Out is the directory to write: model.onnx, tokenizer.json and manifest.json. It
	// must not exist, or be empty.
	Out string
	// Name is the quantised model's name in its manifest. Default: Out's base name.
	Name string
	// Quantize holds the quantisation settings (default: per-channel int8 weights of
	// every MatMul and Gemm).
	Quantize onnx.QuantizeSettings
}

// QuantizeResult says what QuantizeModel wrote.
type QuantizeResult struct {
	Paths   models.Paths
	Summary onnx.QuantizeSummary
	// Bytes are the sizes of the source and quantised model files.
	SourceBytes, Bytes int64
}

// QuantizeModel writes an int8 copy of an fp32 encoder (onnx.Model.QuantizeDynamic:
// dynamic quantisation of MatMul and Gemm weights, per output column by default) to a
// model directory usable wherever a model is named: the ONNX file, the source's
// tokenizer.json and a manifest that keeps the source's conventions (pooling,
// normalisation, maximum length) with dtype int8 and the new files' sha256. On an error
// nothing is left in Out.
func QuantizeModel(o QuantizeOptions) (_ QuantizeResult, err error) {
	if o.Model == "" || o.Out == "" {
		return QuantizeResult{}, fmt.Errorf("%w: quantize needs a model and an output directory", ErrBadOption)
	}
	src, err := models.Resolve(o.Model)
	if err != nil {
		return QuantizeResult{}, err
	}
	if entries, err := os.ReadDir(o.Out); err == nil && len(entries) > 0 {
		return QuantizeResult{}, fmt.Errorf("%w: %s exists and is not empty; name a new directory", ErrBadOption, o.Out)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return QuantizeResult{}, err
	}
	m, err := onnx.OpenModel(src.Model)
	if err != nil {
		return QuantizeResult{}, err
	}
	sum, err := m.QuantizeDynamic(o.Quantize)
	if err != nil {
		return QuantizeResult{}, fmt.Errorf("%s: %w", src.Model, err)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return QuantizeResult{}, err
	}
	defer func() {
		if err != nil {
			for _, f := range []string{models.ModelFile, models.TokenizerFile, models.ManifestFile} {
				os.Remove(filepath.Join(o.Out, f))
			}
			os.Remove(o.Out) // only if empty
		}
	}()
	dst := models.Paths{Dir: o.Out, Model: filepath.Join(o.Out, models.ModelFile), Tokenizer: filepath.Join(o.Out, models.TokenizerFile)}
	if err := m.WriteFile(dst.Model); err != nil {
		return QuantizeResult{}, err
	}
	if err := copyFile(dst.Tokenizer, src.Tokenizer); err != nil {
		return QuantizeResult{}, err
	}
	man := src.Manifest
	man.Name = o.Name
	if man.Name == "" {
		man.Name = filepath.Base(filepath.Clean(o.Out))
	}
	scheme := "per output column"
	if o.Quantize.PerTensor {
		scheme = "per tensor"
	}
	from := src.Name
	if man.Description != "" {
		from += " (" + man.Description + ")"
	}
	man.Description = fmt.Sprintf("%s, MatMul/Gemm weights quantised to int8 (dynamic quantisation, %s) by headstart %s", from, scheme, Version)
	man.Dtype = "int8"
	man.Source = models.Source{Kind: "local"}
	man.Files = map[string]models.File{}
	var res QuantizeResult
	for key, path := range map[string]string{"model": dst.Model, "tokenizer": dst.Tokenizer} {
		sha, err := models.FileSHA256(path)
		if err != nil {
			return QuantizeResult{}, err
		}
		st, err := os.Stat(path)
		if err != nil {
			return QuantizeResult{}, err
		}
		man.Files[key] = models.File{Path: filepath.Base(path), SHA256: sha, Size: st.Size()}
		if key == "model" {
			res.Bytes = st.Size()
		}
	}
	if st, err := os.Stat(src.Model); err == nil {
		res.SourceBytes = st.Size()
	}
	b, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return QuantizeResult{}, err
	}
	if err := fileio.WriteFile(filepath.Join(o.Out, models.ManifestFile), append(b, '\n')); err != nil {
		return QuantizeResult{}, err
	}
	dst.Name, dst.Manifest = man.Name, man
	res.Paths, res.Summary = dst, sum
	return res, nil
}

// copyFile copies src to dst through fileio.Create, so dst is there whole or not at all.
func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := fileio.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		return errors.Join(fmt.Errorf("copying %s: %w", src, err), out.Abort())
	}
	return out.Commit()
}
