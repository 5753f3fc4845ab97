package ui

import (
	"context"
	"image/color"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"ringside/app"
)

// MonitorLine is the monitoring session the window drives; *app.MonitorSession is one.
type MonitorLine interface {
	Call() app.Call
	Mode() string
	SetWhisper(ctx context.Context, on bool) error
	Since() time.Time
	Levels() (customer, agent float64)
	Leave(ctx context.Context) error
	Done() <-chan struct{}
	EndReason() string
}

var _ MonitorLine = (*app.MonitorSession)(nil)

// MonitorView is the call window in monitoring mode: who talks to whom, the timer, the
// two voices' levels, the Whisper toggle and Leave Call.
type MonitorView struct {
	line MonitorLine
	now  func() time.Time
	// run does slow work off the UI goroutine and calls back on it.
	run func(work func() error, then func(error))

	agent    *widget.Label
	customer *widget.Label
	timer    *widget.Label
	state    *badge
	custBar  *levelMeter
	agentBar *levelMeter
	Whisper  *whisperToggle
	Leave    *widget.Button
	status   *widget.Label
	ended    bool
	// OnLeft is called when the user has left (or closes the window after the end).
	OnLeft  func()
	Content fyne.CanvasObject
}

// NewMonitorView builds the window's content for line. run performs work in the
// background and then runs then on the UI goroutine.
func NewMonitorView(line MonitorLine, run func(work func() error, then func(error)), now func() time.Time) *MonitorView {
	if now == nil {
		now = time.Now
	}
	v := &MonitorView{line: line, run: run, now: now}
	c := line.Call()

	head := widget.NewLabelWithStyle("MONITORING", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	head.Importance = widget.WarningImportance
	v.state = stateBadge(c)
	v.timer = widget.NewLabelWithStyle("0:00", fyne.TextAlignTrailing, fyne.TextStyle{Monospace: true})
	v.timer.SizeName = theme.SizeNameHeadingText

	v.agent = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	v.agent.SizeName = theme.SizeNameSubHeadingText
	v.customer = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	v.customer.SizeName = theme.SizeNameSubHeadingText
	v.custBar = newLevelMeter(colorCustomer)
	v.agentBar = newLevelMeter(colorAgent)

	talk := widget.NewLabel("is talking with")
	talk.Importance = widget.LowImportance
	who := container.NewVBox(
		container.NewHBox(head, layout.NewSpacer()),
		container.NewBorder(nil, nil, nil, container.NewCenter(v.timer),
			container.NewVBox(
				container.NewHBox(v.agent, talk),
				container.NewHBox(v.customer, container.NewCenter(v.state)))),
	)
	// A row per voice, as tall as its name, the bar centred in it: a form's rows are
	// only as tall as the bar and crowd the names against the separators.
	meterRow := func(name string, bar *levelMeter) []fyne.CanvasObject {
		return []fyne.CanvasObject{
			widget.NewLabelWithStyle(name, fyne.TextAlignTrailing, fyne.TextStyle{Bold: true}),
			container.NewVBox(layout.NewSpacer(), bar, layout.NewSpacer()),
		}
	}
	meters := container.New(layout.NewFormLayout(), append(meterRow("Customer", v.custBar), meterRow("Agent", v.agentBar)...)...)

	v.Whisper = newWhisperToggle(v.toggleWhisper)
	v.Leave = widget.NewButtonWithIcon("Leave Call", theme.NewThemedResource(hangupIcon), v.leave)
	v.Leave.Importance = widget.DangerImportance
	v.status = widget.NewLabel("")
	v.status.Wrapping = fyne.TextWrapWord
	v.status.Importance = widget.WarningImportance
	v.status.Hide()

	v.Content = container.NewPadded(container.NewVBox(
		who,
		widget.NewSeparator(),
		meters,
		widget.NewSeparator(),
		v.Whisper,
		v.status,
		layout.NewSpacer(),
		container.NewGridWithColumns(1, v.Leave),
	))
	v.Refresh()
	return v
}

// Title is the window title.
func (v *MonitorView) Title() string {
	c := v.line.Call()
	return "Monitoring " + agentName(c.Agent) + " → " + customerName(c.Customer)
}

// Refresh redraws from the session: mode, call state, timer, levels; and notices the end.
func (v *MonitorView) Refresh() {
	c := v.line.Call()
	setText(v.agent, agentName(c.Agent))
	setText(v.customer, customerName(c.Customer))
	setStateBadge(v.state, c)
	if !v.ended && !v.Whisper.pending {
		v.Whisper.set(v.line.Mode() == "whisper")
	}
	v.Meters()
}

// Tick moves the timer on (once a second) and notices the end.
func (v *MonitorView) Tick() {
	if !v.ended {
		since := v.line.Since()
		if since.IsZero() {
			since = v.line.Call().StartedAt
		}
		setText(v.timer, duration(v.now().Sub(since)))
	}
	select {
	case <-v.line.Done():
		v.end()
	default:
	}
}

// Meters shows the voices' levels and moves the timer on (a few times a second, in one
// repaint) and reports whether the session is over, when they stay at zero.
func (v *MonitorView) Meters() (ended bool) {
	if v.ended {
		return true
	}
	cu, ag := v.line.Levels()
	v.custBar.SetLevel(cu)
	v.agentBar.SetLevel(ag)
	v.Tick()
	return v.ended
}

func (v *MonitorView) end() {
	if v.ended {
		return
	}
	v.ended = true
	v.custBar.SetLevel(0)
	v.agentBar.SetLevel(0)
	v.Whisper.Disable()
	reason := v.line.EndReason()
	if reason == "" {
		reason = "the call has ended"
	}
	v.status.SetText("Monitoring ended: " + reason + ".")
	v.status.Show()
	v.Leave.SetText("Close")
}

// Ended reports whether the session is over.
func (v *MonitorView) Ended() bool { return v.ended }

func (v *MonitorView) toggleWhisper() {
	if v.ended || v.Whisper.pending {
		return
	}
	on := !v.Whisper.on
	v.Whisper.setPending(on)
	v.run(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return v.line.SetWhisper(ctx, on)
	}, func(err error) {
		v.Whisper.settle(v.line.Mode() == "whisper")
		if err != nil {
			v.status.SetText("Whisper could not be switched: " + err.Error())
			v.status.Show()
		} else if !v.ended {
			v.status.Hide()
		}
	})
}

