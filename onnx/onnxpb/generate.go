// Package onnxpb holds the Go types generated from onnx.proto (the ONNX IR),
// ONNX release 1.20.0, taken unmodified from the PyPI wheel
// onnx-1.20.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl
// (onnx/onnx.proto, sha256 5943f7cb1d0359edfbc7871cb8ec3095ca942c04dea28ee15c926d51e1185efe).
//
// The Go package path is supplied on the protoc command line (--go_opt=M...),
// so the upstream file needs no go_package option. To regenerate, with
// protoc 3.21.12 and protoc-gen-go v1.36.12 on PATH:
//
//	go generate ./onnx/onnxpb/
package onnxpb

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative --go_opt=Monnx.proto=github.com/headstart-ml/headstart/onnx/onnxpb;onnxpb onnx.proto
