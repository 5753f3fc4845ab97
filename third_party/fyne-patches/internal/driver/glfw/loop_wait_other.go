//go:build (wayland || !linux) && !wasm && !test_web_driver

// Ringside overlay (added file): elsewhere the loop waits in GLFW.

package glfw

import "time"

func startWaitInGo() {}

func stopWaitInGo() {}

func (d *gLDriver) waitEventsInGo(timeout time.Duration) { panic("not used") }