func (v *MonitorView) leave() {
	if v.ended {
		if v.OnLeft != nil {
			v.OnLeft()
		}
		return
	}
	v.Leave.Disable()
	v.Leave.SetText("Leaving…")
	v.run(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return v.line.Leave(ctx)
	}, func(err error) {
		if err != nil {
			v.Leave.Enable()
			v.Leave.SetText("Leave Call")
			v.status.SetText("Could not leave: " + err.Error())
			v.status.Show()
			return
		}
		v.ended = true
		if v.OnLeft != nil {
			v.OnLeft()
		}
	})
}

// whisperToggle is a wide switch whose state can't be mistaken: rose with
// "Whisper ON — agent hears you", or slate with "Whisper OFF — listening only".
type whisperToggle struct {
	widget.BaseWidget
	on, pending, disabled bool
	onTap                 func()

	bg    *canvas.Rectangle
	icon  *canvas.Image
	title *canvas.Text
	hint  *canvas.Text
}

func newWhisperToggle(onTap func()) *whisperToggle {
	t := &whisperToggle{onTap: onTap}
	t.bg = canvas.NewRectangle(colorListen)
	t.bg.CornerRadius = 10
	t.bg.StrokeWidth = 2
	t.icon = canvas.NewImageFromResource(theme.NewColoredResource(micOffIcon, theme.ColorNameForegroundOnPrimary))
	t.icon.FillMode = canvas.ImageFillContain
	t.icon.SetMinSize(fyne.NewSize(36, 36))
	t.title = canvas.NewText("", white)
	t.title.TextStyle = fyne.TextStyle{Bold: true}
	t.title.TextSize = theme.TextSize() * 1.6
	t.hint = canvas.NewText("", white)
	t.hint.TextSize = theme.TextSize()
	t.ExtendBaseWidget(t)
	t.draw()
	return t
}

