package onnx_test

import (
	"fmt"

	"github.com/headstart-ml/headstart/onnx"
)

func ExampleResolveLayers() {
	// all-MiniLM-L6-v2 has 6 blocks, so 7 hidden states: the embeddings
	// and one per block. Take the last four.
	layers, err := onnx.ResolveLayers([]int{-4, -3, -2, -1}, 7)
	fmt.Println(layers, err)
	_, err = onnx.ResolveLayers([]int{-9}, 7)
	fmt.Println(err)
	// Output:
	// [3 4 5 6] <nil>
	// onnx: layer -9 out of range; model has 7 hidden states: 0..6 or -7..-1
}

func ExampleParseProvider() {
	for _, s := range []string{"cpu", "cuda:1", "auto", "gpu"} {
		p, err := onnx.ParseProvider(s)
		fmt.Println(p, err)
	}
	// Output:
	// cpu <nil>
	// cuda:1 <nil>
	// auto <nil>
	// cpu onnx: provider "gpu" unknown; want one of cpu, cuda, cuda:N, auto, auto:N
}
