//go:build linux && cgo

package main

/*
#include <malloc.h>

// keepFrameBuffers keeps glibc from returning freed heap to the kernel after every
// frame. The GL driver allocates megabytes of staging buffers per repaint and frees
// them (Mesa's software renderer, which VMs and remote desktops use, most of all);
// glibc's default thresholds then unmap or trim them, and the next repaint faults the
// same megabytes in again: ~250 page faults a repaint, a tenth of an idle softphone's
// CPU. Blocks up to 32 MB come from the heap rather than mmap, and up to 64 MB of free
// heap is kept; both are set, since setting either turns off glibc's own adjustment.
static void keepFrameBuffers(void) {
#if defined(M_TRIM_THRESHOLD) && defined(M_MMAP_THRESHOLD)
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
#endif
}
*/
import "C"

func init() { C.keepFrameBuffers() }
