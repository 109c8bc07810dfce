package experiment

// RandomState is the part of numpy's legacy numpy.random.RandomState that the MTEB
// protocol uses, reproduced bit for bit: the MT19937 generator with numpy's legacy
// integer seeding, random_interval (numpy/random/src/distributions/distributions.c)
// and RandomState.shuffle of a one-dimensional array (numpy/random/mtrand.pyx,
// _shuffle_raw). The zero value is not usable; use NewRandomState. A RandomState is
// not safe for concurrent use.
type RandomState struct {
	mt  [mtN]uint32
	pos int
}

// MT19937 constants (Matsumoto and Nishimura, "Mersenne Twister: a 623-dimensionally
// equidistributed uniform pseudo-random number generator", ACM TOMACS 8(1), 1998).
const (
	mtN       = 624
	mtM       = 397
	mtMatrixA = 0x9908b0df
	mtUpper   = 0x80000000
	mtLower   = 0x7fffffff
)

// NewRandomState returns the generator of numpy.random.RandomState(seed) (equivalently,
// the global generator after numpy.random.seed(seed)) for an integer seed: the
// reference init_genrand,
//
//	mt[0] = seed,  mt[i] = 1812433253 · (mt[i−1] ⊕ (mt[i−1] >> 30)) + i  (mod 2³²),
//
// with the state consumed from the start (pos = 624).
func NewRandomState(seed uint32) *RandomState {
	r := &RandomState{pos: mtN}
	r.mt[0] = seed
	for i := 1; i < mtN; i++ {
		r.mt[i] = 1812433253*(r.mt[i-1]^(r.mt[i-1]>>30)) + uint32(i)
	}
	return r
}

// generate refills the state (mt19937_gen).
func (r *RandomState) generate() {
	mag := func(y uint32) uint32 { return (y & 1) * mtMatrixA }
	var i int
	for i = 0; i < mtN-mtM; i++ {
		y := r.mt[i]&mtUpper | r.mt[i+1]&mtLower
		r.mt[i] = r.mt[i+mtM] ^ y>>1 ^ mag(y)
	}
	for ; i < mtN-1; i++ {
		y := r.mt[i]&mtUpper | r.mt[i+1]&mtLower
		r.mt[i] = r.mt[i+mtM-mtN] ^ y>>1 ^ mag(y)
	}
	y := r.mt[mtN-1]&mtUpper | r.mt[0]&mtLower
	r.mt[mtN-1] = r.mt[mtM-1] ^ y>>1 ^ mag(y)
	r.pos = 0
}

// Uint32 returns the next 32-bit output (genrand_int32, with the tempering).
func (r *RandomState) Uint32() uint32 {
	if r.pos == mtN {
		r.generate()
	}
	y := r.mt[r.pos]
	r.pos++
	y ^= y >> 11
	y ^= y << 7 & 0x9d2c5680
	y ^= y << 15 & 0xefc60000
	y ^= y >> 18
	return y
}

// Uint64 returns two outputs as one 64-bit value, the first in the high half
// (numpy's mt19937_next64).
func (r *RandomState) Uint64() uint64 {
	hi := uint64(r.Uint32())
	return hi<<32 | uint64(r.Uint32())
}

// Interval returns a uniform integer in [0, max] by masked rejection sampling, as
// numpy's random_interval: draw 32 bits (64 when max >= 2³²), keep the bits of the
// smallest all-ones mask covering max, and redraw while the value exceeds max.
func (r *RandomState) Interval(max uint64) uint64 {
	if max == 0 {
		return 0
	}
	mask := max
	mask |= mask >> 1
	mask |= mask >> 2
	mask |= mask >> 4
	mask |= mask >> 8
	mask |= mask >> 16
	mask |= mask >> 32
	if max <= 0xffffffff {
		for {
			if v := uint64(r.Uint32()) & mask; v <= max {
				return v
			}
		}
	}
	for {
		if v := r.Uint64() & mask; v <= max {
			return v
		}
	}
}

// Shuffle permutes x in place as RandomState.shuffle does a one-dimensional array (the
// Fisher–Yates pass from the end):
//
//	for i = n−1 … 1:  j = Interval(i);  swap x[i], x[j]
func (r *RandomState) Shuffle(x []int) {
	for i := len(x) - 1; i >= 1; i-- {
		j := int(r.Interval(uint64(i)))
		x[i], x[j] = x[j], x[i]
	}
}
