package head

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"math"
	"math/rand/v2"
	"os"

	"github.com/headstart-ml/headstart/internal/fileio"
)

// newPCG returns the source of newRNG, so that its state can be saved.
func newPCG(seed uint64) *rand.PCG { return rand.NewPCG(seed, 0x9e3779b97f4a7c15) }

// mlpCheckpointVersion is the version of the MLP checkpoint layout.
const mlpCheckpointVersion = 1

// mlpCheckpointFile is what an MLP training checkpoint holds (gob), followed in the
// file by the SHA-256 of those bytes. Floats are stored as their bits (gob keeps
// float64 exactly), so a resumed run continues bit for bit.
type mlpCheckpointFile struct {
	Version int
	Key     string // mlpKey of the run
	Epoch   int    // the last finished epoch

	Params, Best []float64 // the network's and the best epoch's parameters
	M, V         []float64 // AdamW's moments
	Step         int       // AdamW's step count
	Order        []int     // the batch order after the epoch's shuffle
	RNG          []byte    // the PCG state (MarshalBinary)

	SinceBest                      int // epochs without a better validation loss
	BestEpoch, Epochs              int
	Loss, ValidAccuracy, TrainLoss float64
}

// mlpCheckpointer saves and restores FitMLP's state between epochs: the fields point
// at FitMLP's variables.
type mlpCheckpointer struct {
	path, key string
	net       *mlp
	opt       *adamW
	src       *rand.PCG
	order     []int
	best      []float64
	sum       *Summary
	sinceBest *int
}

// save writes the state after epoch, atomically (temporary file, sync, rename).
func (c *mlpCheckpointer) save(epoch int) error {
	rng, err := c.src.MarshalBinary()
	if err != nil {
		return fmt.Errorf("head: checkpoint %s: %w", c.path, err)
	}
	ck := mlpCheckpointFile{
		Version: mlpCheckpointVersion, Key: c.key, Epoch: epoch,
		Params: c.net.params, Best: c.best, M: c.opt.m, V: c.opt.v, Step: c.opt.t, Order: c.order, RNG: rng,
		SinceBest: *c.sinceBest, BestEpoch: c.sum.BestEpoch, Epochs: c.sum.Epochs,
		Loss: c.sum.Loss, ValidAccuracy: c.sum.ValidAccuracy, TrainLoss: c.sum.TrainLoss,
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&ck); err != nil {
		return fmt.Errorf("head: checkpoint %s: %w", c.path, err)
	}
	sum := sha256.Sum256(buf.Bytes())
	buf.Write(sum[:])
	return fileio.WriteFile(c.path, buf.Bytes())
}

// load restores the state from the checkpoint file and returns the number of epochs
// it holds: 0 (nothing restored) when there is no file. A file that is corrupt, of
// another run (key) or inconsistent with the network gives ErrCheckpoint.
func (c *mlpCheckpointer) load(maxEpochs int) (int, error) {
	b, err := os.ReadFile(c.path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("head: checkpoint: %w", err)
	}
	bad := func(format string, args ...any) error {
		return errorf(ErrCheckpoint, "head: checkpoint %s: "+format+"; delete it to start afresh", append([]any{c.path}, args...)...)
	}
	if len(b) < sha256.Size {
		return 0, bad("truncated (%d bytes)", len(b))
	}
	body, stored := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], stored) {
		return 0, bad("checksum mismatch (corrupt or truncated)")
	}
	var ck mlpCheckpointFile
	if err := gob.NewDecoder(bytes.NewReader(body)).Decode(&ck); err != nil {
		return 0, bad("%v", err)
	}
	if ck.Version != mlpCheckpointVersion {
		return 0, bad("version %d; this program reads version %d", ck.Version, mlpCheckpointVersion)
	}
	if ck.Key != c.key {
		return 0, errorf(ErrCheckpoint, "head: checkpoint %s was made with other training data or settings; rerun with the same ones to resume, or delete it to start afresh", c.path)
	}
	n := len(c.net.params)
	if len(ck.Params) != n || len(ck.Best) != n || len(ck.M) != n || len(ck.V) != n || len(ck.Order) != len(c.order) ||
		ck.Epoch < 1 || ck.Epoch > maxEpochs || ck.Step < 0 {
		return 0, bad("%d parameters, %d rows, epoch %d; want %d parameters, %d rows, epoch 1 to %d",
			len(ck.Params), len(ck.Order), ck.Epoch, n, len(c.order), maxEpochs)
	}
	seen := make([]bool, len(c.order))
	for _, i := range ck.Order {
		if i < 0 || i >= len(seen) || seen[i] {
			return 0, bad("the batch order is not a permutation of the %d rows", len(seen))
		}
		seen[i] = true
	}
	if err := c.src.UnmarshalBinary(ck.RNG); err != nil {
		return 0, bad("random state: %v", err)
	}
	copy(c.net.params, ck.Params)
	copy(c.best, ck.Best)
	copy(c.opt.m, ck.M)
	copy(c.opt.v, ck.V)
	copy(c.order, ck.Order)
	c.opt.t = ck.Step
	*c.sinceBest = ck.SinceBest
	c.sum.BestEpoch, c.sum.Epochs = ck.BestEpoch, ck.Epochs
	c.sum.Loss, c.sum.ValidAccuracy, c.sum.TrainLoss = ck.Loss, ck.ValidAccuracy, ck.TrainLoss
	return ck.Epoch, nil
}

// mlpKey identifies what an MLP training run computes: its settings (after defaults;
// not Threads, which does not change the result) and every value of its training and
// validation data.
func mlpKey(train, valid *Dataset, s *MLPSettings) string {
	h := sha256.New()
	h.Write([]byte("headstart mlp checkpoint\x00"))
	sj, _ := json.Marshal(s) // Threads, Progress, Checkpoint and Resume are not marshalled
	h.Write(sj)
	hashDataset(h, train)
	if valid != nil {
		hashDataset(h, valid)
	} else {
		h.Write([]byte("\x00no validation data\x00"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// hashDataset writes d's shape, classes, fingerprint, features and targets to h.
func hashDataset(h hash.Hash, d *Dataset) {
	fp, _ := json.Marshal(d.Fingerprint)
	h.Write(fp)
	buf := binary.LittleEndian.AppendUint64(nil, uint64(d.N))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(d.D))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(len(d.Classes)))
	for _, c := range d.Classes {
		buf = append(append(buf, c...), 0)
	}
	flush := func() {
		if len(buf) >= 1<<16 {
			h.Write(buf)
			buf = buf[:0]
		}
	}
	for _, v := range d.X {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		flush()
	}
	if d.Y != nil {
		buf = append(buf, 'Y')
		for _, v := range d.Y {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			flush()
		}
	} else {
		buf = append(buf, 'L')
		for _, l := range d.Labels {
			buf = binary.LittleEndian.AppendUint64(buf, uint64(l))
			flush()
		}
	}
	h.Write(buf)
}
