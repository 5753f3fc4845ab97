package ui

import (
	"bytes"
	"image"
	"os/exec"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"
)

// TestNamesOutsideTheBundledFontsAreDrawn: a customer or agent named in a script the
// bundled Noto Sans lacks (Arabic, Chinese) is drawn with the system's fonts, not as
// boxes, in every style the views use. The softphone's Fyne patch looks those fonts up
// at the first such letter instead of at start-up; this is what it must keep.
func TestNamesOutsideTheBundledFontsAreDrawn(t *testing.T) {
	test.NewTempApp(t)
	for _, name := range []struct{ text, lang string }{{"نور حداد", "ar"}, {"王芳", "zh"}} {
		out, _ := exec.Command("fc-list", ":lang="+name.lang).Output()
		if len(bytes.TrimSpace(out)) == 0 {
			t.Logf("no system font for %q: skipped", name.lang)
			continue
		}
		// U+E000… are private-use runes no font draws: boxes, as many as the name has letters.
		boxes := strings.Repeat("\ue000", len([]rune(strings.ReplaceAll(name.text, " ", ""))))
		for _, style := range []fyne.TextStyle{{}, {Bold: true}, {Italic: true}, {Monospace: true}} {
			drawn, missing := render(name.text, style), render(boxes, style)
			if drawn.Bounds() == missing.Bounds() && bytes.Equal(drawn.Pix, missing.Pix) {
				t.Errorf("%q in %+v is drawn as boxes", name.text, style)
			}
			if ink(drawn) == 0 {
				t.Errorf("%q in %+v is drawn as nothing", name.text, style)
			}
		}
	}
}

func render(text string, style fyne.TextStyle) *image.NRGBA {
	l := widget.NewLabelWithStyle(text, fyne.TextAlignLeading, style)
	w := test.NewWindow(l)
	defer w.Close()
	w.Resize(fyne.NewSize(240, 48))
	img := w.Canvas().Capture()
	out := image.NewNRGBA(img.Bounds())
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			out.Set(x, y, img.At(x, y))
		}
	}
	return out
}

// ink counts the pixels that differ from the top-left one (the background).
func ink(img *image.NRGBA) int {
	bg := img.NRGBAAt(0, 0)
	n := 0
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			if img.NRGBAAt(x, y) != bg {
				n++
			}
		}
	}
	return n
}
