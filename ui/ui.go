// Package ui is Ringside's desktop softphone: Fyne views over package app. It draws what
// app says and sends the user's intent back; it never speaks HTTP or SIP itself. Every
// update from another goroutine goes through Options.Do (fyne.Do in the program).
package ui

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"sort"
	"sync"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"ringside/app"
)

// Options configure the UI; the zero value is the program's.
type Options struct {
	Logger *slog.Logger
	// Audio opens the sound device for a session; nil opens the devices chosen in
	// Settings (app.OpenAudio falls back to silence without sound hardware).
	Audio func() app.AudioDevice
	// Do runs f on the UI goroutine; nil is fyne.Do. Tests serialise with a lock.
	Do func(f func())
	// Now is the clock for timers; nil is time.Now.
	Now func() time.Time
	// Icon is the app and tray icon; nil keeps the app's.
	Icon fyne.Resource
	// Tick is how often a monitoring window's level meters redraw; 0 is 200 ms (5 Hz).
	// Timers move on one shared clock once a second, and only the visible ones.
	Tick time.Duration
	// Live limits the networks live calls (WebRTC with web visitors) may use; the zero
	// value allows any. The demo keeps them on loopback.
	Live app.LiveConfig
}

// UI is the softphone's windows for one fyne.App.
type UI struct {
	app  fyne.App
	opts Options
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	login    *LoginView
	loginWin fyne.Window

	session    *app.Session
	stopChange func()
	main       fyne.Window
	tabs       *container.AppTabs
	conn       *badge
	dialTo     *widget.Entry

	Dashboard *Dashboard
	History   *History
	Settings  *SettingsView

	dashTab, histTab *container.TabItem

	historyLoaded bool
	activeIDs     []string
	pending       map[string]bool // Monitor Call asked, not answered yet
	monitors      map[string]*monitorWindow
	calls         map[*app.OwnCall]*callWindow
	details       map[string]*detailsWindow
}

type monitorWindow struct {
	line       *app.MonitorSession
	view       *MonitorView
	win        fyne.Window
	gone       bool
	stopMeters context.CancelFunc
}

type callWindow struct {
	view     *CallView
	win      fyne.Window
	notified bool
	gone     bool
}

type detailsWindow struct {
	view *Details
	win  fyne.Window
}

// New prepares the UI on a; show a window with ShowLogin, SignIn or Open.
func New(a fyne.App, opts Options) *UI {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Do == nil {
		opts.Do = fyne.Do
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Tick == 0 {
		opts.Tick = meterTick
	}
	if opts.Icon != nil {
		a.SetIcon(opts.Icon)
	}
	useReadableTheme(a)
	u := &UI{app: a, opts: opts, log: opts.Logger,
		pending: map[string]bool{}, monitors: map[string]*monitorWindow{},
		calls: map[*app.OwnCall]*callWindow{}, details: map[string]*detailsWindow{}}
	u.ctx, u.cancel = context.WithCancel(context.Background())
	return u
}

// do runs f on the UI goroutine unless the UI is closing.
func (u *UI) do(f func()) {
	if u.ctx.Err() != nil {
		return
	}
	u.opts.Do(func() {
		if u.ctx.Err() == nil {
			f()
		}
	})
}

// run does work off the UI goroutine, then calls then(err) on it.
func (u *UI) run(work func() error, then func(error)) {
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		err := work()
		u.do(func() { then(err) })
	}()
}

// Close signs out: leaves monitors, hangs up, stops every goroutine the UI started.
func (u *UI) Close() {
	u.cancel()
	if u.stopChange != nil {
		u.stopChange()
	}
	if u.session != nil {
		if err := u.session.Close(); err != nil {
			u.log.Warn("closing session", "err", err)
		}
	}
	u.wg.Wait()
}

// Session is the signed-in session, or nil.
func (u *UI) Session() *app.Session { return u.session }

// MainWindow is the main window once signed in, else nil.
func (u *UI) MainWindow() fyne.Window { return u.main }

// ---- login

// LoginView is the sign-in form.
type LoginView struct {
	URL, User, Password *widget.Entry
	SignIn              *widget.Button
	Status              *widget.Label
	Content             fyne.CanvasObject
}

