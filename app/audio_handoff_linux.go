//go:build linux && cgo

package app

/*
#include <errno.h>
#include <linux/futex.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
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

// aheadMax is the longest period Go may fill ahead, in samples (s16 mono).
enum { aheadMax = 160 };

typedef struct {
	void*       out;
	const void* in;
	uint32_t    frames;
	int32_t     state;    // handoffIdle, handoffPending (the callback waits), handoffTaken (Go works)
	uint32_t    done;     // futex word: 1 once Go has filled the period
	int         wake;     // eventfd: a period waits for Go
	long        waitNs;   // how long the callback waits for Go before playing silence
	uint64_t    late;     // periods Go did not take in time
	// The speaker's next period, when Go filled it ahead (aheadFrames samples, 0: none).
	// The next callback plays it if it asks for as many and does not wake Go; what its
	// microphone gave waits in stash (stashed samples, 0: none) until Go's next period.
	// Go writes ahead before it sets done; the callback writes stash before the next
	// handoff: neither side touches them while the other may.
	uint32_t    aheadFrames;
	uint32_t    stashed;
	uint64_t    played;   // periods played ahead
	int16_t     ahead[aheadMax];
	int16_t     stash[aheadMax];
} handoff;

// waitDone sleeps until Go sets h->done, or until the CLOCK_MONOTONIC time until
// (none: no limit). 1 if done.
static int waitDone(handoff* h, const struct timespec* until) {
	for (;;) {
		if (__atomic_load_n(&h->done, __ATOMIC_ACQUIRE)) {
			return 1;
		}
		struct timespec left, *timeout = NULL;
		if (until != NULL) {
			struct timespec now;
			clock_gettime(CLOCK_MONOTONIC, &now);
			left.tv_sec = until->tv_sec - now.tv_sec;
			left.tv_nsec = until->tv_nsec - now.tv_nsec;
			if (left.tv_nsec < 0) {
				left.tv_nsec += 1000000000;
				left.tv_sec--;
			}
			if (left.tv_sec < 0) {
				return 0;
			}
			timeout = &left;
		}
		// Returns when woken, at once if done is no longer 0, or at the timeout.
		syscall(SYS_futex, &h->done, FUTEX_WAIT_PRIVATE, 0, timeout, NULL, 0);
	}
}

// handoffData is the device's data callback, on miniaudio's audio thread. It hands the
// period to the Go goroutine waiting on the eventfd and waits until Go has filled it, so
// the exchange costs no latency; if Go does not take it within waitNs (a GC pause, a
// stalled machine), the period plays what miniaudio pre-filled (silence) and the device
// keeps its clock. No Go code runs on this thread.
static void handoffData(void* dev, void* out, const void* in, uint32_t frames) {
	handoff* h = ((deviceHead*)dev)->pUserData;
	uint32_t ahead = h->aheadFrames;
	h->aheadFrames = 0;
	if (ahead != 0 && ahead == frames && out != NULL && h->stashed == 0) {
		memcpy(out, h->ahead, frames * sizeof h->ahead[0]);
		if (in != NULL) {
			memcpy(h->stash, in, frames * sizeof h->stash[0]);
		} else {
			memset(h->stash, 0, frames * sizeof h->stash[0]);
		}
		h->stashed = frames;
		__atomic_add_fetch(&h->played, 1, __ATOMIC_RELAXED);
		return;
	}
	h->out = out;
	h->in = in;
	h->frames = frames;
	__atomic_store_n(&h->done, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&h->state, handoffPending, __ATOMIC_RELEASE);
	uint64_t one = 1;
	if (write(h->wake, &one, sizeof one) == sizeof one) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += h->waitNs;
		until.tv_sec += until.tv_nsec / 1000000000;
		until.tv_nsec %= 1000000000;
		if (waitDone(h, &until)) {
			return;
		}
	}
	// Too late: take the period back, unless Go is already writing it.
	int32_t pending = handoffPending;
	if (__atomic_compare_exchange_n(&h->state, &pending, handoffIdle, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		__atomic_add_fetch(&h->late, 1, __ATOMIC_RELAXED);
		return;
	}
	waitDone(h, NULL);
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

// handoffRun runs one period as miniaudio's thread would (tests).
static void handoffRun(handoff* h, int16_t* out, const int16_t* in, uint32_t frames) {
	deviceHead d = {0};
	d.pUserData = h;
	handoffData(&d, out, in, frames);
}

static handoff* handoffNew(long waitNs) {
	handoff* h = calloc(1, sizeof *h);
	if (h == NULL) {
		return NULL;
	}
	h->waitNs = waitNs;
	h->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (h->wake < 0) {
		free(h);
		return NULL;
	}
	return h;
}

static uint64_t handoffLate(handoff* h) { return __atomic_load_n(&h->late, __ATOMIC_RELAXED); }
static uint64_t handoffPlayedAhead(handoff* h) { return __atomic_load_n(&h->played, __ATOMIC_RELAXED); }

// handoffFree frees h once the device is uninitialized (its thread gone) and the Go
// side has stopped; the eventfd is closed by Go's os.File.
static void handoffFree(handoff* h) { free(h); }
*/
import "C"

import (
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/gen2brain/malgo"
)

