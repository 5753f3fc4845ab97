// Command repaint is TestPartialRepaint's window: it makes one change after another (a
// label's text, a colour, a progress bar, a widget hidden and shown, a scroll, a pop-up)
// and after each saves what the screen shows (ImageMagick's import, as X has it) as
// dir/stepNN.png. Run once as is and once with RINGSIDE_FULL_REPAINT=1, the two
// sets must be the same picture for picture.
package main

import (
	"fmt"
	"image/color"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/app"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"
)

func main() {
	dir := os.Args[1]
	a := app.NewWithID("ringside.repaint-test")
	w := a.NewWindow("repaint")

	timer := widget.NewLabel("0:01")
	swatch := canvas.NewRectangle(color.NRGBA{R: 200, A: 255})
	swatch.SetMinSize(fyne.NewSize(40, 30))
	swatch.CornerRadius = 6
	level := widget.NewProgressBar()
	button := widget.NewButton("Whisper", nil)
	rows := container.NewVBox()
	for i := range 30 {
		rows.Add(widget.NewLabel(fmt.Sprintf("call %02d", i)))
	}
	scroll := container.NewVScroll(rows)
	scroll.SetMinSize(fyne.NewSize(160, 110))
	w.SetContent(container.NewVBox(container.NewHBox(timer, layoutSpacer(), swatch), level, button, scroll))
	w.Resize(fyne.NewSize(420, 330))
	w.SetFixedSize(true)

	var pop *widget.PopUp
	steps := []func(){
		func() {},
		func() { timer.SetText("0:02") },
		func() { timer.SetText("1:02:03 and longer") }, // the row's layout moves
		func() { swatch.FillColor = color.NRGBA{G: 180, A: 255}; swatch.Refresh() },
		func() { level.SetValue(0.4) },
		func() { level.SetValue(0.45) },
		func() { button.Hide() },
		func() { button.Show() },
		func() { scroll.ScrollToOffset(fyne.NewPos(0, 60)) },
		func() {
			pop = widget.NewPopUp(widget.NewLabel("This call is being monitored"), w.Canvas())
			pop.ShowAtPosition(fyne.NewPos(120, 40))
		},
		func() { pop.Hide() },
		func() { timer.SetText("0:03") },
		func() { level.SetValue(0.1) },
	}
	go func() {
		time.Sleep(1500 * time.Millisecond) // the window is up and drawn
		for i, step := range steps {
			fyne.DoAndWait(step)
			time.Sleep(250 * time.Millisecond) // drawn and shown
			shot := filepath.Join(dir, fmt.Sprintf("step%02d.png", i))
			if out, err := exec.Command("import", "-window", "root", shot).CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "import: %v\n%s", err, out)
				os.Exit(1)
			}
		}
		fyne.Do(a.Quit)
	}()
	w.ShowAndRun()
}

func layoutSpacer() fyne.CanvasObject {
	s := canvas.NewRectangle(color.Transparent)
	s.SetMinSize(fyne.NewSize(120, 1))
	return s
}
