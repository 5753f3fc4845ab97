// Package app is the softphone's core: the account, the typed API client, the event
// stream, audio devices, and the Session a logged-in user works through (calls list,
// monitoring, own calls). It has no UI: package ui draws what it says and sends intent
// back, and everything here is tested without a window.
package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/zalando/go-keyring"
)

// Account is what the login window remembers.
type Account struct {
	ServerURL string `json:"server_url"` // http://127.0.0.1:8080
	User      string `json:"user"`
	Password  string `json:"-"` // kept in the OS keyring when there is one, never in the file
}

// ErrNoKeyring says the password could not go to (or come from) the OS keyring: the
// account file never holds it, so the user types it again next time. LoadAccount and
// SaveAccount wrap it; the UI can show the sentence as a hint, not as a failure.
var ErrNoKeyring = errors.New("there is no usable password keyring on this computer, so the password is not remembered; you'll type it at each login")

const (
	keyringService = "ringside"
	keyringTimeout = 3 * time.Second
	accountFile    = "account.json"
)

// keyringUsable tells whether asking the OS keyring can work. On Linux the keyring is
// the Secret Service on the session D-Bus: without a session bus (headless CI, ssh)
// godbus would try to autolaunch one, so it is not asked at all. Tests replace it.
var keyringUsable = func() bool {
	if runtime.GOOS == "linux" || runtime.GOOS == "freebsd" || runtime.GOOS == "openbsd" {
		return os.Getenv("DBUS_SESSION_BUS_ADDRESS") != ""
	}
	return true
}

// AccountPath is where the account is kept: os.UserConfigDir()/ringside/account.json.
func AccountPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no config directory to remember the account in: %w", err)
	}
	return filepath.Join(dir, "ringside", accountFile), nil
}

// LoadAccount reads the remembered account and its password from the keyring. Nothing
// remembered yet is not an error: the zero Account comes back. When only the password
// is unavailable the account comes back with an empty Password and an error wrapping
// ErrNoKeyring.
func LoadAccount() (Account, error) {
	path, err := AccountPath()
	if err != nil {
		return Account{}, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Account{}, nil
	}
	if err != nil {
		return Account{}, fmt.Errorf("reading the remembered account: %w", err)
	}
	var a Account
	if err := json.Unmarshal(b, &a); err != nil {
		return Account{}, fmt.Errorf("the remembered account in %s is damaged (%v); log in again to replace it", path, err)
	}
	if a.User == "" {
		return a, nil
	}
	pw, err := keyringDo(func() (string, error) { return keyring.Get(keyringService, keyringUser(a)) })
	switch {
	case err == nil:
		a.Password = pw
	case errors.Is(err, keyring.ErrNotFound):
	default:
		return a, fmt.Errorf("%w (%v)", ErrNoKeyring, err)
	}
	return a, nil
}

// SaveAccount remembers a: server and user in the account file (mode 0600), the
// password in the OS keyring. Without a keyring the file is still written, without the
// password, and the error wraps ErrNoKeyring. An empty Password forgets the stored one.
func SaveAccount(a Account) error {
	path, err := AccountPath()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("remembering the account: %w", err)
	}
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("remembering the account: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("remembering the account: %w", err)
	}
	if a.User == "" {
		return nil
	}
	_, err = keyringDo(func() (string, error) {
		if a.Password == "" {
			err := keyring.Delete(keyringService, keyringUser(a))
			if errors.Is(err, keyring.ErrNotFound) {
				err = nil
			}
			return "", err
		}
		return "", keyring.Set(keyringService, keyringUser(a), a.Password)
	})
	if err != nil {
		return fmt.Errorf("%w (%v)", ErrNoKeyring, err)
	}
	return nil
}

// keyringUser names the keyring entry: one per user and server.
func keyringUser(a Account) string { return a.User + "@" + a.ServerURL }

var errKeyringUnavailable = errors.New("no D-Bus session for the Secret Service")

// keyringDo runs one keyring operation, giving up after keyringTimeout: a keyring that
// waits for an unlock prompt nobody answers must not hang the login window. The
// operation's goroutine finishes on its own.
func keyringDo(op func() (string, error)) (string, error) {
	if !keyringUsable() {
		return "", errKeyringUnavailable
	}
	type result struct {
		s   string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := op()
		ch <- result{s, err}
	}()
	t := time.NewTimer(keyringTimeout)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-t.C:
		return "", errors.New("the keyring did not answer")
	}
}
