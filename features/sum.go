package features

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/headstart-ml/headstart/internal/safetensors"
)

// SHA256Key is the __metadata__ key of a feature store's or activation cache's
// checksum: the hex SHA-256 of the manifest's JSON (the metadata value under
// MetadataKey or TokensMetadataKey, byte for byte) followed by every data byte (all
// the file after the header), as a head file's. OpenStore and OpenTokens verify it; a
// store written before stores had one is read without it (Store.SHA256 is then "").
// In Python:
//
//	hashlib.sha256(manifest.encode() + open(path, "rb").read()[8 + n:]).hexdigest()
const SHA256Key = "headstart_sha256"

// noSum holds the checksum's place in a header written before the data: the sum has
// the same length, so the header does not move when Close writes it.
var noSum = strings.Repeat("0", sha256.Size*2)

// sumHeader is what a store's or cache's header holds besides the checksum: the
// manifest's JSON under its key, and the tensors.
type sumHeader struct {
	key      string // MetadataKey or TokensMetadataKey
	manifest []byte
	tensors  []safetensors.Tensor
}

// encode returns the header with sum as the checksum.
func (h *sumHeader) encode(sum string) ([]byte, error) {
	b, err := safetensors.Encode(map[string]string{h.key: string(h.manifest), SHA256Key: sum}, h.tensors)
	if err != nil {
		return nil, fmt.Errorf("encoding the header: %w", err)
	}
	return b, nil
}

// seal computes the checksum of the file f, whose header (of len(placeholder) bytes)
// holds noSum and whose data is complete, and writes the header with it.
func (h *sumHeader) seal(f *os.File, placeholder []byte) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	base := int64(len(placeholder))
	sum, err := dataSum(f, h.manifest, base, st.Size())
	if err != nil {
		return err
	}
	hdr, err := h.encode(sum)
	if err != nil {
		return err
	}
	if len(hdr) != len(placeholder) {
		panic("features: checksum header changed length")
	}
	_, err = f.WriteAt(hdr, 0)
	return err
}

// dataSum is the checksum of a manifest and the data from base to size in r.
func dataSum(r io.ReaderAt, manifest []byte, base, size int64) (string, error) {
	h := sha256.New()
	h.Write(manifest)
	if _, err := io.CopyBuffer(h, io.NewSectionReader(r, base, size-base), make([]byte, readChunk)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// parseHeader parses a safetensors header, tagging an invalid one ErrCorruptStore and
// naming the file.
func parseHeader(r io.ReaderAt, size int64, name string) (*safetensors.File, error) {
	sf, err := safetensors.Parse(r, size)
	switch {
	case errors.Is(err, safetensors.ErrInvalid):
		return nil, errorf(ErrCorruptStore, "%s: %s", name, strings.TrimPrefix(err.Error(), safetensors.ErrInvalid.Error()+": "))
	case err != nil:
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return sf, nil
}

// verifySum checks the checksum of the store or cache whose header is sf and whose
// manifest's JSON is manifest, reading its data from r. It returns the checksum, or ""
// for a file written before stores had one.
func verifySum(r io.ReaderAt, size int64, sf *safetensors.File, manifest, name string) (string, error) {
	want, ok := sf.Meta[SHA256Key]
	if !ok {
		return "", nil
	}
	got, err := dataSum(r, []byte(manifest), sf.Base, size)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", name, err)
	}
	if got != want {
		return "", errorf(ErrCorruptStore, "%s: checksum mismatch (stored %.12s…, computed %.12s…): the file was corrupted or edited after it was written", name, want, got)
	}
	return want, nil
}
