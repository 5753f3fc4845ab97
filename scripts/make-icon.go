//go:build ignore

// make-icon draws assets/icon.png, the app icon: a white headset inside a green ring on a
// dark slate tile. Run from the repository root: go run scripts/make-icon.go
package main

import (
	"image"
	"image/color"
	"image/png"
	"log"
	"math"
	"os"
)

const size = 256

var (
	tileTop    = color.NRGBA{0x33, 0x41, 0x55, 0xff} // slate
	tileBottom = color.NRGBA{0x0f, 0x17, 0x2a, 0xff}
	ring       = color.NRGBA{0x22, 0xc5, 0x5e, 0xff} // the dashboard's "talking" green
	headset    = color.NRGBA{0xf8, 0xfa, 0xfc, 0xff}
)

// Each shape says whether a point is inside it; coverage comes from 4×4 supersampling.
type shape func(x, y float64) bool

func roundRect(x0, y0, x1, y1, r float64) shape {
	return func(x, y float64) bool {
		if x < x0 || x > x1 || y < y0 || y > y1 {
			return false
		}
		cx := math.Max(x0+r, math.Min(x, x1-r))
		cy := math.Max(y0+r, math.Min(y, y1-r))
		return math.Hypot(x-cx, y-cy) <= r
	}
}

func annulus(cx, cy, r0, r1 float64, keep func(x, y float64) bool) shape {
	return func(x, y float64) bool {
		d := math.Hypot(x-cx, y-cy)
		return d >= r0 && d <= r1 && (keep == nil || keep(x, y))
	}
}

func disc(cx, cy, r float64) shape {
	return func(x, y float64) bool { return math.Hypot(x-cx, y-cy) <= r }
}

func union(ss ...shape) shape {
	return func(x, y float64) bool {
		for _, s := range ss {
			if s(x, y) {
				return true
			}
		}
		return false
	}
}

func main() {
	tile := roundRect(8, 8, size-8, size-8, 52)
	ringShape := annulus(128, 128, 86, 98, nil)
	head := union(
		annulus(128, 140, 46, 56, func(x, y float64) bool { return y <= 140 }),             // band
		roundRect(66, 128, 92, 174, 10),                                                    // left ear cup
		roundRect(164, 128, 190, 174, 10),                                                  // right ear cup
		annulus(142, 160, 34, 41, func(x, y float64) bool { return y >= 166 && x >= 132 }), // mic boom
		disc(132, 198, 9), // mic
	)
	layers := []struct {
		s shape
		c func(y float64) color.NRGBA
	}{
		{tile, func(y float64) color.NRGBA { return mix(tileTop, tileBottom, y/size) }},
		{ringShape, func(float64) color.NRGBA { return ring }},
		{head, func(float64) color.NRGBA { return headset }},
	}

	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	const ss = 4
	for py := 0; py < size; py++ {
		for px := 0; px < size; px++ {
			var r, g, b, a float64
			for sy := 0; sy < ss; sy++ {
				for sx := 0; sx < ss; sx++ {
					x := float64(px) + (float64(sx)+0.5)/ss
					y := float64(py) + (float64(sy)+0.5)/ss
					for i := len(layers) - 1; i >= 0; i-- {
						if layers[i].s(x, y) {
							c := layers[i].c(y)
							r, g, b, a = r+float64(c.R), g+float64(c.G), b+float64(c.B), a+1
							break
						}
					}
				}
			}
			if a == 0 {
				continue
			}
			// Straight (non-premultiplied) colour: average over covered samples only.
			img.SetNRGBA(px, py, color.NRGBA{
				R: uint8(r/a + 0.5), G: uint8(g/a + 0.5), B: uint8(b/a + 0.5),
				A: uint8(a/(ss*ss)*255 + 0.5),
			})
		}
	}
	f, err := os.Create("assets/icon.png")
	if err != nil {
		log.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
}

func mix(a, b color.NRGBA, t float64) color.NRGBA {
	l := func(x, y uint8) uint8 { return uint8(float64(x)*(1-t) + float64(y)*t + 0.5) }
	return color.NRGBA{l(a.R, b.R), l(a.G, b.G), l(a.B, b.B), 0xff}
}
