//go:build linux && cgo

package app

/*
#include <errno.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

// The head of miniaudio 0.11's ma_device (malgo v0.11.24), up to pUserData: malgo has
// no way to give the device a C data callback, so the handoff puts its own in onData.
// installHandoff checks the layout against malgo's accessors before writing anything.
typedef struct {
	void*    pContext;
	int32_t  type;
	uint32_t sampleRate;
	uint32_t state;
	void   (*onData)(void*, void*, const void*, uint32_t);
	void*    onNotification;
	void*    onStop;
	void*    pUserData;
} deviceHead;

enum { handoffIdle, handoffPending, handoffTaken };

typedef struct {
	void*       out;
	const void* in;
	uint32_t    frames;
	int32_t     state;    // handoffIdle, handoffPending (the callback waits), handoffTaken (Go works)
	int         wake;     // eventfd: a period waits for Go
	sem_t       done;     // Go has filled the period
	long        waitNs;   // how long the callback waits for Go before playing silence
	uint64_t    late;     // periods Go did not take in time
} handoff;

// handoffData is the device's data callback, on miniaudio's audio thread. It hands the
// period to the Go goroutine reading the eventfd and waits until Go has filled it, so
// the exchange costs no latency; if Go does not take it within waitNs (a GC pause, a
// stalled machine), the period plays what miniaudio pre-filled (silence) and the device
// keeps its clock. No Go code runs on this thread.
static void handoffData(void* dev, void* out, const void* in, uint32_t frames) {
	handoff* h = ((deviceHead*)dev)->pUserData;
	h->out = out;
	h->in = in;
	h->frames = frames;
	__atomic_store_n(&h->state, handoffPending, __ATOMIC_RELEASE);
	uint64_t one = 1;
	if (write(h->wake, &one, sizeof one) != sizeof one) {
		int32_t pending = handoffPending;
		if (__atomic_compare_exchange_n(&h->state, &pending, handoffIdle, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			__atomic_add_fetch(&h->late, 1, __ATOMIC_RELAXED);
			return;
		}
	}
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += h->waitNs;
	until.tv_sec += until.tv_nsec / 1000000000;
	until.tv_nsec %= 1000000000;
	for (;;) {
		if (sem_timedwait(&h->done, &until) == 0) {
			return;
		}
		if (errno == EINTR) {
			continue;
		}
		// Too late: take the period back, unless Go is already writing it.
		int32_t pending = handoffPending;
		if (__atomic_compare_exchange_n(&h->state, &pending, handoffIdle, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			__atomic_add_fetch(&h->late, 1, __ATOMIC_RELAXED);
			return;
		}
		while (sem_wait(&h->done) != 0 && errno == EINTR) {
		}
		return;
	}
}

// handoffInstall checks dev's head against what malgo reports and, if it matches and
// nothing uses pUserData, makes handoffData its data callback. 0 on success.
static int handoffInstall(void* dev, handoff* h, int32_t type, uint32_t rate) {
	deviceHead* d = dev;
	if (d->type != type || d->sampleRate != rate || d->onData == NULL || d->pUserData != NULL) {
		return -1;
	}
	d->pUserData = h;
	d->onData = handoffData;
	return 0;
}

static handoff* handoffNew(long waitNs) {
	handoff* h = calloc(1, sizeof *h);
	if (h == NULL) {
		return NULL;
	}
	h->waitNs = waitNs;
	h->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (h->wake < 0 || sem_init(&h->done, 0, 0) != 0) {
		if (h->wake >= 0) {
			close(h->wake);
		}
		free(h);
		return NULL;
	}
	return h;
}

// handoffTake claims the waiting period for Go: 1 if there is one.
static int handoffTake(handoff* h) {
	int32_t pending = handoffPending;
	return __atomic_compare_exchange_n(&h->state, &pending, handoffTaken, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

static void handoffDone(handoff* h) {
	__atomic_store_n(&h->state, handoffIdle, __ATOMIC_RELEASE);
	sem_post(&h->done);
}

static uint64_t handoffLate(handoff* h) { return __atomic_load_n(&h->late, __ATOMIC_RELAXED); }

// handoffFree frees h once the device is uninitialized (its thread gone) and the Go
// side has stopped; the eventfd is closed by Go's os.File.
static void handoffFree(handoff* h) {
	sem_destroy(&h->done);
	free(h);
}
*/
import "C"

import (
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gen2brain/malgo"
)

// Why the handoff: when miniaudio's audio thread calls into Go every period (malgo's
// callback), the thread keeps a P (Go's scheduler slot) while it is back in C; nothing
// is scheduled on that P, so every 10 ms Go's sysmon takes it back as stuck in a
// syscall, and each time it starts polling again every 20 µs. That polling was half of
// a monitoring softphone's CPU. With the handoff the audio thread only writes an
// eventfd and waits on a semaphore; a goroutine blocked in the netpoller runs the
// period, so the runtime sees an ordinary goroutine wake-up.

// handoffWait is how long a period waits for Go before it plays silence: half a period,
// so the device still has its other period's worth of margin.
const handoffWait = devicePeriod / 2

// audioHandoff runs a device's periods on a goroutine instead of on its audio thread.
type audioHandoff struct {
	c       *C.handoff
	wake    *os.File
	stopped chan struct{}
}

// installHandoff makes dev hand its periods to a goroutine that runs io's frameIO.
// It returns nil (the device keeps malgo's Go callback) if dev does not look like the
// miniaudio device this was written for.
func installHandoff(dev *malgo.Device, kind malgo.DeviceType, io *atomic.Pointer[frameIO]) *audioHandoff {
	// malgo.Device is a single pointer to the C ma_device pointer.
	raw := *(**unsafe.Pointer)(unsafe.Pointer(dev))
	if raw == nil || *raw == nil || dev.Type() != kind {
		return nil
	}
	c := C.handoffNew(C.long(handoffWait.Nanoseconds()))
	if c == nil {
		return nil
	}
	if C.handoffInstall(*raw, c, C.int32_t(kind), C.uint32_t(dev.SampleRate())) != 0 {
		C.close(c.wake)
		C.handoffFree(c)
		return nil
	}
	h := &audioHandoff{c: c, wake: os.NewFile(uintptr(c.wake), "audio-periods"), stopped: make(chan struct{})}
	go h.serve(io)
	return h
}

// serve runs each period the audio thread hands over, until close.
func (h *audioHandoff) serve(io *atomic.Pointer[frameIO]) {
	defer close(h.stopped)
	var count [8]byte
	for {
		if _, err := h.wake.Read(count[:]); err != nil {
			return
		}
		if C.handoffTake(h.c) == 0 {
			continue // the period gave up waiting
		}
		n := int(h.c.frames)
		out := int16sAt(h.c.out, n)
		in := int16sAt(unsafe.Pointer(h.c.in), n)
		if f := io.Load(); f != nil {
			f.process(out, in, n)
		} else {
			clear(out)
		}
		C.handoffDone(h.c)
	}
}

// int16sAt views n samples of C memory (nil for none).
func int16sAt(p unsafe.Pointer, n int) []int16 {
	if p == nil {
		return nil
	}
	return unsafe.Slice((*int16)(p), n)
}

// late is how many periods played silence because the goroutine was late.
func (h *audioHandoff) late() uint64 { return uint64(C.handoffLate(h.c)) }

// close stops the goroutine and frees the handoff; the device must be uninitialized.
func (h *audioHandoff) close() {
	_ = h.wake.Close()
	select {
	case <-h.stopped:
	case <-time.After(5 * time.Second): // never expected; leak rather than free in use
		return
	}
	C.handoffFree(h.c)
}
