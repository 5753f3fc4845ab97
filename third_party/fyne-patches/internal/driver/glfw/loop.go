package glfw

import (
	"runtime"
	"sync/atomic"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/internal/app"
	"fyne.io/fyne/v2/internal/async"
	"fyne.io/fyne/v2/internal/cache"
	"fyne.io/fyne/v2/internal/driver/common"
	"fyne.io/fyne/v2/internal/painter"
	"fyne.io/fyne/v2/internal/scale"
)

type funcData struct {
	f    func()
	done chan struct{} // Zero allocation signalling channel
}

// channel for queuing functions on the main thread
var (
	funcQueue        = async.NewUnboundedChan[funcData]()
	running, drained atomic.Bool

	// Ringside overlay: the loop sleeps in GLFW's event wait while nothing changes.
	// queued counts functions sent to funcQueue and not yet taken off it; sleeping
	// tells producers that the main thread may be blocked in waitEvents and needs
	// an empty event to wake. Both sides store their own flag before loading the
	// other's (sequentially consistent atomics), so a wake-up can't be lost.
	queued   atomic.Int64
	sleeping atomic.Bool
)

// framePeriod is the least time between two frames: 60 a second, as upstream.
const framePeriod = time.Second / 60

// idleWait bounds one sleep of the event loop: a change that reaches no wake-up
// (a canvas marked dirty off the main thread, an animation started from a goroutine)
// is drawn at most this late, and the render caches are still kept alive.
const idleWait = time.Second

// Arrange that main.main runs on main thread.
func init() {
	runtime.LockOSThread()
	async.SetMainGoroutine()
}

// force a function f to run on the main thread
func runOnMain(f func()) {
	runOnMainWithWait(f, true)
}

// force a function f to run on the main thread and specify if we should wait for it to return
func runOnMainWithWait(f func(), wait bool) {
	// If we are on main before app run just execute - otherwise add it to the main queue and wait.
	// We also need to run it as-is if the app is in the process of shutting down as the queue will be stopped.
	if (!running.Load() && async.IsMainGoroutine()) || drained.Load() {
		f()
		return
	}

	if wait {
		done := common.DonePool.Get()
		defer common.DonePool.Put(done)

		queued.Add(1)
		funcQueue.In() <- funcData{f: f, done: done}
		wakeMain()
		<-done
	} else {
		queued.Add(1)
		funcQueue.In() <- funcData{f: f}
		wakeMain()
	}
}

// wakeMain interrupts the main thread's event wait, if it is (about to be) in one.
func wakeMain() {
	if sleeping.Load() {
		postEmptyEvent()
	}
}

func (d *gLDriver) drawSingleFrame() {
	refreshed := false
	for _, win := range d.windowList() {
		w := win.(*window)
		if w.closing {
			continue
		}

		// CheckDirtyAndClear must be checked after visibility,
		// because when a window becomes visible, it could be
		// showing old content without a dirty flag set to true.
		// Do the clear if and only if the window is visible.
		// A minimized window keeps its dirty flag (Ringside overlay: see isMinimized).
		if !w.visible || isMinimized(w) || !w.canvas.CheckDirtyAndClear() {
			// Window hidden or not being redrawn, mark canvasForObject
			// cache alive if it hasn't been done recently
			// n.b. we need to make sure threshold is a bit *after*
			// time.Now() - CacheDuration()
			threshold := time.Now().Add(10*time.Second - cache.ValidDuration)
			if w.lastWalkedTime.Before(threshold) {
				w.canvas.WalkTrees(nil, func(node *common.RenderCacheNode, _ fyne.Position) {
					// marks canvas for object cache entry alive
					_ = cache.GetCanvasForObject(node.Obj())
					// marks renderer cache entry alive
					if wid, ok := node.Obj().(fyne.Widget); ok {
						_, _ = cache.CachedRenderer(wid)
					}
				})
				w.lastWalkedTime = time.Now()
			}
			continue
		}

		w.RunWithContext(func() {
			if w.driver.repaintWindow(w) {
				refreshed = true
			}
		})
	}
	cache.Clean(refreshed)
}

