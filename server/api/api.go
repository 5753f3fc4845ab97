// Package api is ringside-media's HTTP JSON API and its server-sent event stream: what the
// softphones read to list calls, show details and history, start monitoring, and administer
// users and settings.
//
// Every access rule is checked here, on the server, with the rules of package calls; the
// softphone only hides what this package would refuse. Above all, the agent of a call never
// learns who monitors it, and learns nothing at all while the setting
// notify-agent-on-monitor is off.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"ringside/server/calls"
	"ringside/server/events"
	"ringside/server/store"
)

// Defaults of Config and the fixed limits of the API.
const (
	DefaultTokenTTL = 12 * time.Hour

	maxBodyBytes    = 64 << 10
	pingInterval    = 15 * time.Second
	streamBuffer    = 256
	streamWriteWait = 30 * time.Second
)

// Config is what the API needs; Store, Calls and Events are required.
type Config struct {
	Store    store.Store
	Calls    calls.Registry
	Events   *events.Bus
	SIPHost  string        // host:port put in sip_uri, e.g. "127.0.0.1:5060"; empty: the HTTP host on port 5060
	TokenTTL time.Duration // lifetime of a login token; default 12h
	Logger   *slog.Logger  // default: discard
}

// API serves the HTTP JSON API and the event streams. It is an http.Handler.
type API struct {
	cfg      Config
	log      *slog.Logger
	mux      *http.ServeMux
	sessions *sessions
	throttle *loginThrottle
	now      func() time.Time

	// notify caches the setting notify-agent-on-monitor. It changes only through
	// PUT /api/settings, which updates it after the store has the new value.
	notify atomic.Bool
	// notifyChanged is closed, and replaced, when notify changes, so that the event
	// streams show or hide the agents' monitored and whisper flags at once.
	notifyMu      sync.Mutex
	notifyChanged chan struct{}

	pingEvery time.Duration

	mu      sync.Mutex // guards closed and the streams count against Close
	closed  bool
	done    chan struct{}
	streams sync.WaitGroup
}

// New returns the API over cfg. It reads the setting notify-agent-on-monitor here, takes
// changes through PUT /api/settings at once, and others (the command line) within
// notifyPoll. Close stops it.
func New(cfg Config) *API {
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &API{
		cfg:       cfg,
		log:       cfg.Logger,
		mux:       http.NewServeMux(),
		sessions:  newSessions(),
		throttle:  newLoginThrottle(),
		now:       time.Now,
		pingEvery: pingInterval,
		done:      make(chan struct{}),

		notifyChanged: make(chan struct{}),
	}
	notify, err := store.NotifyAgentOnMonitor(context.Background(), cfg.Store)
	if err != nil {
		a.log.Error("read setting; agents will be told when they are monitored",
			"setting", store.SettingNotifyAgentOnMonitor, "err", err)
	}
	a.notify.Store(notify)
	a.routes()
	a.streams.Add(1)
	go a.followNotify()
	return a
}

// notifyPoll is how often the setting is re-read, so `ringside-media setting set` on a
// running server (or another node) takes effect without a restart.
const notifyPoll = 2 * time.Second

func (a *API) followNotify() {
	defer a.streams.Done()
	t := time.NewTicker(notifyPoll)
	defer t.Stop()
	for {
		select {
		case <-a.done:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), notifyPoll)
			v, err := store.NotifyAgentOnMonitor(ctx, a.cfg.Store)
			cancel()
			if err == nil {
				a.setNotify(v)
			}
		}
	}
}

func (a *API) routes() {
	a.mux.HandleFunc("POST /api/login", a.handle(a.login))
	a.mux.HandleFunc("POST /api/logout", a.handle(a.authed(a.logout)))

	a.mux.HandleFunc("GET /api/calls", a.handle(a.authed(a.listCalls)))
	a.mux.HandleFunc("GET /api/calls/{id}", a.handle(a.authed(a.getCall)))
	a.mux.HandleFunc("POST /api/calls/{id}/monitor", a.handle(a.authed(a.monitorCall)))
	a.mux.HandleFunc("PUT /api/monitors/{id}", a.handle(a.authed(a.setMonitorMode)))
	a.mux.HandleFunc("DELETE /api/monitors/{id}", a.handle(a.authed(a.endMonitor)))
	a.mux.HandleFunc("GET /api/history", a.handle(a.authed(a.history)))
	a.mux.HandleFunc("GET /api/events", a.handle(a.authed(a.eventStream)))

	a.mux.HandleFunc("GET /api/settings", a.handle(a.authed(a.adminOnly(a.getSettings))))
	a.mux.HandleFunc("PUT /api/settings", a.handle(a.authed(a.adminOnly(a.putSettings))))
	a.mux.HandleFunc("GET /api/users", a.handle(a.authed(a.adminOnly(a.listUsers))))
	a.mux.HandleFunc("POST /api/users", a.handle(a.authed(a.adminOnly(a.addUser))))
	a.mux.HandleFunc("PUT /api/users/{name}", a.handle(a.authed(a.adminOnly(a.updateUser))))
}

