//go:build linux && cgo

package main

/*
#include <malloc.h>

// oneArena keeps glibc's allocator to its main arena; it returns 0 where the C
// library has no such setting (musl).
static int oneArena(void) {
#ifdef M_ARENA_MAX
	return mallopt(M_ARENA_MAX, 1);
#else
	return 0;
#endif
}
*/
import "C"

import "os"

// oneMallocArena makes every thread share glibc's one malloc arena, unless the
// MALLOC_ARENA_MAX variable says otherwise. onnxruntime allocates from whichever OS
// thread calls into it, and the Go runtime moves cgo calls among many threads, so
// glibc's default (an arena per thread, up to 8 per core, each keeping what is freed
// in it) grew an extraction of all SST-2 by about 20 MiB over one of 5,000 rows (276
// against 251-253 MiB; with one arena 253 against 235-251) at the same speed.
// Called first thing in main, before any onnxruntime thread exists.
func oneMallocArena() {
	if os.Getenv("MALLOC_ARENA_MAX") == "" {
		C.oneArena()
	}
}
