package ui

import (
	"context"
	"image/color"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"ringside/app"
)

// Preference keys for the chosen audio devices (used at the next sign-in).
const (
	prefCapture  = "audio.capture"
	prefPlayback = "audio.playback"
)

// SettingsBackend is what the settings view reads and writes; the main window fills it
// from the session's client. Admin entries may be nil for other users.
type SettingsBackend struct {
	Devices     func() (capture, playback []app.DeviceInfo, err error)
	Prefs       fyne.Preferences
	Settings    func(ctx context.Context) (app.Settings, error)
	SetSettings func(ctx context.Context, s app.Settings) error
	Users       func(ctx context.Context) ([]app.User, error)
	AddUser     func(ctx context.Context, u app.NewUser) (app.User, error)
}

// SettingsView: audio devices for everyone; for admins the switch that tells agents they
// are monitored, and the users.
type SettingsView struct {
	user    app.User
	backend SettingsBackend
	run     func(work func() error, then func(error))

	Capture   *widget.Select
	Playback  *widget.Select
	deviceIDs map[string]map[string]string
	loading   bool
	// Notify is nil for non-admins.
	Notify     *widget.Check
	notifyBusy bool
	users      *fyne.Container
	status     *widget.Label
	newName    *widget.Entry
	newExt     *widget.Entry
	newPass    *widget.Entry
	newRole    *widget.Select
	newTeams   *widget.Entry
	Content    fyne.CanvasObject
}

// NewSettingsView builds the view; call Load to fill it.
func NewSettingsView(user app.User, b SettingsBackend, run func(work func() error, then func(error))) *SettingsView {
	v := &SettingsView{user: user, backend: b, run: run, deviceIDs: map[string]map[string]string{}}
	v.Capture = widget.NewSelect(nil, func(s string) { v.pick(prefCapture, s) })
	v.Playback = widget.NewSelect(nil, func(s string) { v.pick(prefPlayback, s) })
	audioNote := widget.NewLabel("Changes apply the next time you sign in.")
	audioNote.Importance = widget.LowImportance
	parts := []fyne.CanvasObject{
		heading("Audio devices"),
		widget.NewForm(
			widget.NewFormItem("Microphone", v.Capture),
			widget.NewFormItem("Speaker / headset", v.Playback),
		),
		audioNote,
	}
	v.status = widget.NewLabel("")
	v.status.Importance = widget.WarningImportance
	v.status.Wrapping = fyne.TextWrapWord
	v.status.Hide()
	if user.Can("admin") && b.Settings != nil {
		v.Notify = widget.NewCheck("Tell agents when a supervisor is monitoring their call", v.setNotify)
		v.Notify.Disable()
		note := widget.NewLabel("When on, the agent sees \"This call is being monitored\" and \"Whisper on\" banners. The supervisor's name is never shown.")
		note.Wrapping = fyne.TextWrapWord
		note.Importance = widget.LowImportance

		v.users = container.NewVBox()
		v.newName, v.newExt, v.newPass, v.newTeams = widget.NewEntry(), widget.NewEntry(), widget.NewPasswordEntry(), widget.NewEntry()
		v.newName.SetPlaceHolder("name")
		v.newExt.SetPlaceHolder("extension")
		v.newPass.SetPlaceHolder("password")
		v.newTeams.SetPlaceHolder("teams, comma separated")
		v.newRole = widget.NewSelect([]string{"agent", "supervisor", "admin"}, nil)
		v.newRole.SetSelected("agent")
		add := widget.NewButtonWithIcon("Add user", theme.ContentAddIcon(), v.addUser)
		add.Importance = widget.HighImportance
		parts = append(parts,
			widget.NewSeparator(), heading("Monitoring"), v.Notify, note,
			widget.NewSeparator(), heading("Users"), v.users,
			container.NewGridWithColumns(5, v.newName, v.newExt, v.newPass, v.newRole, v.newTeams),
			container.NewHBox(add),
		)
	}
	parts = append(parts, v.status)
	v.Content = container.NewVScroll(container.NewPadded(container.NewVBox(parts...)))
	return v
}

