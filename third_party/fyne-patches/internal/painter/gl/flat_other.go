//go:build !((!gles && !arm && !arm64 && !android && !ios && !mobile && !test_web_driver && !wasm) || (darwin && !mobile && !ios && !wasm && !test_web_driver))

package gl

// Ringside overlay: GLES, mobile and web keep the rectangle program for flat fills
// (flat_core.go has why).
func (p *painter) flatProgram() (ProgramState, bool) { return ProgramState{}, false }
