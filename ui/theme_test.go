package ui

import (
	"image"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// TestSecondaryTextIsReadable: the second line of a dashboard row ("Phone call, inbound ·
// Monitored: sam whispering") and the other low-importance labels can be read, in the
// dark and the light variant: the text stands out from the background by WCAG's 4.5:1.
func TestSecondaryTextIsReadable(t *testing.T) {
	for _, variant := range []struct {
		name  string
		theme fyne.Theme
	}{{"dark", theme.DarkTheme()}, {"light", theme.LightTheme()}} { //nolint:staticcheck // the variants themselves
		t.Run(variant.name, func(t *testing.T) {
			a := test.NewTempApp(t)
			a.Settings().SetTheme(variant.theme)
			u := New(a, Options{})
			t.Cleanup(u.Close)

			l := widget.NewLabel("Phone call, inbound · Monitored: sam whispering")
			l.Importance = widget.LowImportance
			w := test.NewWindow(l)
			defer w.Close()
			w.Resize(fyne.NewSize(420, 40))
			img := w.Canvas().Capture()
			bg := luminance(img.At(img.Bounds().Min.X, img.Bounds().Min.Y))
			if got := strongestContrast(img, bg); got < 4.5 {
				t.Errorf("secondary text contrast %.1f:1 against the background, want at least 4.5:1", got)
			}
		})
	}
}

// strongestContrast is the best WCAG contrast ratio of any pixel against a background of
// luminance bg: the core of the glyphs, where antialiasing does not blend.
func strongestContrast(img image.Image, bg float64) float64 {
	best := 1.0
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			l := luminance(img.At(x, y))
			hi, lo := max(l, bg), min(l, bg)
			best = max(best, (hi+0.05)/(lo+0.05))
		}
	}
	return best
}
