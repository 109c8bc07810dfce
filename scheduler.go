package headstart

// The scheduler of Model: how the texts of concurrent calls, queued as pieces, become
// backbone forwards on the sessions (run, hasShare), how a session divides what it took
// into forwards (plan, splitPlan, packRows), and the sessions themselves (worker).

import (
	"cmp"
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/models"
	"github.com/headstart-ml/headstart/onnx"
	"github.com/headstart-ml/headstart/tokenize"
)

// call is one Run waiting for its chunks.
type call struct {
	ctx  context.Context
	task Task
	out  *Output // each chunk writes its own rows

	mu      sync.Mutex
	pending int
	err     error
	done    chan struct{}
}

// finish records one chunk done (with its error, if any).
func (c *call) finish(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil && c.err == nil {
		c.err = err
	}
	if c.pending--; c.pending == 0 {
		close(c.done)
	}
}

// piece is up to MaxBatch texts of one call.
type piece struct {
	call     *call
	rows     []int // positions in the call's texts
	encs     []tokenize.Encoding
	queuedAt time.Time
}

// run is a session's goroutine: it takes chunks from the queue, merges them into
// forwards (with Batching) and hands the results back, until quit is closed.
func (m *Model) run(w *worker) {
	defer m.runners.Done()
	var carry *piece // taken from the queue but did not fit the last forward
	var batch []*piece
	var timer *time.Timer
	for {
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-m.queue:
				m.queued.Add(-int64(len(first.encs)))
			case <-m.quit:
				if timer != nil {
					timer.Stop()
				}
				return
			}
		}
		batch = append(batch[:0], first)
		n := len(first.encs)
		// add puts a chunk taken from the queue into the batch, or reports that it
		// does not fit (it then opens the next forward).
		add := func(ch *piece) bool {
			m.queued.Add(-int64(len(ch.encs)))
			if n+len(ch.encs) > m.maxBatch {
				carry = ch
				return false
			}
			batch = append(batch, ch)
			n += len(ch.encs)
			return true
		}
	collect:
		for m.batching && n < m.maxBatch {
			if m.hasShare(n) {
				break collect
			}
			select {
			case ch := <-m.queue:
				if !add(ch) {
					break collect
				}
				continue
			default:
			}
			// The queue is empty: wait for calls on their way, within MaxWait.
			wait := m.maxWait - time.Since(first.queuedAt)
			if wait <= 0 || m.arriving.Load() == 0 {
				break
			}
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			select {
			case ch := <-m.queue:
				timer.Stop()
				if !add(ch) {
					break collect
				}
			case <-timer.C:
				break collect
			}
		}
		m.inForward.Add(int64(n))
		m.forward(w, batch)
		m.inForward.Add(-int64(n))
		clear(batch)
	}
}

// hasShare reports whether a session that holds n texts has its share of the work
// and should leave the texts still queued to the next session to come free: its share
// is the texts queued, its own and those in the other sessions' forwards, divided
// evenly among the sessions. Without it, a session coming free takes the whole queue
// while another runs forwards of one text each, as they arrive, which lengthens the
// latency tail (BENCHMARKS.md, serving design choices). With an empty queue it is
// false: taking what arrives leaves no other session short.
func (m *Model) hasShare(n int) bool {
	q := int(m.queued.Load())
	if q <= 0 {
		return false
	}
	s := len(m.workers)
	return n >= (q+n+int(m.inForward.Load())+s-1)/s
}