func newLoginView(acct app.Account, submit func(app.Account)) *LoginView {
	v := &LoginView{URL: widget.NewEntry(), User: widget.NewEntry(), Password: widget.NewPasswordEntry()}
	v.URL.SetPlaceHolder("http://127.0.0.1:8080")
	v.URL.SetText(acct.ServerURL)
	if acct.ServerURL == "" {
		v.URL.SetText("http://127.0.0.1:8080")
	}
	v.User.SetText(acct.User)
	v.Password.SetText(acct.Password)
	get := func() app.Account {
		return app.Account{ServerURL: v.URL.Text, User: v.User.Text, Password: v.Password.Text}
	}
	v.SignIn = widget.NewButtonWithIcon("Sign in", theme.LoginIcon(), func() { submit(get()) })
	v.SignIn.Importance = widget.HighImportance
	v.Password.OnSubmitted = func(string) { submit(get()) }
	v.Status = widget.NewLabel("")
	v.Status.Wrapping = fyne.TextWrapWord
	title := widget.NewLabelWithStyle("Ringside", fyne.TextAlignCenter, fyne.TextStyle{Bold: true})
	title.SizeName = theme.SizeNameHeadingText
	sub := widget.NewLabelWithStyle("Sign in to your call center", fyne.TextAlignCenter, fyne.TextStyle{})
	sub.Importance = widget.LowImportance
	form := widget.NewForm(
		widget.NewFormItem("Server", v.URL),
		widget.NewFormItem("User", v.User),
		widget.NewFormItem("Password", v.Password),
	)
	v.Content = container.NewPadded(container.NewVBox(title, sub, form, v.SignIn, v.Status))
	return v
}

// ShowLogin opens the sign-in window filled with acct.
func (u *UI) ShowLogin(acct app.Account) {
	u.login = newLoginView(acct, u.signIn)
	u.loginWin = u.app.NewWindow("Ringside — Sign in")
	u.loginWin.SetContent(u.login.Content)
	u.loginWin.Resize(fyne.NewSize(420, 320))
	// Not the master window: signing in closes it and the main window takes over.
	u.loginWin.SetOnClosed(func() {
		if u.session == nil {
			u.app.Quit()
		}
	})
	u.loginWin.CenterOnScreen()
	u.loginWin.Show()
}

// SignIn shows the sign-in window and signs in with acct at once (the demo).
func (u *UI) SignIn(acct app.Account) {
	u.ShowLogin(acct)
	u.signIn(acct)
}

// Login is the sign-in view (tests), or nil.
func (u *UI) Login() *LoginView { return u.login }

func (u *UI) signIn(acct app.Account) {
	if acct.User == "" || acct.ServerURL == "" {
		u.login.Status.SetText("Enter the server, your user name and your password.")
		return
	}
	u.login.SignIn.Disable()
	u.login.Status.SetText("Signing in as " + acct.User + "…")
	var s *app.Session
	u.run(func() error {
		ctx, cancel := context.WithTimeout(u.ctx, 20*time.Second)
		defer cancel()
		opts := app.Options{Logger: u.log, Live: u.opts.Live}
		if u.opts.Audio != nil {
			opts.Audio = u.opts.Audio()
		} else {
			prefs := u.app.Preferences()
			dev, err := app.OpenAudio(prefs.String(prefCapture), prefs.String(prefPlayback))
			if err != nil {
				u.log.Warn("audio device", "err", err)
				dev = app.NullAudio()
			}
			opts.Audio = dev
		}
		var err error
		s, err = app.Login(ctx, acct, opts)
		if err != nil {
			if opts.Audio != nil {
				opts.Audio.Close()
			}
			return err
		}
		if err := app.SaveAccount(acct); err != nil {
			u.log.Warn("remembering the account", "err", err)
		}
		return nil
	}, func(err error) {
		if err != nil {
			u.login.SignIn.Enable()
			u.login.Status.SetText("Could not sign in: " + err.Error())
			return
		}
		u.Open(s)
	})
}

// ---- main window