// On reports whether whisper is shown as on.
func (t *whisperToggle) On() bool { return t.on }

// Text is the toggle's headline (tests).
func (t *whisperToggle) Text() string { return t.title.Text }

func (t *whisperToggle) set(on bool) {
	if t.on == on && !t.pending {
		return
	}
	t.on = on
	t.draw()
}

// settle ends a pending switch, showing what the session now says.
func (t *whisperToggle) settle(on bool) {
	t.pending = false
	t.on = on
	t.draw()
}

func (t *whisperToggle) setPending(target bool) {
	t.pending = true
	t.on = target
	t.draw()
}

func (t *whisperToggle) Disable() {
	t.disabled = true
	t.draw()
}

func (t *whisperToggle) draw() {
	switch {
	case t.disabled:
		t.bg.FillColor, t.bg.StrokeColor = colorEnded, colorEnded
		t.title.Text, t.hint.Text = "Whisper unavailable", "The monitoring session is over."
		t.icon.Resource = theme.NewColoredResource(micOffIcon, theme.ColorNameForegroundOnPrimary)
	case t.pending:
		t.bg.FillColor, t.bg.StrokeColor = color.NRGBA{R: 0x80, G: 0x80, B: 0x80, A: 0xff}, white
		if t.on {
			t.title.Text = "Turning whisper on…"
		} else {
			t.title.Text = "Turning whisper off…"
		}
		t.hint.Text = "Waiting for the server."
	case t.on:
		t.bg.FillColor, t.bg.StrokeColor = colorWhisper, white
		t.title.Text = "Whisper ON — agent hears you"
		t.hint.Text = "The customer can't hear you. Tap to go back to listening only."
		t.icon.Resource = theme.NewColoredResource(micIcon, theme.ColorNameForegroundOnPrimary)
	default:
		t.bg.FillColor, t.bg.StrokeColor = colorListen, colorListen
		t.title.Text = "Whisper OFF — listening only"
		t.hint.Text = "Nobody hears you. Tap to whisper to the agent (the customer won't hear)."
		t.icon.Resource = theme.NewColoredResource(micOffIcon, theme.ColorNameForegroundOnPrimary)
	}
	t.Refresh()
}

func (t *whisperToggle) Tapped(*fyne.PointEvent) {
	if t.disabled || t.onTap == nil {
		return
	}
	t.onTap()
}

func (t *whisperToggle) Cursor() desktop.Cursor { return desktop.PointerCursor }

func (t *whisperToggle) CreateRenderer() fyne.WidgetRenderer {
	text := container.NewVBox(t.title, t.hint)
	content := container.NewBorder(nil, nil, container.NewCenter(t.icon), nil, container.NewCenter(container.NewHBox(text)))
	return &toggleRenderer{t: t, content: container.NewPadded(container.NewPadded(content))}
}

type toggleRenderer struct {
	t       *whisperToggle
	content *fyne.Container
}

func (r *toggleRenderer) Layout(s fyne.Size) {
	r.t.bg.Resize(s)
	r.content.Resize(s)
}
func (r *toggleRenderer) MinSize() fyne.Size {
	m := r.content.MinSize()
	return fyne.NewSize(m.Width, max(m.Height, 88))
}
func (r *toggleRenderer) Refresh() {
	r.t.bg.Refresh()
	r.t.icon.Refresh()
	r.t.title.Refresh()
	r.t.hint.Refresh()
	r.content.Refresh()
}
func (r *toggleRenderer) Objects() []fyne.CanvasObject {
	return []fyne.CanvasObject{r.t.bg, r.content}
}
func (r *toggleRenderer) Destroy() {}
