package ui

import (
	"fmt"
	"image/color"
	"math"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"ringside/app"
)

// Colours carry meaning across every view: a supervisor learns them once.
var (
	colorRinging  = color.NRGBA{R: 0xf5, G: 0x9e, B: 0x0b, A: 0xff} // amber
	colorTalking  = color.NRGBA{R: 0x16, G: 0xa3, B: 0x4a, A: 0xff} // green
	colorHeld     = color.NRGBA{R: 0x3b, G: 0x82, B: 0xf6, A: 0xff} // blue
	colorEnded    = color.NRGBA{R: 0x6b, G: 0x72, B: 0x80, A: 0xff} // grey
	colorLive     = color.NRGBA{R: 0x7c, G: 0x3a, B: 0xed, A: 0xff} // violet: encrypted
	colorWhisper  = color.NRGBA{R: 0xe1, G: 0x1d, B: 0x48, A: 0xff} // rose: your voice is on the line
	colorMonitor  = color.NRGBA{R: 0xd9, G: 0x77, B: 0x06, A: 0xff} // dark amber: someone listens
	colorListen   = color.NRGBA{R: 0x37, G: 0x41, B: 0x51, A: 0xff} // slate: listening only
	colorCustomer = color.NRGBA{R: 0x0e, G: 0xa5, B: 0xe9, A: 0xff} // sky
	colorAgent    = color.NRGBA{R: 0x22, G: 0xc5, B: 0x5e, A: 0xff} // green
	colorTrack    = color.NRGBA{R: 0x80, G: 0x80, B: 0x80, A: 0x40}
	white         = color.NRGBA{R: 0xff, G: 0xff, B: 0xff, A: 0xff}
)

func stateColor(state string) color.Color {
	switch state {
	case "ringing":
		return colorRinging
	case "talking":
		return colorTalking
	case "held":
		return colorHeld
	default:
		return colorEnded
	}
}

// badge is a coloured pill with white bold text: call states, modes.
type badge struct {
	widget.BaseWidget
	bg   *canvas.Rectangle
	text *canvas.Text
}

func newBadge(text string, c color.Color) *badge {
	b := &badge{bg: canvas.NewRectangle(c), text: canvas.NewText(text, white)}
	b.bg.CornerRadius = 6
	b.text.TextStyle = fyne.TextStyle{Bold: true}
	b.text.TextSize = theme.CaptionTextSize() + 1
	b.text.Alignment = fyne.TextAlignCenter
	b.ExtendBaseWidget(b)
	return b
}

func (b *badge) Set(text string, c color.Color) {
	if b.text.Text == text && b.bg.FillColor == c {
		return
	}
	b.text.Text, b.bg.FillColor = text, c
	b.Refresh()
}

func (b *badge) CreateRenderer() fyne.WidgetRenderer {
	return &badgeRenderer{b: b}
}

type badgeRenderer struct{ b *badge }

func (r *badgeRenderer) Layout(s fyne.Size) {
	r.b.bg.Resize(s)
	ts := r.b.text.MinSize()
	r.b.text.Resize(fyne.NewSize(s.Width, ts.Height))
	r.b.text.Move(fyne.NewPos(0, (s.Height-ts.Height)/2))
}

func (r *badgeRenderer) MinSize() fyne.Size {
	ts := r.b.text.MinSize()
	return fyne.NewSize(max(ts.Width+16, 84), ts.Height+8)
}

func (r *badgeRenderer) Refresh() {
	r.b.bg.Refresh()
	r.b.text.Refresh()
}
func (r *badgeRenderer) Objects() []fyne.CanvasObject { return []fyne.CanvasObject{r.b.bg, r.b.text} }
func (r *badgeRenderer) Destroy()                     {}

// stateBadge shows a call's state in words a supervisor uses.
func stateBadge(c app.Call) *badge {
	b := newBadge("", nil)
	setStateBadge(b, c)
	return b
}

// setText changes a label's text only when it differs: every Refresh repaints the
// window, and the tickers would otherwise repaint ten times a second for nothing.
func setText(l *widget.Label, text string) {
	if l.Text != text {
		l.SetText(text)
	}
}

func setStateBadge(b *badge, c app.Call) {
	b.Set(strings.ToUpper(stateWord(c.State)), stateColor(c.State))
}

func stateWord(state string) string {
	switch state {
	case "held":
		return "on hold"
	case "":
		return "unknown"
	}
	return state
}

// levelMeter is a horizontal bar, 0..1, with a name in front.
type levelMeter struct {
	widget.BaseWidget
	track, bar *canvas.Rectangle
	level      float64
}

