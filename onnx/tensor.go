package onnx

import (
	"fmt"
	"strings"

	"github.com/headstart-ml/headstart/onnx/onnxpb"
)

// DType is the element type of a tensor. Its values are those of ONNX's
// TensorProto.DataType (and onnxruntime's ONNXTensorElementDataType), so
// they convert without a table.
type DType int32

// Element types. The zero value, DTypeUndefined, is used for inputs and
// outputs that are not tensors or whose type the model does not declare.
const (
	DTypeUndefined  DType = 0
	DTypeFloat32    DType = 1
	DTypeUint8      DType = 2
	DTypeInt8       DType = 3
	DTypeUint16     DType = 4
	DTypeInt16      DType = 5
	DTypeInt32      DType = 6
	DTypeInt64      DType = 7
	DTypeString     DType = 8
	DTypeBool       DType = 9
	DTypeFloat16    DType = 10
	DTypeFloat64    DType = 11
	DTypeUint32     DType = 12
	DTypeUint64     DType = 13
	DTypeComplex64  DType = 14
	DTypeComplex128 DType = 15
	DTypeBFloat16   DType = 16
)

var dtypeNames = [...]string{
	DTypeUndefined:  "undefined",
	DTypeFloat32:    "float32",
	DTypeUint8:      "uint8",
	DTypeInt8:       "int8",
	DTypeUint16:     "uint16",
	DTypeInt16:      "int16",
	DTypeInt32:      "int32",
	DTypeInt64:      "int64",
	DTypeString:     "string",
	DTypeBool:       "bool",
	DTypeFloat16:    "float16",
	DTypeFloat64:    "float64",
	DTypeUint32:     "uint32",
	DTypeUint64:     "uint64",
	DTypeComplex64:  "complex64",
	DTypeComplex128: "complex128",
	DTypeBFloat16:   "bfloat16",
}

// String returns the Go-style name of the type ("float32", "int64", ...), or
// "dtype(N)" for ONNX types without a name here (float8, int4, ...).
func (d DType) String() string {
	if d >= 0 && int(d) < len(dtypeNames) {
		return dtypeNames[d]
	}
	return fmt.Sprintf("dtype(%d)", int32(d))
}

// TensorInfo describes one input or output of a model.
type TensorInfo struct {
	Name  string
	DType DType
	// Shape holds one entry per dimension: its size, or -1 where the size is
	// dynamic (symbolic, like batch_size) or not declared. Shape is nil when
	// the rank is unknown, and empty (non-nil) for a scalar.
	Shape []int64
}

// String formats the info as "name dtype [d0 d1 ...]", for example
// "last_hidden_state float32 [-1 -1 384]".
func (t TensorInfo) String() string {
	if t.Shape == nil {
		return fmt.Sprintf("%s %s [?]", t.Name, t.DType)
	}
	return fmt.Sprintf("%s %s %v", t.Name, t.DType, t.Shape)
}

func (t TensorInfo) clone() TensorInfo {
	if t.Shape != nil {
		t.Shape = append([]int64{}, t.Shape...)
	}
	return t
}

func cloneInfos(ts []TensorInfo) []TensorInfo {
	out := make([]TensorInfo, len(ts))
	for i, t := range ts {
		out[i] = t.clone()
	}
	return out
}

// Int64Tensor is a dense row-major int64 tensor: len(Data) is the product of
// Shape.
type Int64Tensor struct {
	Shape []int64
	Data  []int64
}

// Float32Tensor is a dense row-major float32 tensor: len(Data) is the
// product of Shape.
type Float32Tensor struct {
	Shape []int64
	Data  []float32
}

// At returns the element at the given indices, one per dimension. It panics
// if the number of indices or an index is out of range.
func (t Float32Tensor) At(idx ...int) float32 {
	if len(idx) != len(t.Shape) {
		panic("onnx: wrong number of indices for Float32Tensor.At")
	}
	off := 0
	for i, x := range idx {
		if x < 0 || int64(x) >= t.Shape[i] {
			panic("onnx: index out of range in Float32Tensor.At")
		}
		off = off*int(t.Shape[i]) + x
	}
	return t.Data[off]
}

// tensorInfo converts a declared ValueInfoProto. dims receives the symbolic
// name of each dimension ("" where the size is fixed or unnamed).
func tensorInfo(vi *onnxpb.ValueInfoProto) (info TensorInfo, dims []string) {
	info.Name = vi.GetName()
	tt := vi.GetType().GetTensorType()
	if tt == nil {
		return info, nil
	}
	info.DType = DType(tt.GetElemType())
	if tt.Shape == nil {
		return info, nil
	}
	info.Shape = make([]int64, len(tt.Shape.Dim))
	dims = make([]string, len(tt.Shape.Dim))
	for i, d := range tt.Shape.Dim {
		info.Shape[i] = -1
		switch v := d.Value.(type) {
		case *onnxpb.TensorShapeProto_Dimension_DimValue:
			if v.DimValue >= 0 {
				info.Shape[i] = v.DimValue
			}
		case *onnxpb.TensorShapeProto_Dimension_DimParam:
			dims[i] = v.DimParam
		}
	}
	return info, dims
}

func namesOf(ts []TensorInfo) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.Name
	}
	return strings.Join(names, ", ")
}
