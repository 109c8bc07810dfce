package features

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"os"

	"github.com/headstart-ml/headstart/internal/fileio"
)

// Checkpoint keeps the finished rows of an extraction on disk so that an interrupted run
// can resume where it stopped. Rows are appended in dataset order, in chunks; the final
// store is written from the checkpoint by Finish, and is byte-identical to the store an
// uninterrupted run writes.
//
// Two files sit next to the output out:
//
//	<out>.partial       rows, each (d float32 features, int64 label, int64 row id), little-endian,
//	                    then K bytes of the row's multi-hot label set for a multi-label store
//	<out>.partial.json  {"version":1,"key":...,"dim":d,"rows":r,"bytes":b} (and "sets":K, multi-label)
//
// After each chunk the data file is synced to disk first, then the sidecar is replaced
// atomically (write, sync, rename). The sidecar therefore never counts rows that are not
// safely on disk; bytes past its count (a chunk cut short by a crash) are cut off when
// the checkpoint is reopened.
type Checkpoint struct {
	dataPath, metaPath string
	meta               checkpointMeta
	f                  *os.File
	sum                hash.Hash // SHA-256 of the data file's first meta.Bytes bytes
	buf                []byte
	err                error // sticky
}

// checkpointVersion is the version of the checkpoint files' layout.
const checkpointVersion = 1

type checkpointMeta struct {
	Version int    `json:"version"`
	Key     string `json:"key"`
	Dim     int    `json:"dim"`
	Sets    int    `json:"sets,omitempty"` // K, label-set columns per row (multi-label); 0 for single-label
	Rows    int64  `json:"rows"`
	Bytes   int64  `json:"bytes"`
	// SHA256 is the hex SHA-256 of the data file's first Bytes bytes, checked when the
	// checkpoint is resumed and when Finish reads it back. Absent in checkpoints of
	// earlier versions, which are resumed unchecked.
	SHA256 string `json:"sha256,omitempty"`
}

