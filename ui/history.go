package ui

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"ringside/app"
)

// History lists recent calls, newest first: Monitor Call on the ones still active, and on
// ended ones who monitored them and how. Built from plain app.Call values.
type History struct {
	user    app.User
	actions CallActions
	now     func() time.Time

	rows    map[string]*historyRow
	list    *fyne.Container
	status  *widget.Label
	refresh *widget.Button
	Content fyne.CanvasObject
}

// NewHistory makes an empty history; onRefresh (may be nil) is the Refresh button.
func NewHistory(user app.User, actions CallActions, onRefresh func(), now func() time.Time) *History {
	if now == nil {
		now = time.Now
	}
	h := &History{user: user, actions: actions, now: now, rows: map[string]*historyRow{}}
	h.list = container.NewVBox()
	h.status = widget.NewLabelWithStyle("Call history", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	h.status.SizeName = theme.SizeNameSubHeadingText
	top := container.NewBorder(nil, nil, nil, nil, h.status)
	if onRefresh != nil {
		h.refresh = widget.NewButtonWithIcon("Refresh", theme.ViewRefreshIcon(), onRefresh)
		top = container.NewBorder(nil, nil, nil, h.refresh, h.status)
	}
	h.Content = container.NewBorder(container.NewPadded(top), nil, nil, nil, container.NewVScroll(h.list))
	return h
}

// SetCalls shows calls, newest first; err (if any) is shown instead of the count.
func (h *History) SetCalls(calls []app.Call, err error) {
	if err != nil {
		h.status.SetText("History unavailable: " + err.Error())
		return
	}
	calls = append([]app.Call(nil), calls...)
	sort.SliceStable(calls, func(i, j int) bool { return calls[i].StartedAt.After(calls[j].StartedAt) })
	h.rows = map[string]*historyRow{}
	objs := make([]fyne.CanvasObject, 0, len(calls))
	for _, c := range calls {
		r := newHistoryRow(h.user, c, h.actions, h.now())
		h.rows[c.ID] = r
		objs = append(objs, r.obj)
	}
	if len(objs) == 0 {
		empty := widget.NewLabelWithStyle("No calls yet.", fyne.TextAlignCenter, fyne.TextStyle{Italic: true})
		objs = append(objs, empty)
	}
	h.list.Objects = objs
	h.list.Refresh()
	h.status.SetText(fmt.Sprintf("Call history — last %d calls", len(calls)))
}

// Tick moves the durations of active calls on.
func (h *History) Tick() {
	now := h.now()
	for _, r := range h.rows {
		if r.call.State != "ended" {
			setText(r.duration, duration(callDuration(r.call, now)))
		}
	}
}

// Row returns the row of a call (tests), or nil.
func (h *History) Row(callID string) *historyRow { return h.rows[callID] }

type historyRow struct {
	call      app.Call
	obj       fyne.CanvasObject
	state     *badge
	when      *widget.Label
	who       *widget.Label
	duration  *widget.Label
	monitored *widget.Label
	monitor   *widget.Button // only on active calls, for users who may monitor
	reason    *widget.Label
	details   *widget.Button
}

func newHistoryRow(user app.User, c app.Call, actions CallActions, now time.Time) *historyRow {
	r := &historyRow{call: c}
	r.state = stateBadge(c)
	if c.State == "ended" {
		word := "ENDED"
		if c.EndReason != "" && c.EndReason != "hangup" && c.EndReason != "normal" {
			word = strings.ToUpper(c.EndReason)
		}
		r.state.Set(word, colorEnded)
	}
	r.when = widget.NewLabelWithStyle(whenText(c.StartedAt, now), fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
	r.who = widget.NewLabelWithStyle(agentName(c.Agent)+"  →  "+customerName(c.Customer), fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	r.who.Truncation = fyne.TextTruncateEllipsis
	r.duration = widget.NewLabelWithStyle(duration(callDuration(c, now)), fyne.TextAlignTrailing, fyne.TextStyle{Monospace: true})
	r.monitored = widget.NewLabel(monitoredText(c))
	r.monitored.Truncation = fyne.TextTruncateEllipsis
	if len(c.Monitors) > 0 {
		r.monitored.Importance = widget.WarningImportance
	} else {
		r.monitored.Importance = widget.LowImportance
	}

	right := container.NewHBox(r.duration)
	if user.Can("monitor") && actions.Monitor != nil && c.State != "ended" {
		r.monitor = widget.NewButtonWithIcon("Monitor Call", theme.VisibilityIcon(), func() { actions.Monitor(r.call) })
		r.monitor.Importance = widget.HighImportance
		if !c.Monitorable {
			r.monitor.Disable()
			r.reason = widget.NewLabel(unmonitorableReason(c))
			r.reason.Importance = widget.WarningImportance
			right.Add(container.NewVBox(r.monitor, r.reason))
		} else {
			right.Add(container.NewCenter(r.monitor))
		}
	}
	if actions.Details != nil {
		r.details = widget.NewButtonWithIcon("Details", theme.InfoIcon(), func() { actions.Details(r.call) })
		right.Add(container.NewCenter(r.details))
	}
	left := container.NewHBox(container.NewCenter(r.state), container.NewCenter(r.when))
	body := container.NewBorder(nil, nil, left, container.NewCenter(right), container.NewVBox(r.who, r.monitored))
	bg := canvas.NewRectangle(theme.Color(theme.ColorNameInputBackground))
	bg.CornerRadius = 8
	r.obj = container.NewPadded(container.NewStack(bg, container.NewPadded(body)))
	return r
}

func whenText(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	t = t.Local()
	if y, m, d := now.Local().Date(); t.Year() == y && t.Month() == m && t.Day() == d {
		return t.Format("15:04")
	}
	return t.Format("Jan 2 15:04")
}

// monitoredText says who monitored a call and in which modes: "Monitored by sam
// (listen → whisper), ada (listen)".
func monitoredText(c app.Call) string {
	if len(c.Monitors) == 0 {
		if c.State == "ended" {
			return "Not monitored"
		}
		return "Not monitored so far"
	}
	var parts []string
	for _, m := range c.Monitors {
		modes := []string{}
		for _, ch := range c.ModeLog[m.ID] {
			if len(modes) == 0 || modes[len(modes)-1] != ch.Mode {
				modes = append(modes, ch.Mode)
			}
		}
		if len(modes) == 0 && m.Mode != "" {
			modes = append(modes, m.Mode)
		}
		name := m.User
		if name == "" {
			name = m.Ext
		}
		if len(modes) > 0 {
			name += " (" + strings.Join(modes, " → ") + ")"
		}
		parts = append(parts, name)
	}
	verb := "Monitored by "
	if c.State != "ended" {
		verb = "Being monitored by "
	}
	return verb + strings.Join(parts, ", ")
}