// Open shows the main window for a signed-in session and follows its changes.
func (u *UI) Open(s *app.Session) {
	u.session = s
	user := s.User()
	actions := CallActions{Details: u.showDetails}
	if user.Can("monitor") {
		actions.Monitor = u.monitorCall
	}
	u.Dashboard = NewDashboard(user, actions, u.opts.Now)
	u.History = NewHistory(user, actions, u.loadHistory, u.opts.Now)
	client := s.Client()
	backend := SettingsBackend{Devices: app.AudioDevices, Prefs: u.app.Preferences()}
	if user.Can("admin") {
		backend.Settings, backend.SetSettings = client.Settings, client.SetSettings
		backend.Users, backend.AddUser = client.Users, client.AddUser
	}
	u.Settings = NewSettingsView(user, backend, u.run)

	dash := container.NewTabItemWithIcon("Active calls", theme.NewThemedResource(phoneIcon), u.Dashboard.Content)
	hist := container.NewTabItemWithIcon("History", theme.HistoryIcon(), u.History.Content)
	sett := container.NewTabItemWithIcon("Settings", theme.SettingsIcon(), u.Settings.Content)
	u.tabs = container.NewAppTabs(dash, hist, sett)
	u.dashTab, u.histTab = dash, hist
	settingsLoaded := false
	u.tabs.OnSelected = func(t *container.TabItem) {
		switch t {
		case dash:
			u.Dashboard.Tick()
		case hist:
			u.History.Tick()
			u.loadHistory()
		case sett:
			if !settingsLoaded {
				settingsLoaded = true
				u.Settings.Load()
			}
		}
	}

	// The sign-in window becomes the main window (closing a window under the pointer
	// can crash GLFW's event loop, and one window is calmer anyway).
	if u.loginWin != nil {
		u.main, u.loginWin = u.loginWin, nil
		u.main.SetTitle("Ringside — " + user.Name)
		u.main.SetOnClosed(nil)
	} else {
		u.main = u.app.NewWindow("Ringside — " + user.Name)
	}
	u.main.SetContent(container.NewBorder(u.topBar(user), nil, nil, nil, u.tabs))
	u.main.Resize(fyne.NewSize(980, 620))
	u.main.CenterOnScreen()
	u.main.SetMaster()
	u.main.Show()
	// Centre again once the window has its new size (the sign-in window was smaller).
	u.do(u.main.CenterOnScreen)
	u.setupTray()

	u.stopChange = s.OnChange(func() { u.do(u.refresh) })
	u.refresh()
	u.every(u.ctx, timerTick, u.tick)
}

// Timers show whole seconds, so one clock a second moves them all in the same repaint;
// level meters move at meterTick, and only while a monitoring window is open. Every
// repaint draws the whole window (with software GL that is milliseconds of CPU), so the
// meters move five times a second: enough to see who speaks, not a show.
const (
	timerTick = time.Second
	meterTick = 200 * time.Millisecond
)

// every runs f on the UI goroutine every d until ctx ends.
func (u *UI) every(ctx context.Context, d time.Duration, f func()) {
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				u.do(func() {
					if ctx.Err() == nil {
						f()
					}
				})
			}
		}
	}()
}

func (u *UI) topBar(user app.User) fyne.CanvasObject {
	name := widget.NewLabelWithStyle(user.Name, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	name.SizeName = theme.SizeNameSubHeadingText
	role := newBadge(upper(user.Role), roleColor(user.Role))
	ext := widget.NewLabel("ext " + user.Ext)
	ext.Importance = widget.LowImportance
	u.conn = newBadge("CONNECTING", colorRinging)
	left := container.NewHBox(widget.NewIcon(theme.AccountIcon()), name, container.NewCenter(role), ext, container.NewCenter(u.conn))
	right := container.NewHBox()
	if user.Can("call") {
		u.dialTo = widget.NewEntry()
		u.dialTo.SetPlaceHolder("Number or extension")
		dial := widget.NewButtonWithIcon("Call", theme.NewThemedResource(phoneIcon), u.dial)
		dial.Importance = widget.SuccessImportance
		u.dialTo.OnSubmitted = func(string) { u.dial() }
		right.Add(container.NewGridWrap(fyne.NewSize(200, u.dialTo.MinSize().Height), u.dialTo))
		right.Add(dial)
	}
	return container.NewPadded(container.NewBorder(nil, nil, left, right, layout.NewSpacer()))
}

func (u *UI) setupTray() {
	desk, ok := u.app.(desktop.App)
	if !ok {
		return
	}
	// On Linux the tray speaks D-Bus (StatusNotifierItem); without a session bus Fyne's
	// systray crashes at quit, and there would be no tray to show anyway.
	if runtime.GOOS != "windows" && runtime.GOOS != "darwin" && os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" {
		u.log.Info("no D-Bus session: no tray icon")
		return
	}
	show := fyne.NewMenuItem("Show Ringside", func() {
		if u.main != nil {
			u.main.Show()
			u.main.RequestFocus()
		}
	})
	desk.SetSystemTrayMenu(fyne.NewMenu("Ringside", show))
	if icon := u.app.Icon(); icon != nil {
		desk.SetSystemTrayIcon(icon)
	}
}

