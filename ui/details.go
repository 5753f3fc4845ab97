package ui

import (
	"fmt"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"ringside/app"
)

// Details is the Call Details view: the facts of one call, Monitor Call, and for admins
// who is monitoring it right now. Update it with fresh app.Call values as they come.
type Details struct {
	user app.User
	call app.Call
	now  func() time.Time

	title    *widget.Label
	state    *badge
	kind     *widget.Label
	agent    *widget.Label
	customer *widget.Label
	started  *widget.Label
	length   *widget.Label
	ended    *widget.Label
	monitor  *widget.Button // nil without the monitor permission
	lock     *widget.Icon
	reason   *widget.Label
	// monitors lists who is monitoring (admins only; nil otherwise).
	monitors     *fyne.Container
	monitorNames []*widget.Label
	monitorsNote *widget.Label
	Content      fyne.CanvasObject
}

// NewDetails shows call c to user; onMonitor is Monitor Call.
func NewDetails(user app.User, c app.Call, onMonitor func(app.Call), now func() time.Time) *Details {
	if now == nil {
		now = time.Now
	}
	d := &Details{user: user, call: c, now: now}
	d.title = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	d.title.SizeName = theme.SizeNameHeadingText
	d.title.Wrapping = fyne.TextWrapWord
	d.state = stateBadge(c)
	d.kind = widget.NewLabel("")
	d.agent = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	d.customer = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	d.started = widget.NewLabel("")
	d.length = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
	d.ended = widget.NewLabel("")

	form := widget.NewForm(
		widget.NewFormItem("Agent", d.agent),
		widget.NewFormItem("Customer", d.customer),
		widget.NewFormItem("Type", d.kind),
		widget.NewFormItem("Started", d.started),
		widget.NewFormItem("Duration", d.length),
		widget.NewFormItem("Outcome", d.ended),
	)
	parts := []fyne.CanvasObject{
		container.NewBorder(nil, nil, nil, container.NewCenter(d.state), d.title),
		widget.NewSeparator(),
		form,
	}
	if user.Can("monitor") && onMonitor != nil {
		d.monitor = widget.NewButtonWithIcon("Monitor Call", theme.VisibilityIcon(), func() { onMonitor(d.call) })
		d.monitor.Importance = widget.HighImportance
		d.lock = widget.NewIcon(theme.NewThemedResource(lockIcon))
		d.reason = widget.NewLabel("")
		d.reason.Importance = widget.WarningImportance
		parts = append(parts, container.NewHBox(d.monitor, d.lock, d.reason))
	}
	if user.Can("admin") {
		head := widget.NewLabelWithStyle("Monitoring now", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
		head.SizeName = theme.SizeNameSubHeadingText
		d.monitors = container.NewVBox()
		d.monitorsNote = widget.NewLabel("")
		d.monitorsNote.Importance = widget.LowImportance
		parts = append(parts, widget.NewSeparator(), head, d.monitorsNote, d.monitors)
	}
	d.Content = container.NewPadded(container.NewVScroll(container.NewVBox(parts...)))
	d.Update(c)
	return d
}

// Call is the call shown.
func (d *Details) Call() app.Call { return d.call }

// Update shows a newer snapshot of the call.
func (d *Details) Update(c app.Call) {
	d.call = c
	d.title.SetText(agentName(c.Agent) + "  →  " + customerName(c.Customer))
	setStateBadge(d.state, c)
	if c.State == "ended" {
		d.state.Set("ENDED", colorEnded)
	}
	kind := "Phone call"
	if c.Kind == "live" {
		kind = "Live call from the web (end-to-end encrypted)"
	}
	if c.Direction != "" {
		kind += ", " + c.Direction
	}
	d.kind.SetText(kind)
	d.agent.SetText(agentName(c.Agent))
	d.customer.SetText(customerName(c.Customer))
	if !c.StartedAt.IsZero() {
		d.started.SetText(c.StartedAt.Local().Format("Mon Jan 2 15:04:05"))
	}
	switch {
	case c.State == "ended" && c.EndReason != "":
		d.ended.SetText("Ended (" + c.EndReason + ")")
	case c.State == "ended":
		d.ended.SetText("Ended")
	default:
		d.ended.SetText("In progress")
	}
	if d.monitor != nil {
		if c.Monitorable && c.State != "ended" {
			d.monitor.Enable()
			d.lock.Hide()
			d.reason.Hide()
		} else {
			d.monitor.Disable()
			d.reason.SetText(unmonitorableReason(c))
			d.reason.Show()
			if c.Kind == "live" {
				d.lock.Show()
			} else {
				d.lock.Hide()
			}
		}
	}
	if d.monitors != nil {
		d.setMonitors(c)
	}
	d.Tick()
}

func (d *Details) setMonitors(c app.Call) {
	objs := make([]fyne.CanvasObject, 0, len(c.Monitors))
	d.monitorNames = nil
	for _, m := range c.Monitors {
		name := m.User
		if m.Ext != "" {
			name += " (" + m.Ext + ")"
		}
		b := newBadge(strings.ToUpper(m.Mode), modeColor(m.Mode))
		since := ""
		if !m.Since.IsZero() {
			since = "since " + m.Since.Local().Format("15:04:05")
		}
		l := widget.NewLabelWithStyle(name, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
		d.monitorNames = append(d.monitorNames, l)
		objs = append(objs, container.NewHBox(widget.NewIcon(theme.NewThemedResource(headsetIcon)), l, container.NewCenter(b), widget.NewLabel(since)))
	}
	d.monitors.Objects = objs
	d.monitors.Refresh()
	switch {
	case c.State == "ended":
		d.monitorsNote.SetText("The call has ended.")
	case len(c.Monitors) == 0:
		d.monitorsNote.SetText("Nobody is monitoring this call.")
	case len(c.Monitors) == 1:
		d.monitorsNote.SetText("1 supervisor is on this call:")
	default:
		d.monitorsNote.SetText(fmt.Sprintf("%d supervisors are on this call:", len(c.Monitors)))
	}
}

// MonitoringNames lists who the view shows as monitoring (tests).
func (d *Details) MonitoringNames() []string {
	if d.monitors == nil {
		return nil
	}
	var out []string
	for _, l := range d.monitorNames {
		out = append(out, l.Text)
	}
	return out
}

// Tick moves the duration on.
func (d *Details) Tick() {
	txt := duration(callDuration(d.call, d.now()))
	if d.length.Text != txt {
		d.length.SetText(txt)
	}
}
