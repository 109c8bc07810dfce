//go:build !(linux && cgo)

package main

// oneMallocArena does nothing where the C library is not glibc's (see malloc_linux.go).
func oneMallocArena() {}
