package headstart_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/headstart-ml/headstart"
	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/models"
)

func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}

// Embed a few texts with the default backbone (after `make setup`).
func ExampleNewEncoder() {
	paths, err := models.Resolve("all-minilm-l6-v2")
	if err != nil {
		fmt.Println(err)
		return
	}
	enc, err := headstart.NewEncoder(paths, headstart.EncoderOptions{MaxLen: 128})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer enc.Close()
	v, err := enc.Embed([]string{"How do I top up my card?", "Can I add money with a card?", "The film was dull."})
	if err != nil {
		fmt.Println(err)
		return
	}
	d := enc.Dim()
	fmt.Println("dim", d)
	fmt.Println("related pair more similar:", cosine(v[:d], v[d:2*d]) > cosine(v[:d], v[2*d:]))
	// Output:
	// dim 384
	// related pair more similar: true
}

// Extract a feature store from a CSV file.
func ExampleExtract() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	data := filepath.Join(dir, "data.csv")
	os.WriteFile(data, []byte("text,label\nI love it,pos\nI hate it,neg\n"), 0o644)
	out := filepath.Join(dir, "features.safetensors")
	sum, err := headstart.Extract(context.Background(), headstart.ExtractOptions{Data: data, Out: out})
	if err != nil {
		fmt.Println(err)
		return
	}
	st, err := features.OpenStore(out)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(sum.Rows, "rows of", st.D, "features; labels", st.Manifest.LabelNames, st.Labels)
	// Output:
	// 2 rows of 384 features; labels [neg pos] [1 0]
}
