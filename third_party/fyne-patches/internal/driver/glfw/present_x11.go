//go:build !wayland && linux && !wasm && !test_web_driver

// Ringside overlay (added file): showing part of a frame on X11 (damage.go).

package glfw

/*
#cgo LDFLAGS: -lGL -lX11
#include <string.h>
#include <X11/Xlib.h>
#include <GL/glx.h>

typedef void (*copySubBufferFn)(Display *, GLXDrawable, int, int, int, int);

// copySubBuffer is GLX_MESA_copy_sub_buffer's glXCopySubBufferMESA, when the display
// has it: Mesa's, so software GL (llvmpipe) in particular.
static copySubBufferFn copySubBuffer(void *dpy) {
	if (dpy == NULL) return NULL;
	const char *ext = glXQueryExtensionsString((Display *)dpy, DefaultScreen((Display *)dpy));
	if (ext == NULL || strstr(ext, "GLX_MESA_copy_sub_buffer") == NULL) return NULL;
	return (copySubBufferFn)glXGetProcAddressARB((const GLubyte *)"glXCopySubBufferMESA");
}

static void showPart(copySubBufferFn f, void *dpy, unsigned long drawable, int x, int y, int w, int h) {
	f((Display *)dpy, (GLXDrawable)drawable, x, y, w, h);
}
*/
import "C"

import (
	"unsafe"

	"github.com/go-gl/glfw/v3.3/glfw"
)

// glxShow is glXCopySubBufferMESA (nil without it), looked up once. Main thread.
var glxShow struct {
	looked bool
	fn     C.copySubBufferFn
}

// canShowPart reports whether w can show part of a frame: copy a rectangle of its back
// buffer to the screen and leave the rest of the screen as it was. Main thread.
func canShowPart(w *window) bool {
	if !glxShow.looked {
		glxShow.looked = true
		glxShow.fn = C.copySubBuffer(unsafe.Pointer(glfw.GetX11Display()))
	}
	return glxShow.fn != nil && w.viewport != nil && hasGLXContext(w.viewport)
}

// hasGLXContext reports whether v draws through GLX (go-gl's glfw panics on the GLFW
// error an EGL context gives).
func hasGLXContext(v *glfw.Window) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return v.GetGLXContext() != nil
}

// showPart puts the frame's rectangle p on the screen (the whole frame is SwapBuffers).
// Main thread, with w's context current.
func showPart(w *window, p part) {
	drawable := uint64(w.viewport.GetGLXWindow())
	if drawable == 0 {
		drawable = uint64(w.viewport.GetX11Window())
	}
	C.showPart(glxShow.fn, unsafe.Pointer(glfw.GetX11Display()), C.ulong(drawable), C.int(p.x), C.int(p.y), C.int(p.w), C.int(p.h))
}
