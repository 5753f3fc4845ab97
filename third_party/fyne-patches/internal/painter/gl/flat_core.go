//go:build (!gles && !arm && !arm64 && !android && !ios && !mobile && !test_web_driver && !wasm) || (darwin && !mobile && !ios && !wasm && !test_web_driver)

package gl

// Ringside overlay (a file of its own, not in upstream): the program drawRoundedSplit
// fills a rounded rectangle's inside with. That inside is one colour, yet the rectangle
// program tests every pixel against the rectangle's edges and its stroke: a software GL
// runs those tests on each pixel of every card, every frame. This one only writes the
// colour.

const (
	flatVertexSrc = `#version 110

attribute vec2 vert;
attribute vec2 normal;

void main() {
    gl_Position = vec4(vert+normal, 0, 1);
}
`
	flatFragmentSrc = `#version 110

uniform vec4 color;

void main() {
    gl_FragColor = color;
}
`
)

// flatPrograms holds each painter's program, made at its first use (main thread only).
var flatPrograms = map[*painter]ProgramState{}

// flatProgram is the painter's flat-colour program, its uniform "color" and attributes
// "vert" and "normal" laid out as the rectangle program's; false when it could not be
// built (the caller draws with the rectangle program).
func (p *painter) flatProgram() (ProgramState, bool) {
	if s, ok := flatPrograms[p]; ok {
		return s, s.ref != Program(0)
	}
	s := ProgramState{uniforms: map[string]*UniformState{}, attributes: map[string]Attribute{}}
	vs, err := p.compileShader(flatVertexSrc, vertexShader)
	if err == nil {
		var fs Shader
		fs, err = p.compileShader(flatFragmentSrc, fragmentShader)
		if err == nil {
			s.ref = p.ctx.CreateProgram()
			p.ctx.AttachShader(s.ref, vs)
			p.ctx.AttachShader(s.ref, fs)
			p.ctx.LinkProgram(s.ref)
			if p.ctx.GetProgrami(s.ref, linkStatus) == glFalse {
				s.ref = Program(0)
			}
		}
	}
	if s.ref == Program(0) {
		flatPrograms[p] = s
		return s, false
	}
	s.buff = p.createBuffer(16)
	p.getUniformLocations(s, "color")
	p.enableAttribArrays(s, "vert", "normal")
	flatPrograms[p] = s
	return s, true
}
