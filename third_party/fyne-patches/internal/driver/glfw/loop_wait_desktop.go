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