// Why the handoff: when miniaudio's audio thread calls into Go every period (malgo's
// callback), the thread keeps a P (Go's scheduler slot) while it is back in C; nothing
// is scheduled on that P, so every 10 ms Go's sysmon takes it back as stuck in a
// syscall, and each time it starts polling again every 20 µs. That polling was half of
// a monitoring softphone's CPU. With the handoff the audio thread only writes an
// eventfd and waits on a futex; a goroutine parked in the netpoller runs the period,
// so the runtime sees an ordinary goroutine wake-up.
//
// The goroutine makes no system call through Go's syscall path either: each one wakes
// a sleeping sysmon, which then polls every 20 µs for a while. It never reads the
// eventfd (the netpoller reports every write, edge-triggered; the state word says
// whether a period waits), claims the period with an atomic, and wakes the audio
// thread with a raw futex call.
//
// Half of those wake-ups are not needed either: frames are 20 ms and periods 10 ms, so
// in a call every other period plays the rest of a frame begun in the one before. Go
// fills such a period ahead when the phone knows it (frameIO.ahead); the audio thread
// plays it and keeps the microphone's period for Go, which catches up in the next one.
// A monitoring softphone then wakes Go 50 times a second instead of 100 (the process
// switches context about 580 times a second instead of 700), and plays and sends
// exactly what it did.

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
	h, conn := newHandoff(handoffWait)
	if h == nil {
		return nil
	}
	if C.handoffInstall(*raw, h.c, C.int32_t(kind), C.uint32_t(dev.SampleRate())) != 0 {
		_ = h.wake.Close()
		C.handoffFree(h.c)
		return nil
	}
	go h.serve(conn, io)
	return h
}

// newHandoff makes a handoff whose periods wait for Go at most wait; nil if the system
// refuses an eventfd.
func newHandoff(wait time.Duration) (*audioHandoff, syscall.RawConn) {
	c := C.handoffNew(C.long(wait.Nanoseconds()))
	if c == nil {
		return nil, nil
	}
	wake := os.NewFile(uintptr(c.wake), "audio-periods")
	conn, err := wake.SyscallConn()
	if err != nil {
		_ = wake.Close()
		C.handoffFree(c)
		return nil, nil
	}
	return &audioHandoff{c: c, wake: wake, stopped: make(chan struct{})}, conn
}

// runPeriod does what miniaudio's audio thread does each period, with out and in as its
// buffers (tests: the null backend plays nothing one could check).
func (h *audioHandoff) runPeriod(out, in []int16) {
	n := len(out)
	buf := C.calloc(C.size_t(2*n), C.size_t(unsafe.Sizeof(int16(0))))
	defer C.free(buf)
	both := unsafe.Slice((*int16)(buf), 2*n)
	copy(both[n:], in)
	C.handoffRun(h.c, (*C.int16_t)(buf), (*C.int16_t)(unsafe.Pointer(&both[n])), C.uint32_t(n))
	copy(out, both[:n])
}

const (
	handoffIdle    = C.handoffIdle
	handoffPending = C.handoffPending
	handoffTaken   = C.handoffTaken
)

// serve runs each period the audio thread hands over, until close.
func (h *audioHandoff) serve(conn syscall.RawConn, io *atomic.Pointer[frameIO]) {
	defer close(h.stopped)
	state := (*atomic.Int32)(unsafe.Pointer(&h.c.state))
	done := (*atomic.Uint32)(unsafe.Pointer(&h.c.done))
	take := func(uintptr) bool { return state.CompareAndSwap(handoffPending, handoffTaken) }
	for {
		// Parks until the eventfd is written, unless a period waits already; a period
		// that gave up waiting meanwhile is back to idle and is not taken.
		if conn.Read(take) != nil {
			return
		}
		n := int(h.c.frames)
		out := int16sAt(h.c.out, n)
		in := int16sAt(unsafe.Pointer(h.c.in), n)
		f := io.Load()
		if s := int(h.c.stashed); s != 0 {
			if f != nil {
				f.playedAhead(unsafe.Slice((*int16)(&h.c.stash[0]), s), s)
			}
			h.c.stashed = 0
		}
		if f != nil {
			f.process(out, in, n)
			if out != nil && n <= C.aheadMax && f.ahead(unsafe.Slice((*int16)(&h.c.ahead[0]), n)) {
				h.c.aheadFrames = C.uint32_t(n)
			}
		} else {
			clear(out)
		}
		state.Store(handoffIdle)
		done.Store(1)
		futexWake(&h.c.done)
	}
}

// futexWake wakes the audio thread waiting on word.
func futexWake(word *C.uint32_t) {
	syscall.RawSyscall6(syscall.SYS_FUTEX, uintptr(unsafe.Pointer(word)), C.FUTEX_WAKE_PRIVATE, 1, 0, 0, 0)
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

// playedAhead is how many periods played what Go had filled ahead, without waking it.
func (h *audioHandoff) playedAhead() uint64 { return uint64(C.handoffPlayedAhead(h.c)) }

// reset forgets a period filled ahead and a microphone's period not caught up on: the
// device must be stopped (a new frameIO starts afresh).
func (h *audioHandoff) reset() {
	h.c.aheadFrames = 0
	h.c.stashed = 0
}

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
