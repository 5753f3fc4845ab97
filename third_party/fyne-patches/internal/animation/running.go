// Ringside overlay (added file): lets the event-driven GLFW loop know whether it
// must keep ticking for animations.

package animation

// Running reports whether an animation is ticking or waiting for its first tick.
func (r *Runner) Running() bool {
	r.animationMutex.RLock()
	defer r.animationMutex.RUnlock()
	return r.runnerStarted
}