// ServeHTTP routes r. Requests no route takes get a JSON 404 or 405 too.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, pattern := a.mux.Handler(r)
	if pattern == "" {
		// The mux's own 404 and 405 answers are plain text; keep its status and
		// Allow header but answer in JSON like every other error.
		h.ServeHTTP(&jsonErrorWriter{ResponseWriter: w}, r)
		return
	}
	a.mux.ServeHTTP(w, r)
}

// Close ends the open event streams and waits until their handlers have returned. New
// streams are refused afterwards; the rest of the API keeps answering.
func (a *API) Close() {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.done)
	}
	a.mu.Unlock()
	a.streams.Wait()
}

// setNotify caches the setting notify-agent-on-monitor and wakes the streams if it changed.
func (a *API) setNotify(v bool) {
	if a.notify.Swap(v) == v {
		return
	}
	a.notifyMu.Lock()
	close(a.notifyChanged)
	a.notifyChanged = make(chan struct{})
	a.notifyMu.Unlock()
}

// notifyWatch returns a channel closed at the next change of notify.
func (a *API) notifyWatch() <-chan struct{} {
	a.notifyMu.Lock()
	defer a.notifyMu.Unlock()
	return a.notifyChanged
}

// startStream registers an event stream unless the API is closed.
func (a *API) startStream() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	a.streams.Add(1)
	return true
}

// httpError is an error with the status and the sentence the user reads.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) *httpError {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

var (
	errLoginFirst     = errorf(http.StatusUnauthorized, "log in first: send the token from POST /api/login as Authorization: Bearer <token>")
	errSessionExpired = errorf(http.StatusUnauthorized, "your session has expired or was ended; log in again")
	errBadLogin       = errorf(http.StatusUnauthorized, "wrong user name or password")
	errAdminOnly      = errorf(http.StatusForbidden, "only an admin can do this; ask an admin")
	errNoCall         = errorf(http.StatusNotFound, "no such call; it may have ended, so refresh the call list")
	errNoMonitor      = errorf(http.StatusNotFound, "no such monitor session; it may have ended, so refresh the call")
	errShuttingDown   = errorf(http.StatusServiceUnavailable, "the server is shutting down; try again in a moment")
	errInternal       = errorf(http.StatusInternalServerError, "something went wrong on the server; try again, and if it persists ask an admin to check the server log")
)

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle turns a handler's error into a JSON answer: an *httpError as it says, anything
// else as a logged 500 that does not show internals to the user.
func (a *API) handle(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		var he *httpError
		if !errors.As(err, &he) {
			a.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			he = errInternal
		}
		if he.status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ringside"`)
		}
		writeJSON(w, he.status, errorBody{he.msg})
	}
}

type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(errorBody{errInternal.msg})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// decodeJSON reads r's body into v: one JSON value, at most maxBodyBytes, no unknown
// fields. Its errors say what to fix.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.Decode(&struct{}{}) != io.EOF {
			return errorf(http.StatusBadRequest, "the request body must be a single JSON object; remove what follows it")
		}
		return nil
	}
	var (
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		sizeErr   *http.MaxBytesError
	)
	switch {
	case errors.Is(err, io.EOF):
		return errorf(http.StatusBadRequest, "the request body is empty; send a JSON object")
	case errors.As(err, &sizeErr):
		return errorf(http.StatusRequestEntityTooLarge, "the request body is larger than %d KiB; send less", maxBodyBytes>>10)
	case errors.As(err, &syntaxErr):
		return errorf(http.StatusBadRequest, "the request body is not valid JSON (at byte %d); fix it and send it again", syntaxErr.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(http.StatusBadRequest, "the request body is cut short; send complete JSON")
	case errors.As(err, &typeErr):
		if typeErr.Field != "" {
			return errorf(http.StatusBadRequest, "field %q must be a JSON %s, not %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
		}
		return errorf(http.StatusBadRequest, "the request body must be a JSON object, not %s", typeErr.Value)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return errorf(http.StatusBadRequest, "the request body has an unknown field %s; remove it", name)
	}
	return errorf(http.StatusBadRequest, "the request body could not be read as JSON (%v); fix it and send it again", err)
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean (true or false)"
	case "slice", "array":
		return "array"
	case "struct", "map":
		return "object"
	}
	return "number"
}

// jsonErrorWriter rewrites the mux's plain-text 404 and 405 answers as JSON errors.
type jsonErrorWriter struct {
	http.ResponseWriter
	rewrote bool
}

func (w *jsonErrorWriter) WriteHeader(status int) {
	var msg string
	switch status {
	case http.StatusNotFound:
		msg = "no such API endpoint; check the path"
	case http.StatusMethodNotAllowed:
		msg = "this endpoint does not take that method; see the Allow header"
	default:
		w.ResponseWriter.WriteHeader(status)
		return
	}
	w.rewrote = true
	writeJSON(w.ResponseWriter, status, errorBody{msg})
}

func (w *jsonErrorWriter) Write(b []byte) (int, error) {
	if w.rewrote {
		return len(b), nil // the plain-text body the JSON replaced
	}
	return w.ResponseWriter.Write(b)
}
