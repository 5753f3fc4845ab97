//go:build ((!gles && !arm && !arm64) || darwin) && !wasm && !test_web_driver

package glfw

import "github.com/go-gl/glfw/v3.3/glfw"

func initWindowHints() {
	glfw.WindowHint(glfw.ContextVersionMajor, 2)
	glfw.WindowHint(glfw.ContextVersionMinor, 1)

	glfw.WindowHint(glfw.CocoaGraphicsSwitching, glfw.True)

	// Ringside overlay: no depth or stencil buffer. Fyne tests neither (the painter
	// disables the depth test and orders its draws itself), yet cleared GLFW's default
	// 24-bit depth and 8-bit stencil every frame: with software GL a masked pass over
	// every pixel, a tenth of the rasterizer's time on the softphone's dashboard.
	glfw.WindowHint(glfw.DepthBits, 0)
	glfw.WindowHint(glfw.StencilBits, 0)
}