func (d *gLDriver) runGL() {
	if !running.CompareAndSwap(false, true) {
		return // Run was called twice.
	}

	d.init()
	glfwStarted()
	startWaitInGo()
	if d.trayStart != nil {
		d.trayStart()
	}

	fyne.CurrentApp().Settings().AddListener(func(set fyne.Settings) {
		painter.ClearFontCache()
		cache.ResetThemeCaches()
		app.ApplySettingsWithCallback(set, fyne.CurrentApp(), func(w fyne.Window) {
			c, ok := w.Canvas().(*glCanvas)
			if !ok {
				return
			}
			c.applyThemeOutOfTreeObjects()
			c.reloadScale()
		})
	})

	if f := fyne.CurrentApp().Lifecycle().(*app.Lifecycle).OnStarted(); f != nil {
		f()
	}

	// Ringside overlay: frames are paced at 60 Hz only while something changes (a dirty
	// canvas, a running animation, a window to fit or close); otherwise the main thread
	// sleeps in GLFW's event wait until an input event, a queued function or idleWait.
	go func() {
		<-d.done
		postEmptyEvent() // Quit from any goroutine ends the wait
	}()
	eventTick := time.NewTicker(framePeriod)
	eventTick.Stop()
	ticking := false
	var lastFrame time.Time
	for {
		// Once Quit has closed done, only the select below ends the loop.
		if !ticking && queued.Load() == 0 && !d.isDone() {
			if !d.needsFrame() {
				sleeping.Store(true)
				if queued.Load() == 0 && !d.isDone() {
					d.waitEvents(idleWait)
				} else {
					d.pollEvents()
				}
				sleeping.Store(false)
			}
			// The events just polled, or the functions run, changed something: draw it
			// now, every function queued so far having run (changes posted together
			// share one repaint), unless a frame was drawn less than a tick ago; keep
			// the 60 Hz pace while changes go on (an animation, a drag).
			if d.needsFrame() {
				if wait := framePeriod - time.Since(lastFrame); wait > 0 {
					eventTick.Reset(wait)
					ticking = true
					continue
				}
				d.frame()
				lastFrame = time.Now()
				if d.needsFrame() {
					eventTick.Reset(framePeriod)
					ticking = true
				}
			} else {
				d.keepCachesAlive()
			}
			continue
		}

		var tick <-chan time.Time
		if ticking {
			tick = eventTick.C
		}
		select {
		case <-d.done:
			eventTick.Stop()
			shutdownGLFW(d)
			l := fyne.CurrentApp().Lifecycle().(*app.Lifecycle)
			if f := l.OnStopped(); f != nil {
				l.QueueEvent(f)
			}

			// as we are shutting down make sure we drain the pending funcQueue and close it out.
			for len(funcQueue.Out()) > 0 {
				f := <-funcQueue.Out()
				queued.Add(-1)
				if f.done != nil {
					f.done <- struct{}{}
				}
			}
			drained.Store(true)
			funcQueue.Close()
			return
		case f := <-funcQueue.Out():
			queued.Add(-1)
			f.f()
			if f.done != nil {
				f.done <- struct{}{}
			}
		case <-tick:
			d.pollEvents()
			if !d.needsFrame() {
				eventTick.Stop()
				ticking = false
				d.keepCachesAlive()
				continue
			}
			d.frame()
			lastFrame = time.Now()
			if !d.needsFrame() {
				eventTick.Stop() // nothing more to draw: back to sleep without a tick to find that
				ticking = false
			} else {
				eventTick.Reset(framePeriod)
			}
		}
	}
}

