package ui

import (
	"context"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"ringside/app"
)

// PhoneLine is one's own call; *app.OwnCall is one.
type PhoneLine interface {
	Incoming() bool
	Peer() app.Customer
	State() string
	AnsweredAt() time.Time
	Answer(ctx context.Context) error
	Hangup(ctx context.Context) error
	SetMute(on bool)
	Muted() bool
	SetHold(ctx context.Context, on bool) error
	SendDTMF(digit rune) error
	Transfer(ctx context.Context, target string) error
	Monitored() bool
	Whisper() bool
	Done() <-chan struct{}
}

var _ PhoneLine = (*app.OwnCall)(nil)

// isLive tells whether line is a live call with a web visitor (app.OwnCall.Kind):
// end-to-end encrypted WebRTC, with no hold, keypad or transfer.
func isLive(line PhoneLine) bool {
	k, ok := line.(interface{ Kind() string })
	return ok && k.Kind() == app.CallKindLive
}

// CallView is the call window for one's own call: who, timer, the monitoring banners,
// and the phone's buttons.
type CallView struct {
	line PhoneLine
	now  func() time.Time
	run  func(work func() error, then func(error))

	peer  *widget.Label
	state *badge
	timer *widget.Label
	// MonitoredBanner and WhisperBanner come and go as the server says.
	MonitoredBanner *banner
	WhisperBanner   *banner
	// LiveBanner shows the lock on a live call with a web visitor.
	LiveBanner *banner
	live       bool

	Answer   *widget.Button
	Mute     *widget.Button
	Hold     *widget.Button
	Keypad   *widget.Button
	Transfer *widget.Button
	Hangup   *widget.Button
	keys     *fyne.Container
	xfer     *fyne.Container
	xferTo   *widget.Entry
	dialed   *widget.Label
	status   *widget.Label
	ended    bool
	// OnEnded is called once the call is over.
	OnEnded func()
	Content fyne.CanvasObject
}

// NewCallView builds the window's content for line.
func NewCallView(line PhoneLine, run func(work func() error, then func(error)), now func() time.Time) *CallView {
	if now == nil {
		now = time.Now
	}
	v := &CallView{line: line, run: run, now: now, live: isLive(line)}
	v.peer = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	v.peer.SizeName = theme.SizeNameHeadingText
	v.peer.Truncation = fyne.TextTruncateEllipsis
	v.state = newBadge("", colorEnded)
	v.timer = widget.NewLabelWithStyle("0:00", fyne.TextAlignTrailing, fyne.TextStyle{Monospace: true})
	v.timer.SizeName = theme.SizeNameHeadingText

	v.MonitoredBanner = newBanner(theme.VisibilityIcon(), "This call is being monitored", colorMonitor)
	v.WhisperBanner = newBanner(headsetIcon, "Whisper on — your supervisor is talking to you", colorWhisper)
	v.MonitoredBanner.Hide()
	v.WhisperBanner.Hide()
	v.LiveBanner = newBanner(lockIcon, "Live call (end-to-end encrypted)", colorLive)
	if !v.live {
		v.LiveBanner.Hide()
	}

	v.Answer = widget.NewButtonWithIcon("Answer", theme.NewThemedResource(phoneIcon), v.answer)
	v.Answer.Importance = widget.SuccessImportance
	v.Mute = widget.NewButtonWithIcon("Mute", theme.NewThemedResource(micIcon), v.toggleMute)
	v.Hold = widget.NewButtonWithIcon("Hold", theme.MediaPauseIcon(), v.toggleHold)
	v.Keypad = widget.NewButtonWithIcon("Keypad", theme.NewThemedResource(dialpadIcon), v.toggleKeypad)
	v.Transfer = widget.NewButtonWithIcon("Transfer", theme.MailForwardIcon(), v.toggleTransfer)
	v.Hangup = widget.NewButtonWithIcon("Hang up", theme.NewThemedResource(hangupIcon), v.hangup)
	v.Hangup.Importance = widget.DangerImportance
	if v.live { // the browser at the other end has none of these
		v.Hold.Hide()
		v.Keypad.Hide()
		v.Transfer.Hide()
	}

	v.dialed = widget.NewLabelWithStyle("", fyne.TextAlignCenter, fyne.TextStyle{Monospace: true})
	keys := container.NewGridWithColumns(3)
	for _, k := range "123456789*0#" {
		k := k
		keys.Add(widget.NewButton(string(k), func() { v.sendDigit(k) }))
	}
	v.keys = container.NewVBox(v.dialed, keys)
	v.keys.Hide()

	v.xferTo = widget.NewEntry()
	v.xferTo.SetPlaceHolder("Extension or number")
	v.xferTo.OnSubmitted = func(string) { v.transfer() }
	send := widget.NewButton("Transfer now", v.transfer)
	send.Importance = widget.HighImportance
	v.xfer = container.NewBorder(nil, nil, nil, send, v.xferTo)
	v.xfer.Hide()

	v.status = widget.NewLabel("")
	v.status.Importance = widget.WarningImportance
	v.status.Wrapping = fyne.TextWrapWord
	v.status.Hide()

	head := container.NewBorder(nil, nil, nil, container.NewCenter(v.timer),
		container.NewVBox(v.peer, container.NewHBox(v.state)))
	controls := container.NewGridWithColumns(4, v.Mute, v.Hold, v.Keypad, v.Transfer)
	v.Content = container.NewPadded(container.NewVBox(
		head,
		v.LiveBanner.Container,
		v.MonitoredBanner.Container,
		v.WhisperBanner.Container,
		widget.NewSeparator(),
		controls,
		v.keys,
		v.xfer,
		v.status,
		layout.NewSpacer(),
		// One row: Answer and Decline while ringing, then Hang up across the width.
		container.NewGridWithRows(1, v.Answer, v.Hangup),
	))
	v.Refresh()
	return v
}

