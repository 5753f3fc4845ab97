package api

import (
	"errors"
	"net/http"
	"strconv"

	"ringside/server/store"
)

type settingsBody struct {
	NotifyAgentOnMonitor *bool `json:"notify_agent_on_monitor"`
}

// getSettings is GET /api/settings (admin).
func (a *API) getSettings(w http.ResponseWriter, r *http.Request, u store.User) error {
	notify, err := store.NotifyAgentOnMonitor(r.Context(), a.cfg.Store)
	if err != nil {
		return err
	}
	a.setNotify(notify) // the store is the truth, should anything else have written it
	writeJSON(w, http.StatusOK, settingsBody{NotifyAgentOnMonitor: &notify})
	return nil
}

// putSettings is PUT /api/settings (admin). The event streams apply the new value at once.
func (a *API) putSettings(w http.ResponseWriter, r *http.Request, u store.User) error {
	var req settingsBody
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.NotifyAgentOnMonitor == nil {
		return errorf(http.StatusBadRequest, "send notify_agent_on_monitor as true or false")
	}
	notify := *req.NotifyAgentOnMonitor
	if err := a.cfg.Store.SetSetting(r.Context(), store.SettingNotifyAgentOnMonitor, strconv.FormatBool(notify)); err != nil {
		return err
	}
	a.setNotify(notify)
	a.log.Info("setting changed", "setting", store.SettingNotifyAgentOnMonitor, "value", notify, "by", u.Name)
	writeJSON(w, http.StatusOK, settingsBody{NotifyAgentOnMonitor: &notify})
	return nil
}

// listUsers is GET /api/users (admin): users sorted by name, with roles, permissions and teams.
func (a *API) listUsers(w http.ResponseWriter, r *http.Request, u store.User) error {
	users, err := a.cfg.Store.Users(r.Context())
	if err != nil {
		return err
	}
	for i := range users {
		users[i] = cleanUser(users[i])
	}
	writeJSON(w, http.StatusOK, nonNil(users))
	return nil
}

type userRequest struct {
	Name     string   `json:"name"`
	Ext      string   `json:"ext"`
	Password string   `json:"password"`
	Role     string   `json:"role"`
	Teams    []string `json:"teams"`
}

func (req userRequest) newUser() store.NewUser {
	return store.NewUser{Name: req.Name, Ext: req.Ext, Password: req.Password, Role: req.Role, Teams: req.Teams}
}

// addUser is POST /api/users (admin): 201 with the new user.
func (a *API) addUser(w http.ResponseWriter, r *http.Request, u store.User) error {
	var req userRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	nu, err := a.cfg.Store.AddUser(r.Context(), req.newUser())
	if err != nil {
		a.log.Warn("add user refused", "user", req.Name, "by", u.Name, "err", err)
		return userError(err)
	}
	a.log.Info("user added", "user", nu.Name, "ext", nu.Ext, "role", nu.Role, "by", u.Name)
	writeJSON(w, http.StatusCreated, cleanUser(nu))
	return nil
}

// updateUser is PUT /api/users/{name} (admin). Absent fields keep their values; "teams": []
// clears the teams. A new extension needs the password too (the SIP digest hashes it).
func (a *API) updateUser(w http.ResponseWriter, r *http.Request, u store.User) error {
	var req userRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	nu, err := a.cfg.Store.UpdateUser(r.Context(), r.PathValue("name"), req.newUser())
	if err != nil {
		a.log.Warn("update user refused", "user", r.PathValue("name"), "by", u.Name, "err", err)
		return userError(err)
	}
	a.log.Info("user updated", "user", nu.Name, "ext", nu.Ext, "role", nu.Role, "by", u.Name)
	writeJSON(w, http.StatusOK, cleanUser(nu))
	return nil
}

// userError maps the store's answers to AddUser and UpdateUser: taken names and extensions
// are 409, unknown users 404, and anything else 400 with the store's message, which says
// what to fix ("extension "12a" must be digits only"). The store has no sentinel for its
// validation errors, so a database failure lands here too; it is logged by the caller.
func userError(err error) error {
	switch {
	case errors.Is(err, store.ErrExists):
		return errorf(http.StatusConflict, "%s; choose another", err.Error())
	case errors.Is(err, store.ErrNotFound):
		return errorf(http.StatusNotFound, "no such user; check the name")
	}
	return errorf(http.StatusBadRequest, "%s", err.Error())
}

func cleanUser(u store.User) store.User {
	u.Permissions = nonNil(u.Permissions)
	u.Teams = nonNil(u.Teams)
	return u
}