func heading(s string) *widget.Label {
	l := widget.NewLabelWithStyle(s, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	l.SizeName = theme.SizeNameSubHeadingText
	return l
}

// Load fills the view: devices now, server settings and users in the background.
func (v *SettingsView) Load() {
	if v.backend.Devices != nil {
		capture, playback, err := v.backend.Devices()
		v.fillDevices(v.Capture, prefCapture, capture)
		v.fillDevices(v.Playback, prefPlayback, playback)
		if err != nil {
			v.fail("Audio devices: " + err.Error())
		}
	}
	if v.Notify == nil {
		return
	}
	var s app.Settings
	v.run(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		s, err = v.backend.Settings(ctx)
		return err
	}, func(err error) {
		if err != nil {
			v.fail("Settings: " + err.Error())
			return
		}
		v.notifyBusy = true
		v.Notify.SetChecked(s.NotifyAgentOnMonitor)
		v.notifyBusy = false
		v.Notify.Enable()
	})
	v.loadUsers()
}

func (v *SettingsView) loadUsers() {
	if v.backend.Users == nil {
		return
	}
	var users []app.User
	v.run(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		users, err = v.backend.Users(ctx)
		return err
	}, func(err error) {
		if err != nil {
			v.fail("Users: " + err.Error())
			return
		}
		objs := make([]fyne.CanvasObject, 0, len(users))
		for _, u := range users {
			teams := strings.Join(u.Teams, ", ")
			if teams == "" {
				teams = "all teams"
			}
			objs = append(objs, container.NewGridWithColumns(4,
				widget.NewLabelWithStyle(u.Name, fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
				widget.NewLabel("ext "+u.Ext),
				container.NewHBox(newBadge(upper(u.Role), roleColor(u.Role))),
				widget.NewLabel(teams)))
		}
		v.users.Objects = objs
		v.users.Refresh()
	})
}

func roleColor(role string) color.Color {
	switch role {
	case "admin":
		return colorLive
	case "supervisor":
		return colorMonitor
	}
	return colorHeld
}

func (v *SettingsView) setNotify(on bool) {
	if v.notifyBusy {
		return
	}
	v.Notify.Disable()
	v.run(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return v.backend.SetSettings(ctx, app.Settings{NotifyAgentOnMonitor: on})
	}, func(err error) {
		v.Notify.Enable()
		if err != nil {
			v.notifyBusy = true
			v.Notify.SetChecked(!on)
			v.notifyBusy = false
			v.fail("Could not save: " + err.Error())
		}
	})
}

func (v *SettingsView) addUser() {
	nu := app.NewUser{Name: strings.TrimSpace(v.newName.Text), Ext: strings.TrimSpace(v.newExt.Text),
		Password: v.newPass.Text, Role: v.newRole.Selected}
	for _, t := range strings.Split(v.newTeams.Text, ",") {
		if t = strings.TrimSpace(t); t != "" {
			nu.Teams = append(nu.Teams, t)
		}
	}
	if nu.Name == "" || nu.Ext == "" || nu.Password == "" {
		v.fail("A new user needs a name, an extension and a password.")
		return
	}
	v.run(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := v.backend.AddUser(ctx, nu)
		return err
	}, func(err error) {
		if err != nil {
			v.fail("Could not add " + nu.Name + ": " + err.Error())
			return
		}
		v.status.Hide()
		v.newName.SetText("")
		v.newExt.SetText("")
		v.newPass.SetText("")
		v.newTeams.SetText("")
		v.loadUsers()
	})
}

func (v *SettingsView) fail(msg string) {
	v.status.SetText(msg)
	v.status.Show()
}

func (v *SettingsView) pref(key string) string {
	if v.backend.Prefs == nil {
		return ""
	}
	return v.backend.Prefs.String(key)
}

// pick remembers a device by id (the select shows names).
func (v *SettingsView) pick(key, name string) {
	if v.backend.Prefs == nil || v.loading {
		return
	}
	v.backend.Prefs.SetString(key, v.deviceIDs[key][name])
}

const defaultDevice = "System default"

func (v *SettingsView) fillDevices(s *widget.Select, key string, devs []app.DeviceInfo) {
	chosen := v.pref(key)
	ids := map[string]string{defaultDevice: ""}
	opts := []string{defaultDevice}
	selected := defaultDevice
	for _, d := range devs {
		name := d.Name
		if d.Default {
			name += " (default)"
		}
		opts = append(opts, name)
		ids[name] = d.ID
		if chosen != "" && d.ID == chosen {
			selected = name
		}
	}
	v.deviceIDs[key] = ids
	s.Options = opts
	v.loading = true
	s.SetSelected(selected)
	v.loading = false
}
