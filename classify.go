package headstart

import (
	"errors"
	"fmt"
	"slices"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/models"
	"github.com/headstart-ml/headstart/tokenize"
)

// ErrHeadMismatch reports heads that cannot share one backbone forward pass.
var ErrHeadMismatch = errors.New("headstart: heads do not share a backbone configuration")

// Classifier applies several heads to texts with one backbone forward pass per batch:
// the hidden states every head needs are exposed together, and each head pools its own
// layers its own way. It is not safe for concurrent use.
type Classifier struct {
	enc   *Encoder
	heads []*head.Head
	sel   [][]int // per head: positions in enc.layers of the head's layers
	pools []features.Pooling
	views [][]float32
	x     []float32
	// threshold: a multi-label head predicts the labels with p >= threshold.
	threshold float64
}

// DefaultThreshold is the probability from which a multi-label head predicts a label
// when no other threshold is set (OneVsRestClassifier's predict).
const DefaultThreshold = 0.5

// Prediction is one head's answer for one text.
type Prediction struct {
	Label string    // the most probable class
	Probs []float32 // one probability per class, in the head's class order
	// Labels is, for a multi-label head (head.Head.MultiLabel), the label set: the
	// classes whose probability in Probs is at least the threshold (OpenOptions.Threshold,
	// Classifier.SetThreshold; default DefaultThreshold), in the head's class order.
	// Not nil for a multi-label head (empty when no label reaches the threshold); nil
	// for a single-label head.
	Labels []string
}

// NewClassifier opens the backbone at p for the given heads. Every head must have been
// trained on features of this backbone and tokenizer (checked by sha256), and all must
// use the same max_len; each may pool different layers differently.
// opts.Spec is taken from the heads (they must agree on max_len and prefix). Multi-label
// heads predict label sets at DefaultThreshold until SetThreshold sets another.
func NewClassifier(p models.Paths, heads []*head.Head, opts EncoderOptions) (*Classifier, error) {
	return newClassifier(p, heads, opts, nil)
}

// newClassifier is NewClassifier whose encoder also exposes the hidden states extra
// names (see newEncoder), for a caller that pools embeddings from the same forward.
func newClassifier(p models.Paths, heads []*head.Head, opts EncoderOptions, extra []int) (*Classifier, error) {
	if len(heads) == 0 {
		return nil, fmt.Errorf("%w: no heads given", ErrHeadMismatch)
	}
	maxLen := heads[0].Fingerprint.MaxLen
	var union []int
	for i, h := range heads {
		fp := h.Fingerprint
		if fp.MaxLen != maxLen {
			return nil, fmt.Errorf("%w: head %d was trained with max_len %d, head 0 with %d", ErrHeadMismatch, i, fp.MaxLen, maxLen)
		}
		if p := heads[0].Fingerprint.Prefix; fp.Prefix != p {
			return nil, fmt.Errorf("%w: head %d was trained with prefix %q, head 0 with %q", ErrHeadMismatch, i, fp.Prefix, p)
		}
		if len(fp.Layers) == 0 {
			return nil, fmt.Errorf("%w: head %d records no layers (not trained on a feature store?)", ErrHeadMismatch, i)
		}
		for _, l := range fp.Layers {
			if !slices.Contains(union, l) {
				union = append(union, l)
			}
		}
	}
	slices.Sort(union)
	opts.Spec = features.Spec{Layers: union, MaxLen: maxLen, Prefix: heads[0].Fingerprint.Prefix}
	// A head with trained top blocks needs the backbone with those blocks: heads share
	// the forward only if they carry the same ones.
	for i, h := range heads {
		if h.Top == nil {
			continue
		}
		if opts.top == nil {
			opts.top = h.Top
		}
		if h.Top != opts.top {
			return nil, fmt.Errorf("%w: heads %d and %d carry different trained top blocks, so they need different backbones: classify with them separately", ErrHeadMismatch, slices.IndexFunc(heads, func(g *head.Head) bool { return g.Top == opts.top }), i)
		}
	}
	if opts.top != nil {
		for i, h := range heads {
			if h.Top == nil {
				return nil, fmt.Errorf("%w: head %d was trained on the frozen backbone and another head carries trained top blocks, which change the backbone; classify with them separately", ErrHeadMismatch, i)
			}
		}
	}
	enc, err := newEncoder(p, opts, extra)
	if err != nil {
		return nil, err
	}
	c := &Classifier{enc: enc, heads: heads, threshold: DefaultThreshold}
	for i, h := range heads {
		fp := h.Fingerprint
		pool, err := features.ParsePooling(fp.Pooling)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("head %d: %w", i, err), enc.Close())
		}
		m := features.Manifest{Backbone: enc.Backbone(), Spec: fp.Spec.Clone()}
		m.MaxLen = maxLen
		check := h.Check
		if h.Top != nil { // the encoder runs the head's top blocks
			check = func(m features.Manifest) error { return h.Fingerprint.Compare(head.FingerprintOf(m, 0)) }
		}
		if err := check(m); err != nil {
			return nil, errors.Join(fmt.Errorf("head %d does not fit backbone %s: %w", i, p.Model, err), enc.Close())
		}
		sel := make([]int, len(fp.Layers))
		for j, l := range fp.Layers {
			sel[j] = slices.Index(enc.layers, l)
		}
		if h.Dim != len(sel)*enc.hidden {
			return nil, errors.Join(fmt.Errorf("%w: head %d expects %d features; its layers give %d", ErrHeadMismatch, i, h.Dim, len(sel)*enc.hidden), enc.Close())
		}
		c.sel = append(c.sel, sel)
		c.pools = append(c.pools, pool)
	}
	return c, nil
}