// forward runs the rows of a batch of chunks, in forwards planned by plan, and
// delivers each chunk's rows to its call.
func (m *Model) forward(w *worker, batch []*piece) {
	wait := time.Since(batch[0].queuedAt)
	live := batch[:0]
	var task Task
	for _, ch := range batch {
		if err := ch.call.ctx.Err(); err != nil {
			ch.call.finish(err) // its caller has gone; skip the work
			continue
		}
		live = append(live, ch)
		task |= ch.call.task
	}
	if len(live) == 0 {
		return
	}
	w.rows, w.lens = w.rows[:0], w.lens[:0]
	for _, ch := range live {
		for j := range ch.encs {
			w.rows = append(w.rows, rowRef{ch, j})
		}
	}
	slices.SortStableFunc(w.rows, func(a, b rowRef) int { return len(a.enc().IDs) - len(b.enc().IDs) })
	for _, r := range w.rows {
		w.lens = append(w.lens, len(r.enc().IDs))
	}
	var err error
	for _, g := range m.plan(w.lens) {
		start := time.Now()
		rows := w.rows[g[0]:g[1]]
		w.encs = w.encs[:0]
		calls := 0
		for k, r := range rows {
			w.encs = append(w.encs, *r.enc())
			if k == 0 || !slices.ContainsFunc(rows[:k], func(q rowRef) bool { return q.ch.call == r.ch.call }) {
				calls++
			}
		}
		emb, preds, ferr := w.compute(w.encs, w.lens[g[0]:g[1]], task, m.pack)
		if ferr == nil {
			for k, r := range rows {
				i, c := r.ch.rows[r.j], r.ch.call
				if c.task&TaskEmbed != 0 {
					copy(c.out.Embeddings[i], emb[k*m.dim:(k+1)*m.dim])
				}
				if c.task&TaskClassify != 0 {
					ps := make([]Prediction, len(preds))
					for h := range preds {
						ps[h] = preds[h][k]
					}
					c.out.Results[i].Predictions = ps
				}
			}
		}
		err = cmp.Or(err, ferr)
		if m.onBatch != nil { // before the callers return, so that what they see is counted
			m.onBatch(BatchInfo{Texts: len(rows), Calls: calls, Tokens: w.tokens, Padded: w.padded,
				Wait: wait, Run: time.Since(start), Err: ferr})
		}
	}
	for _, ch := range live {
		ch.call.finish(err)
	}
}

// rowRef is one text of a chunk.
type rowRef struct {
	ch *piece
	j  int
}

func (r rowRef) enc() *tokenize.Encoding { return &r.ch.encs[r.j] }

// plan divides a session's length-sorted rows (lens ascending) into forwards, as [lo,
// hi) pairs. With packing (m.pack > 0: every session's graph was edited for it), the
// texts of at most m.pack tokens run in one forward packed in rows of m.pack tokens, and
// the longer ones in a second, packed in rows as long as the longest (a row's length
// sets the attention's cost for all rows); without, splitPlan divides them.
func (m *Model) plan(lens []int) [][2]int {
	if m.pack == 0 {
		return splitPlan(lens, m.split)
	}
	cut := 0
	for cut < len(lens) && lens[cut] <= m.pack {
		cut++
	}
	var plan [][2]int
	if cut > 0 {
		plan = append(plan, [2]int{0, cut})
	}
	if cut < len(lens) {
		plan = append(plan, [2]int{cut, len(lens)})
	}
	return plan
}

// packRows places texts of the given lengths (each at most capacity) in rows of at most
// capacity tokens, first fit in order of decreasing length, and returns each row's text
// indices. First-fit decreasing uses at most 11/9 of the fewest rows possible, plus one.
func packRows(lens []int, capacity int) [][]int {
	order := make([]int, len(lens))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return lens[b] - lens[a] })
	var rows [][]int
	var fill []int
	for _, i := range order {
		r := slices.IndexFunc(fill, func(f int) bool { return f+lens[i] <= capacity })
		if r < 0 {
			rows, fill = append(rows, nil), append(fill, 0)
			r = len(rows) - 1
		}
		rows[r] = append(rows[r], i)
		fill[r] += lens[i]
	}
	return rows
}

