//go:build !wasm && !test_web_driver

// Ringside overlay (added file): the GLFW calls of the event-driven loop in loop.go.

package glfw

import (
	"sync"
	"time"

	"github.com/go-gl/glfw/v3.3/glfw"
)

// glfwMu orders empty events posted from other goroutines before glfw.Terminate:
// GLFW must not be called once terminated.
var (
	glfwMu   sync.Mutex
	glfwLive bool
)

func glfwStarted() {
	glfwMu.Lock()
	glfwLive = true
	glfwMu.Unlock()
}

// waitEvents sleeps until an input event, an empty event or the timeout, then
// processes the events like pollEvents. Main thread only.
func waitEvents(timeout time.Duration) {
	glfw.WaitEventsTimeout(timeout.Seconds())
}

// postEmptyEvent wakes waitEvents; any goroutine (GLFW writes to a pipe).
func postEmptyEvent() {
	glfwMu.Lock()
	defer glfwMu.Unlock()
	if glfwLive {
		glfw.PostEmptyEvent()
	}
}

func shutdownGLFW(d *gLDriver) {
	glfwMu.Lock()
	defer glfwMu.Unlock()
	glfwLive = false
	d.Terminate()
}