// Title is the window title.
func (v *CallView) Title() string { return "Call with " + customerName(v.line.Peer()) }

// Tick moves the timer on and notices the end; the rest changes only with the call
// (Refresh), so the window is not repainted ten times a second for nothing.
func (v *CallView) Tick() {
	if v.ended {
		return
	}
	if at := v.line.AnsweredAt(); !at.IsZero() {
		setText(v.timer, duration(v.now().Sub(at)))
	}
	select {
	case <-v.line.Done():
		v.Refresh()
	default:
	}
}

// Refresh redraws from the call: state, timer, banners, buttons; and notices the end.
func (v *CallView) Refresh() {
	if v.ended {
		return
	}
	st := v.line.State()
	v.peer.SetText(customerName(v.line.Peer()))
	word := stateWord(st)
	if st == "ringing" {
		if v.line.Incoming() {
			word = "incoming call"
		} else {
			word = "calling…"
		}
	}
	v.state.Set(upper(word), stateColor(st))
	if at := v.line.AnsweredAt(); !at.IsZero() {
		setText(v.timer, duration(v.now().Sub(at)))
	}
	show(v.MonitoredBanner.Container, v.line.Monitored())
	show(v.WhisperBanner.Container, v.line.Whisper())
	talking := st == "talking" || st == "held"
	show(v.Answer, st == "ringing" && v.line.Incoming())
	for _, b := range []*widget.Button{v.Mute, v.Hold, v.Keypad, v.Transfer} {
		if talking {
			b.Enable()
		} else {
			b.Disable()
		}
	}
	if v.line.Muted() {
		v.Mute.SetText("Unmute")
		v.Mute.SetIcon(theme.NewThemedResource(micOffIcon))
		v.Mute.Importance = widget.WarningImportance
	} else {
		v.Mute.SetText("Mute")
		v.Mute.SetIcon(theme.NewThemedResource(micIcon))
		v.Mute.Importance = widget.MediumImportance
	}
	v.Mute.Refresh()
	if st == "held" {
		v.Hold.SetText("Resume")
		v.Hold.Importance = widget.WarningImportance
	} else {
		v.Hold.SetText("Hold")
		v.Hold.Importance = widget.MediumImportance
	}
	v.Hold.Refresh()
	if st == "ringing" && v.line.Incoming() {
		v.Hangup.SetText("Decline")
	} else {
		v.Hangup.SetText("Hang up")
	}
	select {
	case <-v.line.Done():
		v.end()
	default:
	}
}

func (v *CallView) end() {
	v.ended = true
	v.state.Set("ENDED", colorEnded)
	v.MonitoredBanner.Hide()
	v.WhisperBanner.Hide()
	for _, b := range []*widget.Button{v.Answer, v.Mute, v.Hold, v.Keypad, v.Transfer, v.Hangup} {
		b.Disable()
	}
	if v.OnEnded != nil {
		v.OnEnded()
	}
}

func (v *CallView) answer() {
	v.Answer.Disable()
	v.run(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return v.line.Answer(ctx)
	}, v.done("Could not answer"))
}

func (v *CallView) hangup() {
	v.Hangup.Disable()
	v.run(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return v.line.Hangup(ctx)
	}, v.done("Could not hang up"))
}

func (v *CallView) toggleMute() {
	v.line.SetMute(!v.line.Muted())
	v.Refresh()
}

func (v *CallView) toggleHold() {
	on := v.line.State() != "held"
	v.Hold.Disable()
	v.run(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return v.line.SetHold(ctx, on)
	}, v.done("Could not change hold"))
}

func (v *CallView) toggleKeypad() { show(v.keys, !v.keys.Visible()) }

func (v *CallView) toggleTransfer() {
	show(v.xfer, !v.xfer.Visible())
}

func (v *CallView) sendDigit(k rune) {
	if err := v.line.SendDTMF(k); err != nil {
		v.status.SetText("Could not send " + string(k) + ": " + err.Error())
		v.status.Show()
		return
	}
	v.dialed.SetText(v.dialed.Text + string(k))
}

func (v *CallView) transfer() {
	target := v.xferTo.Text
	if target == "" {
		return
	}
	v.run(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return v.line.Transfer(ctx, target)
	}, v.done("Could not transfer"))
}

// done returns the callback after an action: show an error, redraw either way.
func (v *CallView) done(what string) func(error) {
	return func(err error) {
		if err != nil {
			v.status.SetText(what + ": " + err.Error())
			v.status.Show()
		} else {
			v.status.Hide()
		}
		v.Hangup.Enable()
		v.Answer.Enable()
		v.Refresh()
	}
}

func show(o fyne.CanvasObject, visible bool) {
	if visible == o.Visible() {
		return
	}
	if visible {
		o.Show()
	} else {
		o.Hide()
	}
}

func upper(s string) string {
	b := []rune(s)
	for i, r := range b {
		if r >= 'a' && r <= 'z' {
			b[i] = r - 'a' + 'A'
		}
	}
	return string(b)
}
