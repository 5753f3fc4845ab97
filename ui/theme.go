package ui

import (
	"image/color"
	"math"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/theme"
)

// readableTheme is the app's theme with secondary text that can be read. The views put
// what matters second (phone or live call, who is monitoring and whether they whisper,
// the extension, who monitored an ended call) in low-importance labels, which Fyne draws
// in its disabled colour: 1.6:1 against the dark background, 1.3:1 against the light
// one, where WCAG asks 4.5:1. Here that colour is a secondary grey, about 5.5:1 in
// either variant. Disabled buttons share it and still look disabled: their flat
// background says so.
type readableTheme struct{ fyne.Theme }

var (
	secondaryDark  = color.NRGBA{R: 0x8e, G: 0x8e, B: 0x93, A: 0xff}
	secondaryLight = color.NRGBA{R: 0x6e, G: 0x6e, B: 0x73, A: 0xff}
)

func (t readableTheme) Color(n fyne.ThemeColorName, v fyne.ThemeVariant) color.Color {
	if n == theme.ColorNameDisabled {
		// By the background, not v: a theme may force its variant whatever v says.
		if luminance(t.Theme.Color(theme.ColorNameBackground, v)) > 0.5 {
			return secondaryLight
		}
		return secondaryDark
	}
	return t.Theme.Color(n, v)
}

// luminance is WCAG's relative luminance of c, 0 (black) to 1 (white).
func luminance(c color.Color) float64 {
	r, g, b, _ := c.RGBA()
	lin := func(v uint32) float64 {
		x := float64(v) / 0xffff
		if x <= 0.04045 {
			return x / 12.92
		}
		return math.Pow((x+0.055)/1.055, 2.4)
	}
	return 0.2126*lin(r) + 0.7152*lin(g) + 0.0722*lin(b)
}

// useReadableTheme wraps the app's theme once.
func useReadableTheme(a fyne.App) {
	if _, ok := a.Settings().Theme().(readableTheme); !ok {
		a.Settings().SetTheme(readableTheme{a.Settings().Theme()})
	}
}