// fork returns a classifier on c's session and heads with buffers of its own
// (Encoder.fork), so that the two may classify batches at the same time. Only c is
// closed.
func (c *Classifier) fork() *Classifier {
	f := *c
	f.enc, f.views, f.x = c.enc.fork(), nil, nil
	return &f
}

// Encoder returns the classifier's encoder (its tokenizer, provider, backbone).
func (c *Classifier) Encoder() *Encoder { return c.enc }

// Heads returns the heads, in the order predictions are returned.
func (c *Classifier) Heads() []*head.Head { return c.heads }

// SetThreshold sets the probability from which a multi-label head predicts a label
// (Prediction.Labels): a value in (0, 1), else an error wrapping ErrBadOption.
func (c *Classifier) SetThreshold(p float64) error {
	if err := checkThreshold(p); err != nil {
		return err
	}
	c.threshold = p
	return nil
}

// Threshold returns the probability from which a multi-label head predicts a label.
func (c *Classifier) Threshold() float64 { return c.threshold }

func checkThreshold(p float64) error {
	if !(p > 0 && p < 1) {
		return fmt.Errorf("%w: threshold %v: want a probability in (0, 1)", ErrBadOption, p)
	}
	return nil
}

// Close releases the backbone session.
func (c *Classifier) Close() error { return c.enc.Close() }

// Classify returns, for every head, one prediction per text: out[h][i].
func (c *Classifier) Classify(texts []string) ([][]Prediction, error) {
	encs := make([]tokenize.Encoding, len(texts))
	for i, t := range texts {
		var err error
		if encs[i], err = c.enc.tok.Encode(t); err != nil {
			return nil, fmt.Errorf("text %d: %w", i, err)
		}
	}
	return c.ClassifyEncoded(encs)
}

// ClassifyEncoded is Classify on tokenized texts, run as one batch.
func (c *Classifier) ClassifyEncoded(encs []tokenize.Encoding) ([][]Prediction, error) {
	out := make([][]Prediction, len(c.heads))
	if len(encs) == 0 {
		return out, nil
	}
	if err := c.enc.forward(encs); err != nil {
		return nil, err
	}
	return c.predict(), nil
}

// labelSets sets the Labels of preds, the predictions of a multi-label head with these
// classes: the classes with a probability of at least the threshold. They are taken
// from the float32 Probs, so that a client thresholding Probs gets the same sets.
func (c *Classifier) labelSets(preds []Prediction, classes []string) {
	n := 0
	for _, p := range preds {
		for _, v := range p.Probs {
			if float64(v) >= c.threshold {
				n++
			}
		}
	}
	all := make([]string, 0, n)
	for i, p := range preds {
		lo := len(all)
		for k, v := range p.Probs {
			if float64(v) >= c.threshold {
				all = append(all, classes[k])
			}
		}
		preds[i].Labels = all[lo:len(all):len(all)]
	}
}

// predict applies every head to the hidden states of the last forward: out[h][i].
// The Probs of one head share one fresh array (not reused by later calls); so do the
// Labels of a multi-label head.
func (c *Classifier) predict() [][]Prediction {
	out := make([][]Prediction, len(c.heads))
	B, C := c.enc.texts(), c.enc.hidden
	for h, hd := range c.heads {
		d := len(c.sel[h]) * C
		c.views = c.views[:0]
		for _, j := range c.sel[h] {
			c.views = append(c.views, c.enc.views[j])
		}
		if cap(c.x) < B*d {
			c.x = make([]float32, B*d)
		}
		x := c.x[:B*d]
		c.enc.poolLayers(x, c.views, c.pools[h])
		if hd.Fingerprint.Normalize {
			features.NormalizeRows(x, d)
		}
		k := len(hd.Classes)
		probs := make([]float32, B*k)
		hd.Predict(probs, x, B)
		preds := make([]Prediction, B)
		for i := range preds {
			p := probs[i*k : (i+1)*k : (i+1)*k]
			best := 0
			for j := range p {
				if p[j] > p[best] {
					best = j
				}
			}
			preds[i] = Prediction{Label: hd.Classes[best], Probs: p}
		}
		if hd.MultiLabel {
			c.labelSets(preds, hd.Classes)
		}
		out[h] = preds
	}
	return out
}