func (u *UI) dial() {
	number := u.dialTo.Text
	if number == "" {
		return
	}
	u.run(func() error {
		ctx, cancel := context.WithTimeout(u.ctx, 30*time.Second)
		defer cancel()
		_, err := u.session.Dial(ctx, number)
		return err
	}, func(err error) {
		if err != nil {
			dialog.ShowError(err, u.main)
			return
		}
		u.dialTo.SetText("")
		u.refresh()
	})
}

// refresh redraws from the session after a change.
func (u *UI) refresh() {
	s := u.session
	if s == nil {
		return
	}
	if s.ConnectionState() == "connected" {
		u.conn.Set("CONNECTED", colorTalking)
	} else {
		u.conn.Set("RECONNECTING…", colorRinging)
	}
	calls := s.Calls()
	u.Dashboard.SetCalls(calls)

	ids := make([]string, 0, len(calls))
	byID := map[string]app.Call{}
	for _, c := range calls {
		ids = append(ids, c.ID)
		byID[c.ID] = c
	}
	sort.Strings(ids)
	if !equalStrings(ids, u.activeIDs) {
		u.activeIDs = ids
		if u.historyLoaded {
			u.loadHistory()
		}
	}
	for id, d := range u.details {
		if c, ok := byID[id]; ok {
			d.view.Update(c)
		} else if d.view.Call().State != "ended" {
			u.fetchDetails(id)
		}
	}
	u.syncOwnCalls()
	for _, c := range u.calls {
		c.view.Tick() // notices an end at once, also of a call the session no longer lists
	}
	for _, m := range u.monitors {
		m.view.Refresh()
	}
}

// tick moves the timers on, once a second: those of the main window's open tab (a label
// changed in a hidden tab would still repaint the window) and of the other windows but
// the monitoring ones, whose meters move their timers in the same repaint. The
// connection badge and the rest follow the session's changes (refresh).
func (u *UI) tick() {
	if u.Dashboard != nil {
		switch u.tabs.Selected() {
		case u.dashTab:
			u.Dashboard.Tick()
		case u.histTab:
			u.History.Tick()
		}
	}
	for _, d := range u.details {
		d.view.Tick()
	}
	for _, c := range u.calls {
		c.view.Tick()
	}
}

func (u *UI) loadHistory() {
	u.historyLoaded = true
	var calls []app.Call
	u.run(func() error {
		ctx, cancel := context.WithTimeout(u.ctx, 10*time.Second)
		defer cancel()
		var err error
		calls, err = u.session.Client().History(ctx, 100)
		return err
	}, func(err error) { u.History.SetCalls(calls, err) })
}

// ---- monitoring

// monitorCall opens the monitoring window for c (or brings it to the front).
func (u *UI) monitorCall(c app.Call) {
	if m, ok := u.monitors[c.ID]; ok && !m.gone {
		m.win.RequestFocus()
		return
	}
	if u.pending[c.ID] {
		return
	}
	u.pending[c.ID] = true
	var line *app.MonitorSession
	u.run(func() error {
		ctx, cancel := context.WithTimeout(u.ctx, 20*time.Second)
		defer cancel()
		var err error
		line, err = u.session.MonitorCall(ctx, c.ID)
		return err
	}, func(err error) {
		delete(u.pending, c.ID)
		if err != nil {
			dialog.ShowError(err, u.main)
			return
		}
		u.openMonitor(c.ID, line)
	})
}

func (u *UI) openMonitor(callID string, line *app.MonitorSession) {
	m := &monitorWindow{line: line}
	m.view = NewMonitorView(line, u.run, u.opts.Now)
	m.win = u.app.NewWindow(m.view.Title())
	m.win.SetContent(m.view.Content)
	m.win.Resize(fyne.NewSize(560, 460))
	var meters context.Context
	meters, m.stopMeters = context.WithCancel(u.ctx)
	m.view.OnLeft = func() {
		if m.gone {
			return
		}
		m.gone = true
		m.stopMeters()
		delete(u.monitors, callID)
		m.win.Close()
	}
	m.win.SetOnClosed(func() {
		if m.gone {
			return
		}
		// Closing the window is leaving the call.
		m.gone = true
		m.stopMeters()
		delete(u.monitors, callID)
		if !m.view.Ended() {
			u.run(func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				return line.Leave(ctx)
			}, func(error) {})
		}
	})
	u.monitors[callID] = m
	m.win.Show()
	u.every(meters, u.opts.Tick, func() {
		if m.view.Meters() {
			m.stopMeters() // the session is over: the meters stay at zero
		}
	})
}