// CheckpointKey returns a key for OpenCheckpoint: the hex SHA-256 of the manifest (which
// names the backbone, settings and dataset hash) and of any extra strings (settings that
// change the output but are not in the manifest).
func CheckpointKey(m Manifest, extra ...string) string {
	h := sha256.New()
	b, _ := json.Marshal(m)
	h.Write(b)
	for _, s := range extra {
		h.Write([]byte{0})
		h.Write([]byte(s))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// OpenCheckpoint opens the checkpoint of the store out for rows of d features; key
// identifies everything that determines the output (see CheckpointKey).
//
// With resume false it starts afresh, discarding any checkpoint there. With resume true
// it continues a checkpoint made with the same key and d (Rows says how many rows are
// done; the caller skips them), or starts afresh when there is none. A checkpoint made
// with another key or d is refused with ErrCheckpointMismatch, and one whose files
// disagree with ErrCorruptCheckpoint; both are left in place.
func OpenCheckpoint(out, key string, d int, resume bool) (*Checkpoint, error) {
	return OpenCheckpointSets(out, key, d, 0, resume)
}

// OpenCheckpointSets is OpenCheckpoint for the rows of a multi-label store: each row
// also holds its multi-hot label set over k labels (AppendSets adds rows, Finish writes
// them with Writer.WriteRowSets). k = 0 is OpenCheckpoint.
func OpenCheckpointSets(out, key string, d, k int, resume bool) (*Checkpoint, error) {
	if d < 1 || k < 0 {
		return nil, fmt.Errorf("checkpoint for %s: %d features and %d label-set columns per row; want >= 1 and >= 0", out, d, k)
	}
	c := &Checkpoint{dataPath: out + ".partial", metaPath: out + ".partial.json"}
	want := checkpointMeta{Version: checkpointVersion, Key: key, Dim: d, Sets: k}
	if resume {
		b, err := os.ReadFile(c.metaPath)
		switch {
		case errors.Is(err, os.ErrNotExist):
			// Nothing to resume: start afresh.
		case err != nil:
			return nil, err
		default:
			if err := c.reopen(b, want); err != nil {
				return nil, err
			}
			return c, nil
		}
	}
	// Drop the sidecar first, so that a crash below cannot pair it with new data.
	if err := os.Remove(c.metaPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing old checkpoint: %w", err)
	}
	f, err := os.OpenFile(c.dataPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
	if err != nil {
		return nil, fmt.Errorf("creating checkpoint: %w", err)
	}
	c.f, c.meta, c.sum = f, want, sha256.New()
	c.meta.SHA256 = hex.EncodeToString(c.sum.Sum(nil))
	if err := c.writeMeta(); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	return c, nil
}

// reopen continues the checkpoint whose sidecar holds b.
func (c *Checkpoint) reopen(b []byte, want checkpointMeta) error {
	var m checkpointMeta
	if err := json.Unmarshal(b, &m); err != nil || m.Version != checkpointVersion {
		return errorf(ErrCorruptCheckpoint, "checkpoint %s is unreadable (%v); remove it or run without --resume", c.metaPath, err)
	}
	if m.Key != want.Key || m.Dim != want.Dim || m.Sets != want.Sets {
		return errorf(ErrCheckpointMismatch, "checkpoint %s was made with different options; remove it or run without --resume", c.dataPath)
	}
	if m.Rows < 0 || m.Bytes != m.Rows*rowBytes(m.Dim, m.Sets) {
		return errorf(ErrCorruptCheckpoint, "checkpoint %s: %d rows but %d bytes recorded; remove it or run without --resume", c.metaPath, m.Rows, m.Bytes)
	}
	f, err := os.OpenFile(c.dataPath, os.O_RDWR, 0)
	if err != nil {
		return errorf(ErrCorruptCheckpoint, "checkpoint data missing (%w); remove %s or run without --resume", err, c.metaPath)
	}
	st, err := f.Stat()
	if err == nil && st.Size() < m.Bytes {
		err = errorf(ErrCorruptCheckpoint, "checkpoint %s holds %d bytes, less than the %d recorded; remove it or run without --resume", c.dataPath, st.Size(), m.Bytes)
	}
	if err == nil && st.Size() > m.Bytes {
		// A chunk that was being written when the run stopped.
		if err = f.Truncate(m.Bytes); err == nil {
			err = f.Sync()
		}
	}
	if err != nil {
		return errors.Join(fmt.Errorf("reopening checkpoint: %w", err), f.Close())
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, m.Bytes)); err != nil {
		return errors.Join(fmt.Errorf("reopening checkpoint %s: %w", c.dataPath, err), f.Close())
	}
	if got := hex.EncodeToString(h.Sum(nil)); m.SHA256 != "" && got != m.SHA256 {
		return errors.Join(errorf(ErrCorruptCheckpoint, "checkpoint %s: checksum mismatch (recorded %.12s…, computed %.12s…): its rows were corrupted or edited; remove %s and %s to start afresh",
			c.dataPath, m.SHA256, got, c.dataPath, c.metaPath), f.Close())
	}
	c.f, c.meta, c.sum = f, m, h
	return nil
}

// rowBytes is the size of one checkpoint row of d features and k label-set columns.
func rowBytes(d, k int) int64 { return 4*int64(d) + 16 + int64(k) }

// Rows returns the number of rows the checkpoint holds.
func (c *Checkpoint) Rows() int64 { return c.meta.Rows }

// Append adds k rows (features (k,d) row-major, labels and rowIDs k each) and makes them
// durable before it returns. The slices are not modified or kept. After an error every
// later call fails; the rows recorded before it stay resumable. Append panics if the
// slice lengths disagree or the checkpoint holds label sets (use AppendSets).
func (c *Checkpoint) Append(features []float32, labels, rowIDs []int64) error {
	k, d := len(labels), c.meta.Dim
	if len(rowIDs) != k || len(features) != k*d {
		panic("features: Checkpoint.Append: features, labels and rowIDs lengths disagree")
	}
	if c.meta.Sets != 0 {
		panic("features: Checkpoint.Append on a multi-label checkpoint; use AppendSets")
	}
	return c.append(features, labels, nil, rowIDs)
}

// AppendSets is Append for a checkpoint opened with OpenCheckpointSets: sets is (k,K)
// row-major multi-hot (see Writer.WriteRowSets) and the rows' labels are -1. It panics
// if the lengths disagree or the checkpoint holds no label sets.
func (c *Checkpoint) AppendSets(features []float32, sets []uint8, rowIDs []int64) error {
	k, d := len(rowIDs), c.meta.Dim
	if len(features) != k*d || len(sets) != k*c.meta.Sets {
		panic("features: Checkpoint.AppendSets: features, sets and rowIDs lengths disagree")
	}
	if c.meta.Sets == 0 {
		panic("features: Checkpoint.AppendSets on a single-label checkpoint; use Append")
	}
	return c.append(features, nil, sets, rowIDs)
}

// append adds rows: labels nil means -1 on every row (multi-label), sets nil none.
func (c *Checkpoint) append(features []float32, labels []int64, sets []uint8, rowIDs []int64) error {
	k, d, ks := len(rowIDs), c.meta.Dim, c.meta.Sets
	if c.err != nil {
		return c.err
	}
	if c.f == nil {
		return fmt.Errorf("checkpoint %s: Append after Close", c.dataPath)
	}
	// The rows are encoded and written appendBlock at a time, so that the buffer stays
	// small whatever the chunk.
	rb := int(rowBytes(d, ks))
	at := c.meta.Bytes
	for lo := 0; lo < k; lo += appendBlock {
		hi := min(lo+appendBlock, k)
		c.buf = resize(c.buf, (hi-lo)*rb)
		for i := lo; i < hi; i++ {
			b := c.buf[(i-lo)*rb : (i-lo+1)*rb]
			for j, x := range features[i*d : (i+1)*d] {
				binary.LittleEndian.PutUint32(b[4*j:], math.Float32bits(x))
			}
			l := int64(-1)
			if labels != nil {
				l = labels[i]
			}
			binary.LittleEndian.PutUint64(b[4*d:], uint64(l))
			binary.LittleEndian.PutUint64(b[4*d+8:], uint64(rowIDs[i]))
			copy(b[4*d+16:], sets[i*ks:(i+1)*ks])
		}
		if _, err := c.f.WriteAt(c.buf, at); err != nil {
			c.err = fmt.Errorf("writing checkpoint %s: %w", c.dataPath, err)
			return c.err
		}
		c.sum.Write(c.buf)
		at += int64(len(c.buf))
	}
	if err := c.f.Sync(); err != nil {
		c.err = fmt.Errorf("writing checkpoint %s: %w", c.dataPath, err)
		return c.err
	}
	c.meta.Rows += int64(k)
	c.meta.Bytes = at
	c.meta.SHA256 = hex.EncodeToString(c.sum.Sum(nil))
	if err := c.writeMeta(); err != nil {
		c.err = err
		return err
	}
	return nil
}

// writeMeta replaces the sidecar atomically.
func (c *Checkpoint) writeMeta() error {
	b, _ := json.Marshal(c.meta)
	if err := fileio.WriteFile(c.metaPath, append(b, '\n')); err != nil {
		return fmt.Errorf("writing checkpoint %s: %w", c.metaPath, err)
	}
	return nil
}

// appendBlock is the number of rows Append encodes and writes at a time.
const appendBlock = 512

// finishChunk is the number of rows Finish moves at a time.
const finishChunk = 4096

// Finish writes every row of the checkpoint to w, in order, closes w (which renames the
// store into place) and then deletes the checkpoint. w must have been created for
// exactly Rows() rows of the checkpoint's d features. On error w is aborted and the
// checkpoint is kept, so the run can be resumed (Close it).
func (c *Checkpoint) Finish(w *Writer) error {
	if err := c.finish(w); err != nil {
		return errors.Join(err, w.Abort())
	}
	return c.Remove()
}

func (c *Checkpoint) finish(w *Writer) error {
	if c.err != nil {
		return c.err
	}
	if c.f == nil {
		return fmt.Errorf("checkpoint %s: Finish after Close", c.dataPath)
	}
	d, ks := c.meta.Dim, c.meta.Sets
	if w.d != d {
		return fmt.Errorf("checkpoint %s has %d features per row, the store %s %d", c.dataPath, d, w.path, w.d)
	}
	if w.multi != (ks > 0) || (ks > 0 && w.labels != ks) {
		return fmt.Errorf("checkpoint %s has %d label-set columns per row, the store %s %d (multi-label %v)", c.dataPath, ks, w.path, w.labels, w.multi)
	}
	rb := int(rowBytes(d, ks))
	buf := make([]byte, finishChunk*rb)
	feats := make([]float32, finishChunk*d)
	labels := make([]int64, finishChunk)
	ids := make([]int64, finishChunk)
	sets := make([]uint8, finishChunk*ks)
	sum := sha256.New() // of what is read back, against the recorded checksum
	for done := int64(0); done < c.meta.Rows; {
		k := int(min(c.meta.Rows-done, finishChunk))
		b := buf[:k*rb]
		if _, err := c.f.ReadAt(b, done*int64(rb)); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("reading checkpoint %s: %w", c.dataPath, err)
		}
		sum.Write(b)
		for i := range k {
			r := b[i*rb : (i+1)*rb]
			for j := range d {
				feats[i*d+j] = math.Float32frombits(binary.LittleEndian.Uint32(r[4*j:]))
			}
			labels[i] = int64(binary.LittleEndian.Uint64(r[4*d:]))
			ids[i] = int64(binary.LittleEndian.Uint64(r[4*d+8:]))
			copy(sets[i*ks:(i+1)*ks], r[4*d+16:])
		}
		var err error
		if ks > 0 {
			err = w.WriteRowSets(feats[:k*d], sets[:k*ks], ids[:k])
		} else {
			err = w.WriteRows(feats[:k*d], labels[:k], ids[:k])
		}
		if err != nil {
			return err
		}
		done += int64(k)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); c.meta.SHA256 != "" && got != c.meta.SHA256 {
		return errorf(ErrCorruptCheckpoint, "checkpoint %s: checksum mismatch (recorded %.12s…, computed %.12s…): its rows were corrupted or edited; remove %s and %s to start afresh",
			c.dataPath, c.meta.SHA256, got, c.dataPath, c.metaPath)
	}
	return w.Close()
}

// Close closes the checkpoint and keeps its files for a later resume.
func (c *Checkpoint) Close() error {
	if c.f == nil {
		return nil
	}
	err := c.f.Close()
	c.f = nil
	if err != nil {
		return fmt.Errorf("closing checkpoint %s: %w", c.dataPath, err)
	}
	return nil
}

// Remove closes the checkpoint and deletes its files.
func (c *Checkpoint) Remove() error {
	err := c.Close()
	for _, p := range []string{c.metaPath, c.dataPath} {
		if rerr := os.Remove(p); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, fmt.Errorf("removing checkpoint: %w", rerr))
		}
	}
	return err
}
