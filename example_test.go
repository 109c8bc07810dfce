package headstart_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/headstart-ml/headstart"
	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/head"
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
	enc, err := headstart.NewEncoder(paths, headstart.EncoderOptions{Spec: features.Spec{MaxLen: 128}})
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

// Classify with a head file from any number of goroutines: Open, Classify, Close.
// (The head is trained here on a few sentences, as `pipeline extract` and
// `pipeline fit-head` would.)
func ExampleOpen() {
	headFile, cleanup, err := exampleHead()
	defer cleanup()
	if err != nil {
		fmt.Println(err)
		return
	}

	ctx := context.Background()
	m, err := headstart.Open(ctx, headstart.OpenOptions{Heads: []string{headFile}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	res, err := m.Classify(ctx, []string{"A wonderful, moving film.", "Dull, slow and far too long."})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range res {
		fmt.Println(m.HeadNames()[0], r.Predictions[0].Label)
	}
	// Output:
	// sentiment pos
	// sentiment neg
}

// Embed texts concurrently with two sessions and micro-batching: concurrent calls share
// forwards, and each text's embedding is what it would be alone.
func ExampleModel_Embed() {
	ctx := context.Background()
	m, err := headstart.Open(ctx, headstart.OpenOptions{Spec: features.Spec{Normalize: true}, Sessions: 2, Batching: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	v, err := m.Embed(ctx, []string{"How do I top up my card?", "Can I add money with a card?", "The film was dull."})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("dim", m.Dim())
	fmt.Println("related pair more similar:", cosine(v[0], v[1]) > cosine(v[0], v[2]))
	// Output:
	// dim 384
	// related pair more similar: true
}

// Classify the rows of a file with a head, in the file's order (pipeline predict).
func ExamplePredict() {
	headFile, cleanup, err := exampleHead()
	defer cleanup()
	if err != nil {
		fmt.Println(err)
		return
	}
	h, err := head.Load(headFile)
	if err != nil {
		fmt.Println(err)
		return
	}
	texts := filepath.Join(filepath.Dir(headFile), "reviews.txt")
	os.WriteFile(texts, []byte("What a wonderful, moving film\nDull, tedious and far too long\n"), 0o644)
	_, err = headstart.Predict(context.Background(), headstart.PredictOptions{Heads: []*head.Head{h}, Data: texts},
		func(row features.Row, preds []headstart.Prediction) error {
			fmt.Printf("%d %s: %s\n", row.Index, row.Text, preds[0].Label)
			return nil
		})
	if err != nil {
		fmt.Println(err)
	}
	// Output:
	// 0 What a wonderful, moving film: pos
	// 1 Dull, tedious and far too long: neg
}

// exampleHead fits the head of fitSentimentHead in a temporary directory, which cleanup
// removes.
func exampleHead() (headFile string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		return "", func() {}, err
	}
	headFile = filepath.Join(dir, "sentiment.safetensors")
	return headFile, func() { os.RemoveAll(dir) }, fitSentimentHead(headFile)
}

// fitSentimentHead trains a two-class head on a few sentences and saves it to path.
func fitSentimentHead(path string) error {
	dir := filepath.Dir(path)
	data := filepath.Join(dir, "train.csv")
	err := os.WriteFile(data, []byte(`text,label
I loved this film,pos
A delightful and moving story,pos
Brilliant acting and a great script,pos
One of the best films of the year,pos
Warm and funny and beautifully shot,pos
An absolute joy to watch,pos
I hated this film,neg
A boring and tedious story,neg
Terrible acting and a weak script,neg
One of the worst films of the year,neg
Cold and humourless and badly shot,neg
An absolute chore to sit through,neg
`), 0o644)
	if err != nil {
		return err
	}
	store := filepath.Join(dir, "train.safetensors")
	if _, err := headstart.Extract(context.Background(), headstart.ExtractOptions{Data: data, Out: store}); err != nil {
		return err
	}
	st, err := features.OpenStore(store)
	if err != nil {
		return err
	}
	ds, err := head.FromStore(st, store)
	if err != nil {
		return err
	}
	h, err := head.Fit(ds, nil, head.Options{})
	if err != nil {
		return err
	}
	return h.Save(path)
}