// MonitorView returns the open monitoring window's view for a call (tests), or nil.
func (u *UI) MonitorView(callID string) *MonitorView {
	if m, ok := u.monitors[callID]; ok {
		return m.view
	}
	return nil
}

// ---- call details

func (u *UI) showDetails(c app.Call) {
	if d, ok := u.details[c.ID]; ok {
		d.view.Update(c)
		d.win.RequestFocus()
		return
	}
	user := u.session.User()
	var onMonitor func(app.Call)
	if user.Can("monitor") {
		onMonitor = u.monitorCall
	}
	d := &detailsWindow{view: NewDetails(user, c, onMonitor, u.opts.Now)}
	d.win = u.app.NewWindow("Call Details — " + agentName(c.Agent) + " → " + customerName(c.Customer))
	d.win.SetContent(d.view.Content)
	d.win.Resize(fyne.NewSize(560, 480))
	d.win.SetOnClosed(func() { delete(u.details, c.ID) })
	u.details[c.ID] = d
	d.win.Show()
	for _, live := range u.session.Calls() {
		if live.ID == c.ID {
			d.view.Update(live)
			return
		}
	}
	if c.State != "ended" {
		u.fetchDetails(c.ID)
	}
}

func (u *UI) fetchDetails(id string) {
	var c app.Call
	u.run(func() error {
		ctx, cancel := context.WithTimeout(u.ctx, 10*time.Second)
		defer cancel()
		var err error
		c, err = u.session.Client().Call(ctx, id)
		return err
	}, func(err error) {
		d, ok := u.details[id]
		if !ok {
			return
		}
		if err != nil {
			old := d.view.Call()
			old.State = "ended"
			old.Monitors = nil
			d.view.Update(old)
			return
		}
		d.view.Update(c)
	})
}

// DetailsView returns the open Call Details view of a call (tests), or nil.
func (u *UI) DetailsView(callID string) *Details {
	if d, ok := u.details[callID]; ok {
		return d.view
	}
	return nil
}

// ---- one's own calls

func (u *UI) syncOwnCalls() {
	for _, oc := range u.session.OwnCalls() {
		w, ok := u.calls[oc]
		if !ok {
			select {
			case <-oc.Done():
				continue // ended before we drew it, or its window has gone
			default:
			}
			w = u.openCall(oc)
		}
		if !w.notified && oc.Incoming() && oc.State() == "ringing" {
			w.notified = true
			if oc.Kind() == app.CallKindLive {
				u.app.SendNotification(fyne.NewNotification("Incoming live call", oc.Peer().Name+", a web visitor, is calling from the browser"))
			} else {
				u.app.SendNotification(fyne.NewNotification("Incoming call", customerName(oc.Peer())+" is calling"))
			}
			w.win.RequestFocus()
		}
		w.view.Refresh()
	}
}

func (u *UI) openCall(oc *app.OwnCall) *callWindow {
	w := &callWindow{view: NewCallView(oc, u.run, u.opts.Now)}
	w.win = u.app.NewWindow(w.view.Title())
	w.win.SetContent(w.view.Content)
	w.win.Resize(fyne.NewSize(520, 420))
	w.view.OnEnded = func() {
		// Leave "ENDED" up for a moment so the user sees what happened.
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			select {
			case <-time.After(2 * time.Second):
			case <-u.ctx.Done():
			}
			u.do(func() {
				if !w.gone {
					w.gone = true
					w.win.Close()
				}
				delete(u.calls, oc)
			})
		}()
	}
	w.win.SetOnClosed(func() {
		if w.gone {
			return
		}
		w.gone = true
		select {
		case <-oc.Done():
		default:
			u.run(func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				return oc.Hangup(ctx)
			}, func(error) {})
		}
	})
	u.calls[oc] = w
	w.win.Show()
	return w
}

// CallView returns the window view of one's own call (tests), or nil.
func (u *UI) CallView(oc *app.OwnCall) *CallView {
	if w, ok := u.calls[oc]; ok {
		return w.view
	}
	return nil
}