// splitPlan divides rows sorted by token length (lens, ascending) into runs of
// consecutive rows, one forward each, minimising the modelled cost
//
//	Σ_forwards (cost + rows · longest row)
//
// in token positions: a forward costs a fixed overhead (cost) plus the positions it
// computes, padding included. A negative cost never splits. It returns [lo, hi) pairs.
func splitPlan(lens []int, cost int) [][2]int {
	n := len(lens)
	if cost < 0 || n <= 1 {
		return [][2]int{{0, n}}
	}
	best := make([]int, n+1) // best[j]: cost of rows [0, j)
	from := make([]int, n+1)
	for j := 1; j <= n; j++ {
		best[j] = math.MaxInt
		for i := 0; i < j; i++ {
			if c := best[i] + cost + (j-i)*lens[j-1]; c < best[j] {
				best[j], from[j] = c, i
			}
		}
	}
	var plan [][2]int
	for j := n; j > 0; j = from[j] {
		plan = append(plan, [2]int{from[j], j})
	}
	slices.Reverse(plan)
	return plan
}

// worker is one backbone session with the poolings served from its forward.
type worker struct {
	enc    *Encoder
	clf    *Classifier // nil without heads
	embSel []int       // positions in enc.layers of the Embed layers
	pool   features.Pooling
	norm   bool

	encs           []tokenize.Encoding
	rows           []rowRef
	lens           []int
	views          [][]float32
	emb            []float32
	tokens, padded int
}

// fork returns a worker that computes on w's session (Encoder.fork) with buffers of
// its own, so that the two may run forwards at the same time.
func (w *worker) fork() *worker {
	f := &worker{embSel: w.embSel, pool: w.pool, norm: w.norm}
	if w.clf != nil {
		f.clf = w.clf.fork()
		f.enc = f.clf.enc
	} else {
		f.enc = w.enc.fork()
	}
	return f
}

func newWorker(p models.Paths, heads []*head.Head, opts EncoderOptions) (*worker, error) {
	pool, err := opts.Pool()
	if err != nil {
		return nil, err
	}
	w := &worker{pool: pool, norm: opts.Normalize}
	if len(heads) == 0 {
		enc, err := NewEncoder(p, opts)
		if err != nil {
			return nil, err
		}
		w.enc = enc
		for i := range enc.layers {
			w.embSel = append(w.embSel, i)
		}
		return w, nil
	}
	clf, err := newClassifier(p, heads, opts, opts.Layers)
	if err != nil {
		return nil, err
	}
	w.clf, w.enc = clf, clf.enc
	// Resolve the Embed layers as the encoder did, and find their outputs.
	res, err := onnx.ResolveLayers(opts.Layers, clf.enc.states)
	if err != nil {
		return nil, errors.Join(err, clf.Close())
	}
	for _, l := range res {
		w.embSel = append(w.embSel, slices.Index(clf.enc.layers, l))
	}
	return w, nil
}

// compute runs encs (token lengths lens) as one forward: padded, or packed in rows of
// packLen tokens (at least the longest text's) when packLen > 0. emb (len(encs) x Dim,
// reused by the next call) is set when task has TaskEmbed, preds[h][i] when it has
// TaskClassify.
func (w *worker) compute(encs []tokenize.Encoding, lens []int, task Task, packLen int) (emb []float32, preds [][]Prediction, err error) {
	e := w.enc
	if packLen > 0 {
		err = e.forwardPacked(encs, packRows(lens, max(packLen, slices.Max(lens))))
	} else {
		err = e.forward(encs)
	}
	if err != nil {
		return nil, nil, err
	}
	B, C := e.texts(), e.hidden
	w.padded, w.tokens = e.batch.B*e.batch.T, 0
	for i := range encs {
		w.tokens += len(encs[i].IDs)
	}
	if task&TaskEmbed != 0 {
		d := len(w.embSel) * C
		if cap(w.emb) < B*d {
			w.emb = make([]float32, B*d)
		}
		emb = w.emb[:B*d]
		w.views = w.views[:0]
		for _, j := range w.embSel {
			w.views = append(w.views, e.views[j])
		}
		e.poolLayers(emb, w.views, w.pool)
		if w.norm {
			features.NormalizeRows(emb, d)
		}
	}
	if task&TaskClassify != 0 {
		preds = w.clf.predict()
	}
	return emb, preds, nil
}
