package main

import (
	"context"
	"image"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPartialRepaint checks the patched Fyne's partial frames (third_party/fyne-patches,
// damage.go) under Xvfb with software GL: a window goes through a series of changes
// (testdata/repaint) and saves the screen after each, once drawing only where a frame
// changed and once drawing every frame whole (RINGSIDE_FULL_REPAINT=1). The pictures must
// be the same, to within 2/255 per colour channel, and the first run must really have
// drawn frames in part. (llvmpipe rasterizes by tiles and picks fast paths by what a tile
// holds: two whole frames that draw an unchanged object the same way can still differ by
// 1/255 where other objects changed. A frame left stale differs by far more.)
func TestPartialRepaint(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := buildUnderXvfb(ctx, t, dir, "./testdata/repaint", "repaint", "xvfb-run", "import")
	part, whole := filepath.Join(dir, "part"), filepath.Join(dir, "whole")
	for _, d := range []string{part, whole} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := `RINGSIDE_REPAINT_LOG=1 "$BIN" "$PART" 2>"$DIR/part.log" && RINGSIDE_REPAINT_LOG=1 RINGSIDE_FULL_REPAINT=1 "$BIN" "$WHOLE" 2>"$DIR/whole.log"`
	cmd := exec.CommandContext(ctx, "xvfb-run", "-a", "-s", "-screen 0 640x480x24", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "BIN="+bin, "DIR="+dir, "PART="+part, "WHOLE="+whole,
		"HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_DATA_HOME="+filepath.Join(dir, "data"))
	out, err := cmd.CombinedOutput()
	partLog, _ := os.ReadFile(filepath.Join(dir, "part.log"))
	wholeLog, _ := os.ReadFile(filepath.Join(dir, "whole.log"))
	if err != nil {
		t.Fatalf("xvfb-run: %v\n%s\npartial run:\n%s\nwhole run:\n%s", err, out, partLog, wholeLog)
	}
	if !strings.Contains(string(wholeLog), "repaint whole") {
		t.Skip("stock Fyne (no repaint log): the patches are built in with the overlay, as make test does")
	}
	if strings.Contains(string(wholeLog), "repaint part") {
		t.Errorf("RINGSIDE_FULL_REPAINT=1 drew frames in part:\n%s", wholeLog)
	}
	parts := strings.Count(string(partLog), "repaint part")
	t.Logf("partial run: %d frames in part, %d whole", parts, strings.Count(string(partLog), "repaint whole"))
	// The timer's texts (three), the swatch and a level at least (6 seen); hiding, showing,
	// the scroll and the pop-up are drawn whole.
	if parts < 4 {
		t.Errorf("%d frames drawn in part, want the small changes (4 or more) to be:\n%s", parts, partLog)
	}
	steps, _ := filepath.Glob(filepath.Join(whole, "step*.png"))
	if len(steps) != 13 {
		t.Fatalf("%d pictures from the whole run, want 13", len(steps))
	}
	for i, ref := range steps {
		name := filepath.Base(ref)
		got, want := readPNG(t, filepath.Join(part, name)), readPNG(t, ref)
		if got.Bounds() != want.Bounds() {
			t.Errorf("%s: %v drawn in part, %v whole", name, got.Bounds(), want.Bounds())
			continue
		}
		if n := changedBeyond(got, want, 2); n > 0 {
			t.Errorf("step %d (%s): %d pixels differ from the frame drawn whole", i, name, n)
		}
		if i > 0 {
			if n := changed(readPNG(t, steps[i-1]), want); n == 0 {
				t.Errorf("step %d changed nothing on screen: the test would not see a stale frame", i)
			}
		}
	}
}

// changedBeyond counts the pixels where a colour channel differs by more than tol (of 255).
func changedBeyond(a, b image.Image, tol uint32) int {
	n := 0
	r := a.Bounds().Intersect(b.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			r1, g1, b1, _ := a.At(x, y).RGBA()
			r2, g2, b2, _ := b.At(x, y).RGBA()
			if absDiff(r1, r2)>>8 > tol || absDiff(g1, g2)>>8 > tol || absDiff(b1, b2)>>8 > tol {
				n++
			}
		}
	}
	return n
}

func absDiff(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}
