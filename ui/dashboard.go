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

// CallActions is what a user can ask for from a call row; nil entries hide the button.
type CallActions struct {
	Monitor func(app.Call)
	Details func(app.Call)
}

// Dashboard lists the active calls the user may see, one row each: state, agent →
// customer, running time, and Monitor Call for users who may monitor. It is built from
// plain app.Call values; the main window feeds it Session.Calls().
type Dashboard struct {
	user    app.User
	actions CallActions
	now     func() time.Time

	rows    map[string]*callRow
	order   []string
	list    *fyne.Container
	count   *widget.Label
	empty   fyne.CanvasObject
	Content fyne.CanvasObject
}

// NewDashboard makes an empty dashboard for user.
func NewDashboard(user app.User, actions CallActions, now func() time.Time) *Dashboard {
	if now == nil {
		now = time.Now
	}
	d := &Dashboard{user: user, actions: actions, now: now, rows: map[string]*callRow{}}
	d.list = container.NewVBox()
	d.count = widget.NewLabelWithStyle("No active calls", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	d.count.SizeName = theme.SizeNameSubHeadingText
	hint := "Calls appear here as they ring; tap Monitor Call to listen in."
	if !user.Can("monitor") {
		hint = "Your calls appear here as they ring."
	}
	emptyLabel := widget.NewLabelWithStyle("Nobody is on a call right now.\n"+hint, fyne.TextAlignCenter, fyne.TextStyle{Italic: true})
	emptyLabel.Importance = widget.LowImportance
	d.empty = container.NewPadded(emptyLabel)
	d.list.Add(d.empty)
	d.Content = container.NewBorder(container.NewPadded(d.count), nil, nil, nil, container.NewVScroll(d.list))
	return d
}

// SetCalls shows calls (the active ones: ended calls drop out).
func (d *Dashboard) SetCalls(calls []app.Call) {
	active := make([]app.Call, 0, len(calls))
	for _, c := range calls {
		if c.State != "ended" {
			active = append(active, c)
		}
	}
	// The longest-running call first: it is the one most likely to need help.
	sort.SliceStable(active, func(i, j int) bool { return active[i].StartedAt.Before(active[j].StartedAt) })
	seen := map[string]bool{}
	order := make([]string, 0, len(active))
	for _, c := range active {
		seen[c.ID] = true
		order = append(order, c.ID)
		if r, ok := d.rows[c.ID]; ok && r.call.Kind == c.Kind {
			r.update(c, d.now())
			continue
		}
		d.rows[c.ID] = newCallRow(d.user, c, d.actions, d.now())
	}
	for id := range d.rows {
		if !seen[id] {
			delete(d.rows, id)
		}
	}
	if !equalStrings(order, d.order) {
		d.order = order
		objs := make([]fyne.CanvasObject, 0, len(order))
		for _, id := range order {
			objs = append(objs, d.rows[id].obj)
		}
		if len(objs) == 0 {
			objs = append(objs, d.empty)
		}
		d.list.Objects = objs
		d.list.Refresh()
	}
	switch n := len(order); n {
	case 0:
		setText(d.count, "No active calls")
	case 1:
		setText(d.count, "1 active call")
	default:
		setText(d.count, fmt.Sprintf("%d active calls", n))
	}
}

// Tick moves the durations on.
func (d *Dashboard) Tick() {
	now := d.now()
	for _, r := range d.rows {
		r.tick(now)
	}
}

// Row returns the row of a call (tests), or nil.
func (d *Dashboard) Row(callID string) *callRow { return d.rows[callID] }

// callRow is one call on the dashboard or in the history.
type callRow struct {
	call     app.Call
	obj      fyne.CanvasObject
	state    *badge
	agent    *widget.Label
	customer *widget.Label
	detail   *widget.Label
	duration *widget.Label
	// monitor is nil for users without the monitor permission.
	monitor *widget.Button
	lock    *widget.Icon
	reason  *widget.Label
	details *widget.Button
	user    app.User
}

func newCallRow(user app.User, c app.Call, actions CallActions, now time.Time) *callRow {
	r := &callRow{call: c, user: user}
	r.state = stateBadge(c)
	r.agent = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	r.agent.SizeName = theme.SizeNameSubHeadingText
	arrow := widget.NewIcon(theme.NavigateNextIcon())
	r.customer = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	r.customer.SizeName = theme.SizeNameSubHeadingText
	r.detail = widget.NewLabel("")
	r.detail.Importance = widget.LowImportance
	r.detail.Truncation = fyne.TextTruncateEllipsis
	r.duration = widget.NewLabelWithStyle("", fyne.TextAlignTrailing, fyne.TextStyle{Monospace: true})
	r.duration.SizeName = theme.SizeNameSubHeadingText

	right := container.NewHBox(r.duration)
	if user.Can("monitor") && actions.Monitor != nil {
		r.monitor = widget.NewButtonWithIcon("Monitor Call", theme.VisibilityIcon(), func() { actions.Monitor(r.call) })
		r.monitor.Importance = widget.HighImportance
		// The lock's place is kept on every row (an Icon without a resource is blank but
		// sized), so durations and buttons line up whatever the kind of call.
		r.lock = widget.NewIcon(nil)
		r.reason = widget.NewLabel("")
		r.reason.Importance = widget.WarningImportance
		r.reason.TextStyle = fyne.TextStyle{Italic: true}
		r.reason.Hide()
		right.Add(container.NewCenter(container.NewHBox(r.lock, r.monitor)))
	}
	if actions.Details != nil {
		r.details = widget.NewButtonWithIcon("Details", theme.InfoIcon(), func() { actions.Details(r.call) })
		right.Add(container.NewCenter(r.details))
	}
	who := container.NewHBox(r.agent, arrow, r.customer)
	left := container.NewCenter(r.state)
	middle := container.NewVBox(who, r.detail)
	if r.reason != nil {
		middle.Add(r.reason)
	}
	body := container.NewBorder(nil, nil, left, container.NewCenter(right), middle)
	bg := canvas.NewRectangle(theme.Color(theme.ColorNameInputBackground))
	bg.CornerRadius = 8
	r.obj = container.NewPadded(container.NewStack(bg, container.NewPadded(body)))
	r.update(c, now)
	return r
}

func (r *callRow) update(c app.Call, now time.Time) {
	r.call = c
	setStateBadge(r.state, c)
	// Unchanged text is not set again: each SetText repaints the window.
	setText(r.agent, agentName(c.Agent))
	setText(r.customer, customerName(c.Customer))
	setText(r.detail, rowDetail(r.user, c))
	if r.monitor != nil {
		ok := c.Monitorable && c.State != "ended"
		var lock fyne.Resource
		if ok {
			r.monitor.Enable()
			r.reason.Hide()
		} else {
			r.monitor.Disable()
			setText(r.reason, unmonitorableReason(c))
			r.reason.Show()
			if c.Kind == "live" {
				lock = lockResource
			}
		}
		if r.lock.Resource != lock {
			r.lock.SetResource(lock)
		}
	}
	r.tick(now)
}

func (r *callRow) tick(now time.Time) {
	txt := duration(callDuration(r.call, now))
	if r.call.State == "ringing" {
		txt = "ringing " + duration(now.Sub(r.call.StartedAt))
	}
	if r.duration.Text != txt {
		r.duration.SetText(txt)
	}
}

// rowDetail is the small line under the names: kind, direction, and who listens.
func rowDetail(user app.User, c app.Call) string {
	var parts []string
	kind := "Phone call"
	if c.Kind == "live" {
		kind = "Live call (browser, encrypted)"
	}
	if c.Direction != "" {
		kind += ", " + c.Direction
	}
	parts = append(parts, kind)
	if len(c.Monitors) > 0 {
		var names []string
		for _, m := range c.Monitors {
			names = append(names, m.User+" "+modeWord(m.Mode))
		}
		parts = append(parts, "Monitored: "+strings.Join(names, ", "))
	} else if c.Monitored && !user.Can("monitor") {
		parts = append(parts, "Being monitored")
	}
	return strings.Join(parts, " · ")
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
