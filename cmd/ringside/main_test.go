package main

import (
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestDemoWindowUnderXvfb starts the real program (--demo) on a virtual X display, takes
// a screenshot, and checks the window drew something: more than a handful of colours.
// With a window manager (openbox) and xdotool it then minimizes the main window for a
// few seconds, which stops its repaints, and restores it: the window must draw again,
// its calls' timers moving from one second to the next. Both it and a second softphone showing only its
// sign-in window (an idle event loop) must end within seconds of a signal. Set
// RINGSIDE_SCREENSHOT=path to keep the screenshot.
func TestDemoWindowUnderXvfb(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := buildUnderXvfb(ctx, t, dir, ".", "ringside", "xvfb-run", "import")

	shot := filepath.Join(dir, "shot.png")
	restored := [2]string{filepath.Join(dir, "restored1.png"), filepath.Join(dir, "restored2.png")}
	wm := "1"
	for _, tool := range []string{"openbox", "xdotool"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Logf("%s is missing (make deps installs it): the window is not minimized", tool)
			wm = ""
		}
	}
	script := `ends() { # pid signal: the program exits within 10 s of the signal
	kill -$2 $1
	for _ in $(seq 100); do kill -0 $1 2>/dev/null || { wait $1; return; }; sleep 0.1; done
	echo "ringside still running 10 s after SIG$2" >&2; kill -9 $1; return 1
}
wm=
if [ -n "$WM" ]; then openbox >/dev/null 2>&1 & wm=$!; fi
"$BIN" --demo 2>"$DIR/ringside.log" & pid=$!
HOME="$DIR/signin" XDG_CONFIG_HOME="$DIR/signin/config" "$BIN" 2>"$DIR/signin.log" & signin=$!
sleep 9
import -window root "$SHOT"
if [ -n "$wm" ]; then
	win=$(xdotool search --name "^Ringside.*sam$" | head -1)
	xdotool windowminimize --sync "$win" && sleep 3 && xdotool windowactivate --sync "$win" || exit 1
	sleep 0.5
	import -window "$win" "$RESTORED1"
	sleep 1.5
	import -window "$win" "$RESTORED2"
fi
ends $signin TERM && ends $pid INT && { [ -z "$wm" ] || kill $wm; }`
	cmd := exec.CommandContext(ctx, "xvfb-run", "-a", "-s", "-screen 0 1024x700x24", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "BIN="+bin, "DIR="+dir, "SHOT="+shot, "RESTORED1="+restored[0], "RESTORED2="+restored[1], "WM="+wm, "LANG=en_US.UTF-8",
		"HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_DATA_HOME="+filepath.Join(dir, "data"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "ringside.log"))
		t.Fatalf("xvfb-run: %v\n%s\nringside's log:\n%s", err, out, log)
	}
	img := readPNG(t, shot)
	if n := colours(img); n < 50 {
		t.Errorf("the screen has %d colours: the window did not draw", n)
	}
	if wm != "" {
		// The window, 0.5 s and 2 s after it was restored: drawn, and its timers moved.
		first, second := readPNG(t, restored[0]), readPNG(t, restored[1])
		if n := colours(first); n < 50 {
			t.Errorf("the restored window has %d colours: it did not draw", n)
		}
		if n := changed(first, second); n == 0 {
			t.Error("the restored window stays the same for 1.5 s: its call timers do not move, it is not redrawn")
		}
	}
	if keep := os.Getenv("RINGSIDE_SCREENSHOT"); keep != "" {
		b, _ := os.ReadFile(shot)
		if err := os.WriteFile(keep, b, 0o644); err != nil {
			t.Error(err)
		}
	}
}

// buildUnderXvfb skips the test without the tools it needs, or with -short, and builds
// the program pkg as dir/name for a run on a virtual X display.
func buildUnderXvfb(ctx context.Context, t *testing.T, dir, pkg, name string, tools ...string) string {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is missing (make deps installs xvfb and imagemagick)", tool)
		}
	}
	if testing.Short() {
		t.Skip("builds a GL program; skipped with -short")
	}
	bin := filepath.Join(dir, name)
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func readPNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s: %v", filepath.Base(path), err)
	}
	return img
}

// changed counts the pixels that differ between two screenshots of one window.
func changed(a, b image.Image) int {
	n := 0
	r := a.Bounds().Intersect(b.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			r1, g1, b1, _ := a.At(x, y).RGBA()
			r2, g2, b2, _ := b.At(x, y).RGBA()
			if r1 != r2 || g1 != g2 || b1 != b2 {
				n++
			}
		}
	}
	return n
}

func colours(img image.Image) int {
	seen := map[uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[r>>8<<16|g>>8<<8|bl>>8] = true
		}
	}
	return len(seen)
}