func newLevelMeter(c color.Color) *levelMeter {
	m := &levelMeter{track: canvas.NewRectangle(colorTrack), bar: canvas.NewRectangle(c)}
	m.track.CornerRadius, m.bar.CornerRadius = 4, 4
	m.ExtendBaseWidget(m)
	return m
}

// SetLevel shows a level 0..1 (linear amplitude); the bar follows a dB-ish curve so
// speech at normal volume fills most of it.
func (m *levelMeter) SetLevel(v float64) {
	// In steps of 1/32 of the bar: a change too small to notice repaints nothing.
	v = math.Round(min(max(v, 0), 1)*32) / 32
	if v == m.level {
		return
	}
	m.level = v
	m.Refresh()
}

func (m *levelMeter) CreateRenderer() fyne.WidgetRenderer { return &meterRenderer{m: m} }

type meterRenderer struct{ m *levelMeter }

func (r *meterRenderer) Layout(s fyne.Size) {
	r.m.track.Resize(s)
	r.m.bar.Resize(fyne.NewSize(s.Width*float32(r.m.level), s.Height))
}
func (r *meterRenderer) MinSize() fyne.Size { return fyne.NewSize(160, 16) }
func (r *meterRenderer) Refresh() {
	r.Layout(r.m.Size())
	r.m.track.Refresh()
	r.m.bar.Refresh()
}
func (r *meterRenderer) Objects() []fyne.CanvasObject {
	return []fyne.CanvasObject{r.m.track, r.m.bar}
}
func (r *meterRenderer) Destroy() {}

// banner is a full-width coloured strip with an icon and a sentence; Show/Hide it.
type banner struct {
	*fyne.Container
	bg   *canvas.Rectangle
	text *canvas.Text
}

func newBanner(icon fyne.Resource, text string, c color.Color) *banner {
	b := &banner{bg: canvas.NewRectangle(c), text: canvas.NewText(text, white)}
	b.bg.CornerRadius = 6
	b.text.TextStyle = fyne.TextStyle{Bold: true}
	b.text.TextSize = theme.TextSize() + 2
	ic := widget.NewIcon(theme.NewColoredResource(icon, theme.ColorNameForegroundOnPrimary))
	b.Container = container.NewStack(b.bg, container.NewPadded(container.NewHBox(ic, b.text, layout.NewSpacer())))
	return b
}

// Label returns the banner's sentence (tests).
func (b *banner) Label() string { return b.text.Text }

// coloredText is bold text in a colour, for names and timers.
func coloredText(s string, size float32, c color.Color) *canvas.Text {
	t := canvas.NewText(s, c)
	t.TextSize = size
	t.TextStyle = fyne.TextStyle{Bold: true}
	return t
}

// duration formats a call's running time as a clock: 4:07, 1:02:33.
func duration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int(d / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// callDuration is how long a call has been going (or went): from answer when answered.
func callDuration(c app.Call, now time.Time) time.Duration {
	from := c.StartedAt
	if c.AnsweredAt != nil && !c.AnsweredAt.IsZero() {
		from = *c.AnsweredAt
	}
	to := now
	if c.EndedAt != nil && !c.EndedAt.IsZero() {
		to = *c.EndedAt
	}
	if from.IsZero() {
		return 0
	}
	return to.Sub(from)
}

func agentName(p app.Party) string {
	switch {
	case p.Name != "" && p.Ext != "":
		return fmt.Sprintf("%s (%s)", p.Name, p.Ext)
	case p.Name != "":
		return p.Name
	default:
		return p.Ext
	}
}

func customerName(c app.Customer) string {
	switch {
	case c.Name != "" && c.Number != "":
		return fmt.Sprintf("%s (%s)", c.Name, c.Number)
	case c.Name != "":
		return c.Name
	case c.Number != "":
		return c.Number
	default:
		return "unknown caller"
	}
}

// liveReason is the sentence for a call that can't be monitored.
func unmonitorableReason(c app.Call) string {
	if c.UnmonitorableReason != "" {
		return sentence(c.UnmonitorableReason)
	}
	if c.Kind == "live" {
		return "Live calls are end-to-end encrypted"
	}
	if c.State == "ended" {
		return "The call has ended"
	}
	return "This call can't be monitored"
}

func sentence(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func modeWord(mode string) string {
	switch mode {
	case "whisper":
		return "whispering"
	case "barge":
		return "barged in"
	case "listen":
		return "listening"
	}
	return mode
}

func modeColor(mode string) color.Color {
	switch mode {
	case "whisper":
		return colorWhisper
	case "barge":
		return colorMonitor
	}
	return colorListen
}
