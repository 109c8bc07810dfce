package lora

// Rows says where the sequences of a batch lie in an activation matrix of N
// token slots by C features, (N,C) row-major: sequence b holds slots
// Start[b] ... Start[b]+Len[b]-1. Slots outside every sequence are padding.
// Sequences must come in increasing order of Start and must not overlap.
//
// Two layouts are common: packed, the sequences back to back with no padding
// (the activation cache's layout; see Packed), and padded, B sequences of T
// slots each, (B,T,C), as a tokenizer batch and onnxruntime's hidden states
// have them (see Padded).
type Rows struct {
	Start []int
	Len   []int
}

// Packed returns the layout of sequences of the given lengths stored back to
// back: Start[b] = Σ_{j<b} lens[j]. lens is not retained.
func Packed(lens []int) Rows {
	r := Rows{Start: make([]int, len(lens)), Len: append([]int(nil), lens...)}
	s := 0
	for b, l := range lens {
		r.Start[b] = s
		s += l
	}
	return r
}

// Padded returns the layout of len(lens) sequences padded on the right to t
// slots each, (B,t,C): Start[b] = b·t. Each length must be at most t. lens
// is not retained.
func Padded(t int, lens []int) Rows {
	r := Rows{Start: make([]int, len(lens)), Len: append([]int(nil), lens...)}
	for b, l := range lens {
		if l < 0 || l > t {
			panic("lora: Padded: a length exceeds the padded length")
		}
		r.Start[b] = b * t
	}
	return r
}

// Tokens returns the number of tokens, Σ Len.
func (r Rows) Tokens() int {
	n := 0
	for _, l := range r.Len {
		n += l
	}
	return n
}

// check panics unless r is a valid layout of slots token slots.
func (r Rows) check(slots int) {
	if len(r.Start) != len(r.Len) {
		panic("lora: Rows: Start and Len differ in length")
	}
	end := 0
	for b, s := range r.Start {
		l := r.Len[b]
		if l < 0 || s < end || s+l > slots {
			panic("lora: Rows: sequences overlap, are out of order, or exceed the activation matrix")
		}
		end = s + l
	}
}

// equal reports whether r and o describe the same layout.
func (r Rows) equal(o Rows) bool {
	if len(r.Start) != len(o.Start) || len(r.Len) != len(o.Len) {
		return false
	}
	for b := range r.Start {
		if r.Start[b] != o.Start[b] || r.Len[b] != o.Len[b] {
			return false
		}
	}
	return true
}
