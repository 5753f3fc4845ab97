//go:build !wayland && linux && !wasm && !test_web_driver

// Ringside overlay (added file): the main thread waits for X events in Go.

package glfw

/*
#cgo LDFLAGS: -lX11
#include <X11/Xlib.h>
#include <fcntl.h>

// x11Fd duplicates the X connection's socket for Go's poller, or is -1 when it
// can't be polled there (Go needs it non-blocking; libxcb makes it so).
static int x11Fd(void *dpy) {
	if (dpy == NULL) return -1;
	int fd = ConnectionNumber((Display *)dpy);
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || !(fl & O_NONBLOCK)) return -1;
	return fcntl(fd, F_DUPFD_CLOEXEC, 0);
}
*/
import "C"

import (
	"os"
	"syscall"
	"time"
	"unsafe"

	"fyne.io/fyne/v2"
	"github.com/go-gl/glfw/v3.3/glfw"
)

// GLFW's own wait is a C call blocked in poll(): a thread in a C call keeps its P, and
// Go's sysmon, which can't sleep while a P is held, polls every 20 µs until it takes
// the P back 10 ms later, after every wake of the loop: most of what the loop cost
// between frames. Parked in Go, the main thread holds no P: the X socket waits in Go's
// netpoller, and a wake from another goroutine is a channel send, not an X round trip.
var x11Wait struct {
	file  *os.File
	conn  syscall.RawConn
	arm   chan struct{} // main to watcher: report the socket's next readiness
	ready chan struct{} // watcher to main: the socket has something to read
	armed bool          // main only: the watcher waits for the socket
	timer *time.Timer
}

// startWaitInGo sets up the X socket's wait after GLFW is initialised; without it the
// loop keeps GLFW's wait. Main thread.
func startWaitInGo() {
	fd := C.x11Fd(unsafe.Pointer(glfw.GetX11Display()))
	if fd < 0 {
		return
	}
	f := os.NewFile(uintptr(fd), "x11")
	conn, err := f.SyscallConn()
	if err != nil {
		fyne.LogError("X events: waiting in GLFW", err)
		f.Close()
		return
	}
	w := &x11Wait
	w.file, w.conn = f, conn
	w.arm, w.ready = make(chan struct{}, 1), make(chan struct{}, 1)
	w.timer = time.NewTimer(time.Hour)
	w.timer.Stop()
	go watchX11(conn, w.arm, w.ready)
	goWait.Store(true)
}

// watchX11 waits, each time it is armed, until the X socket has something to read.
// It never reads: Xlib does, on the main thread.
func watchX11(conn syscall.RawConn, arm <-chan struct{}, ready chan<- struct{}) {
	for range arm {
		if conn.Read(readable) != nil {
			return // closed: the app is quitting
		}
		ready <- struct{}{}
	}
}

// readable reports whether fd has data (or has hung up), without blocking; a raw
// system call, as the watcher's wait must not wake sysmon either. On an error it says
// yes, and the main thread's Xlib sees what is wrong.
func readable(fd uintptr) bool {
	pfd := struct {
		fd              int32
		events, revents int16
	}{fd: int32(fd), events: 0x1} // POLLIN
	var zero syscall.Timespec
	n, _, errno := syscall.RawSyscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, uintptr(unsafe.Pointer(&zero)), 0, 0, 0)
	return errno != 0 || n > 0
}

// waitEventsInGo is waitEvents with the main goroutine parked in Go.
func (d *gLDriver) waitEventsInGo(timeout time.Duration) {
	w := &x11Wait
	// Handle what Xlib has read already (a reply's wait may have queued events) and
	// send what it buffered: the socket alone would not show either.
	glfw.PollEvents()
	if d.needsFrame() || queued.Load() > 0 || d.isDone() {
		return
	}
	if !w.armed {
		w.armed = true
		w.arm <- struct{}{}
	}
	w.timer.Reset(timeout)
	select {
	case <-w.ready:
		w.armed = false
	case <-wake:
	case <-w.timer.C:
	}
	w.timer.Stop()
	glfw.PollEvents()
}

// stopWaitInGo ends the watcher before GLFW closes the display. Main thread.
func stopWaitInGo() {
	w := &x11Wait
	if w.file == nil {
		return
	}
	goWait.Store(false)
	close(w.arm)
	w.file.Close() // ends a Read in progress
	w.file = nil
}
