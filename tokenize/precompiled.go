package tokenize

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"github.com/rivo/uniseg"
)

// precompiled is the Precompiled normalizer: SentencePiece's normalisation
// rules (nmt_nfkc and the like) as a darts-clone double-array trie from UTF-8
// input to an offset into a blob of NUL-terminated replacement strings.
//
// The blob is
//
//	uint32 little-endian  trie size in bytes (a multiple of 4)
//	trie                  double-array units, uint32 little-endian
//	strings               replacements, each ending in NUL
//
// tokenizers (spm_precompiled) applies it per extended grapheme cluster: a
// cluster shorter than 6 bytes whose prefix is a key is replaced whole by the
// replacement of its shortest matching prefix; otherwise each code point is
// looked up alone and replaced when it is a key.
type precompiled struct {
	units []uint32
	blob  []byte
}

func parsePrecompiled(b []byte) (*precompiled, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: Precompiled charsmap of %d bytes is too short", ErrFormat, len(b))
	}
	n := binary.LittleEndian.Uint32(b)
	if n%4 != 0 || uint64(n) > uint64(len(b)-4) || n == 0 {
		return nil, fmt.Errorf("%w: Precompiled charsmap trie size %d does not fit its %d bytes", ErrFormat, n, len(b))
	}
	p := &precompiled{units: make([]uint32, n/4), blob: b[4+n:]}
	for i := range p.units {
		p.units[i] = binary.LittleEndian.Uint32(b[4+4*i:])
	}
	return p, nil
}

// Fields of a darts-clone unit.
func dartsHasLeaf(u uint32) bool  { return (u>>8)&1 == 1 }
func dartsValue(u uint32) uint32  { return u & (1<<31 - 1) }
func dartsLabel(u uint32) uint32  { return u & (1<<31 | 0xff) }
func dartsOffset(u uint32) uint32 { return (u >> 10) << ((u & (1 << 9)) >> 6) }
func (p *precompiled) unit(i uint32) (uint32, bool) {
	if int(i) >= len(p.units) {
		return 0, false
	}
	return p.units[i], true
}

// lookup returns the replacement of the shortest key that is a prefix of s.
func (p *precompiled) lookup(s string) (string, bool) {
	pos := uint32(0)
	u, ok := p.unit(pos)
	if !ok {
		return "", false
	}
	pos ^= dartsOffset(u)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0 {
			break
		}
		pos ^= uint32(c)
		if u, ok = p.unit(pos); !ok || dartsLabel(u) != uint32(c) {
			return "", false
		}
		pos ^= dartsOffset(u)
		if dartsHasLeaf(u) {
			leaf, ok := p.unit(pos)
			if !ok {
				return "", false
			}
			at := int(dartsValue(leaf))
			if at > len(p.blob) {
				return "", false
			}
			end := at
			for end < len(p.blob) && p.blob[end] != 0 {
				end++
			}
			return string(p.blob[at:end]), true
		}
	}
	return "", false
}

func (p *precompiled) normalize(n normStr) normStr {
	s := string(n.r)
	cs := make([]change, 0, len(n.r))
	modified := false
	// replace is spm_precompiled's: the new code points replace the old one
	// by one, extra ones are inserted, and a shortfall is removed after the
	// last change so far (even one of an earlier cluster).
	replace := func(old []rune, rep string) {
		k := len(cs)
		for _, r := range rep {
			cs = append(cs, change{r: r})
		}
		diff := len(cs) - k - len(old)
		switch {
		case diff > 0:
			for i := len(cs) - diff; i < len(cs); i++ {
				cs[i].d = 1
			}
		case diff < 0 && len(cs) > 0:
			cs[len(cs)-1].d += diff
		}
	}
	g := uniseg.NewGraphemes(s)
	var buf [utf8.UTFMax]byte
	for g.Next() {
		cl := g.Str()
		rs := g.Runes()
		if len(cl) < 6 {
			if rep, ok := p.lookup(cl); ok {
				modified = true
				replace(rs, rep)
				continue
			}
		}
		for _, r := range rs {
			if rep, ok := p.lookup(string(buf[:utf8.EncodeRune(buf[:], r)])); ok {
				modified = true
				replace([]rune{r}, rep)
			} else {
				cs = append(cs, change{r: r})
			}
		}
	}
	if !modified {
		return n
	}
	return n.transform(cs)
}
