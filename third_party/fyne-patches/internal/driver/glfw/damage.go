// Ringside overlay (added file): a frame repaints only where it changed.

package glfw

import (
	"fmt"
	"os"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/internal/driver/common"
)

// Upstream Fyne draws every object of a window for every frame. With software GL
// (llvmpipe: virtual desktops, machines without a GPU driver) that is milliseconds of CPU
// for a dashboard whose only change is a call timer's next second. Where the window can
// show part of a frame (canShowPart, showPart), a frame compares what it shows with the frame
// before: the same objects in the same places, and only some refreshed, is drawn inside
// the rectangle around the refreshed and moved objects, and only that rectangle is shown.
// Anything else (objects added, removed, hidden or shown, a new size or scale, a window
// exposed or restored, too many changes) is drawn whole, as upstream.

// drawnObject is an object a frame showed, where, and how deep in its tree.
type drawnObject struct {
	obj   fyne.CanvasObject
	pos   fyne.Position
	size  fyne.Size
	depth int
}

// area is a rectangle in canvas coordinates, empty when x1 <= x0.
type area struct{ x0, y0, x1, y1 float32 }

func (a area) empty() bool { return a.x1 <= a.x0 || a.y1 <= a.y0 }

func (a *area) add(b area) {
	if b.empty() {
		return
	}
	if a.empty() {
		*a = b
		return
	}
	a.x0, a.y0, a.x1, a.y1 = min32(a.x0, b.x0), min32(a.y0, b.y0), max32(a.x1, b.x1), max32(a.y1, b.y1)
}

// (Fyne's module is go 1.19: no min, max or clear built in.)
func min32(a, b float32) float32 {
	if a < b {
		return a
	}
	return b
}

func max32(a, b float32) float32 {
	if a > b {
		return a
	}
	return b
}

func forgetAll(objs []fyne.CanvasObject) {
	for i := range objs {
		objs[i] = nil
	}
}

func (a area) overlaps(b area) bool {
	return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1
}

// damageMargin widens every object's rectangle: antialiased edges and strokes reach a
// little past an object's bounds.
const damageMargin = 2

// bounds is where an object may put pixels: its rectangle, and for a text its whole
// rendered width, which may be more than its size.
func bounds(obj fyne.CanvasObject, pos fyne.Position, size fyne.Size) area {
	extra := float32(damageMargin)
	if t, ok := obj.(*canvas.Text); ok {
		if over := t.MinSize().Width - size.Width; over > 0 {
			extra += over
		}
	}
	return area{pos.X - extra, pos.Y - damageMargin, pos.X + size.Width + extra, pos.Y + size.Height + damageMargin}
}

// damage is a canvas's record of its last frame. Main thread.
type damage struct {
	last, cur []drawnObject
	refreshed []fyne.CanvasObject
	changed   map[fyne.CanvasObject]struct{}
	size      fyne.Size
	scale     float32
	whole     bool // the next frame is drawn whole
}

// fullRepaint turns partial frames off (RINGSIDE_FULL_REPAINT=1): to compare, or should
// a driver show a partial frame wrong.
var fullRepaint = os.Getenv("RINGSIDE_FULL_REPAINT") == "1"

// logRepaints has every frame say on stderr how it was drawn (RINGSIDE_REPAINT_LOG=1):
// "repaint whole WxH" or "repaint part X,Y WxH" in framebuffer pixels from the bottom left.
var logRepaints = os.Getenv("RINGSIDE_REPAINT_LOG") == "1"

func logRepaint(w *window, shown part, partial bool) {
	if !partial {
		width, height := w.viewport.GetFramebufferSize()
		fmt.Fprintf(os.Stderr, "repaint whole %dx%d\n", width, height)
	} else if shown.w > 0 && shown.h > 0 {
		fmt.Fprintf(os.Stderr, "repaint part %d,%d %dx%d\n", shown.x, shown.y, shown.w, shown.h)
	}
}

// repaintAll has the next frame drawn whole: the window was exposed or restored, and
// what it showed may be gone.
func (d *damage) repaintAll() { d.whole = true }

// frame lists what c shows now and returns where it changed since the last frame:
// partial false means it must be drawn whole.
func (d *damage) frame(c *glCanvas, size fyne.Size, scale float32) (changed area, partial bool) {
	refreshed, all := c.TakeRefreshed(d.refreshed[:0])
	d.refreshed = refreshed
	defer forgetAll(d.refreshed)

	d.cur = d.cur[:0]
	depth := 0
	c.WalkTrees(func(node *common.RenderCacheNode, pos fyne.Position) {
		obj := node.Obj()
		d.cur = append(d.cur, drawnObject{obj: obj, pos: pos, size: obj.Size(), depth: depth})
		depth++
	}, func(*common.RenderCacheNode, fyne.Position) {
		depth--
	})
	defer func() { d.last, d.cur = d.cur, d.last }()

	whole := d.whole || all || size != d.size || scale != d.scale || len(d.cur) != len(d.last)
	d.whole, d.size, d.scale = false, size, scale
	if whole {
		return area{}, false
	}
	if d.changed == nil {
		d.changed = map[fyne.CanvasObject]struct{}{}
	}
	for o := range d.changed {
		delete(d.changed, o)
	}
	for _, o := range d.refreshed {
		d.changed[o] = struct{}{}
	}
	for i := range d.cur {
		now, was := &d.cur[i], &d.last[i]
		if now.obj != was.obj || now.depth != was.depth {
			return area{}, false
		}
		if now.pos != was.pos || now.size != was.size {
			changed.add(bounds(was.obj, was.pos, was.size))
			changed.add(bounds(now.obj, now.pos, now.size))
		}
		if _, ok := d.changed[now.obj]; ok {
			// A refreshed widget or container redraws all that it holds.
			changed.add(bounds(now.obj, now.pos, now.size))
			for j := i + 1; j < len(d.cur) && d.cur[j].depth > now.depth; j++ {
				changed.add(bounds(d.cur[j].obj, d.cur[j].pos, d.cur[j].size))
			}
		}
	}
	changed.x0, changed.y0 = max32(changed.x0, 0), max32(changed.y0, 0)
	changed.x1, changed.y1 = min32(changed.x1, size.Width), min32(changed.y1, size.Height)
	// Past half the window a partial frame saves little.
	if (changed.x1-changed.x0)*(changed.y1-changed.y0) > size.Width*size.Height/2 {
		return area{}, false
	}
	return changed, true
}

// forget drops what the canvas noted as refreshed when frames are drawn whole, so the
// next partial frame starts from a frame it listed itself.
func (d *damage) forget(c *glCanvas) {
	d.refreshed, _ = c.TakeRefreshed(d.refreshed[:0])
	forgetAll(d.refreshed)
	d.whole = true
}