// frame is one tick of the upstream loop after its event poll: close and fit
// windows, advance animations, repaint what is dirty.
func (d *gLDriver) frame() {
	for i := 0; i < len(d.windows); i++ {
		w := d.windows[i].(*window)
		if w.viewport == nil {
			continue
		}

		if w.viewport.ShouldClose() {
			d.destroyWindow(w, i)
			i-- // Trailing windows are moved forward one step.
			continue
		}

		expand := w.shouldExpand
		fullScreen := w.fullScreen

		if expand && !fullScreen {
			w.fitContent()
			shouldExpand := w.shouldExpand
			w.shouldExpand = false
			view := w.viewport

			if shouldExpand && runtime.GOOS != "js" {
				view.SetSize(w.shouldWidth, w.shouldHeight)
			}
		}
	}

	d.animation.TickAnimations()
	d.drawSingleFrame()
}

// needsFrame reports whether a frame would change anything: an animation runs, or a
// window is to be closed, fitted or repainted. Main thread only (as the dirty flags).
func (d *gLDriver) needsFrame() bool {
	if d.animation.Running() {
		return true
	}
	for _, win := range d.windows {
		w := win.(*window)
		if w.viewport == nil {
			continue
		}
		if w.viewport.ShouldClose() || (w.shouldExpand && !w.fullScreen) {
			return true
		}
		if w.closing || !w.visible || isMinimized(w) {
			continue
		}
		if w.canvas.CheckDirtyAndClear() {
			w.canvas.SetDirty() // only looking
			return true
		}
	}
	return false
}

// keepCachesAlive does for an idle loop what drawSingleFrame does for windows that
// are not redrawn: mark their render caches alive, and let expired entries go.
func (d *gLDriver) keepCachesAlive() {
	d.drawSingleFrame() // nothing is dirty: it only walks the trees when due
}

func (d *gLDriver) isDone() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

func (d *gLDriver) destroyWindow(w *window, index int) {
	w.visible = false
	forgetMinimized(w)
	w.viewport.Destroy()
	w.destroy(d)

	if index < len(d.windows)-1 {
		copy(d.windows[index:], d.windows[index+1:])
	}
	d.windows[len(d.windows)-1] = nil
	d.windows = d.windows[:len(d.windows)-1]

	if len(d.windows) == 0 {
		d.Quit()
	}
}

func (d *gLDriver) repaintWindow(w *window) bool {
	canvas := w.canvas
	freed := false
	if canvas.EnsureMinSize() {
		w.shouldExpand = true
	}
	freed = canvas.FreeDirtyTextures() > 0

	updateGLContext(w)
	view := w.viewport
	visible := w.visible
	// Ringside overlay: a frame that changed in part is drawn and shown in part (damage.go).
	shown, partial := canvas.paint(canvas.Size(), view != nil && visible && canShowPart(w))

	if view != nil && visible {
		if !partial {
			view.SwapBuffers()
		} else if shown.w > 0 && shown.h > 0 {
			showPart(w, shown)
		}
		if logRepaints {
			logRepaint(w, shown, partial)
		}
	}

	// mark that we have walked the window and don't
	// need to walk it again to mark caches alive
	w.lastWalkedTime = time.Now()
	return freed
}

// refreshWindow requests that the specified window be redrawn
func refreshWindow(w *window) {
	w.canvas.damage.repaintAll() // Ringside overlay: exposed, so drawn whole
	w.canvas.SetDirty()
}

func updateGLContext(w *window) {
	canvas := w.canvas
	size := canvas.Size()

	// w.width and w.height are not correct if we are maximised, so figure from canvas
	winWidth := float32(scale.ToScreenCoordinate(canvas, size.Width)) * canvas.texScale
	winHeight := float32(scale.ToScreenCoordinate(canvas, size.Height)) * canvas.texScale

	canvas.Painter().SetFrameBufferScale(canvas.texScale)
	canvas.Painter().SetOutputSize(int(winWidth), int(winHeight))
}
