//go:build !wasm && !test_web_driver

// Ringside overlay (added file): the waits of the event-driven loop in loop.go.

package glfw

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-gl/glfw/v3.3/glfw"
)

// glfwMu orders empty events posted from other goroutines before glfw.Terminate:
// GLFW must not be called once terminated.
var (
	glfwMu   sync.Mutex
	glfwLive bool
)

// The main thread waits in Go where the platform lets it (see loop_wait_x11.go):
// goWait is set once that wait is in use, and wake is its wake-up.
var (
	goWait atomic.Bool
	wake   = make(chan struct{}, 1)
)

func glfwStarted() {
	glfwMu.Lock()
	glfwLive = true
	glfwMu.Unlock()
}

// waitEvents sleeps until an input event, a wake (postEmptyEvent) or the timeout, then
// processes the events like pollEvents. Main thread only.
func (d *gLDriver) waitEvents(timeout time.Duration) {
	if goWait.Load() {
		d.waitEventsInGo(timeout)
		return
	}
	glfw.WaitEventsTimeout(timeout.Seconds())
}

// postEmptyEvent wakes waitEvents; any goroutine.
func postEmptyEvent() {
	if goWait.Load() {
		select {
		case wake <- struct{}{}:
		default: // a wake is pending already
		}
		return
	}
	glfwMu.Lock()
	defer glfwMu.Unlock()
	if glfwLive {
		glfw.PostEmptyEvent() // an X round trip: a message to GLFW's own window
	}
}

func shutdownGLFW(d *gLDriver) {
	stopWaitInGo()
	glfwMu.Lock()
	defer glfwMu.Unlock()
	glfwLive = false
	d.Terminate()
}

// minimized holds the windows the user has minimized (main thread only, as GLFW's
// callbacks). The loop draws none of them and leaves their dirty flag set, so each is
// drawn once restored: a softphone minimized all day repaints nothing as its call
// timers move (with software GL a repaint is milliseconds of CPU).
var minimized = map[*window]bool{}

// isMinimized reports whether w is minimized, watching w from the first time it is asked.
func isMinimized(w *window) bool {
	on, watched := minimized[w]
	if !watched && w.viewport != nil {
		minimized[w] = false
		w.viewport.SetIconifyCallback(func(_ *glfw.Window, iconified bool) {
			if _, ok := minimized[w]; !ok {
				return // destroyed meanwhile
			}
			minimized[w] = iconified
			if !iconified {
				w.canvas.damage.repaintAll()
				w.canvas.SetDirty()
			}
		})
	}
	return on
}

// forgetMinimized drops a destroyed window.
func forgetMinimized(w *window) { delete(minimized, w) }
