package app

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/zalando/go-keyring"
)

func withKeyring(t *testing.T, usable bool) {
	t.Helper()
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	old := keyringUsable
	keyringUsable = func() bool { return usable }
	t.Cleanup(func() { keyringUsable = old })
}

func TestAccountWithKeyring(t *testing.T) {
	withKeyring(t, true)
	keyring.MockInit()
	if a, err := LoadAccount(); err != nil || a != (Account{}) {
		t.Fatalf("nothing saved yet: %+v, %v", a, err)
	}
	a := Account{ServerURL: "http://127.0.0.1:8080", User: "sam", Password: "s3cret-pw"}
	if err := SaveAccount(a); err != nil {
		t.Fatal(err)
	}
	path, _ := AccountPath()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "s3cret") {
		t.Errorf("the account file holds the password: %s", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("account file mode %v", fi.Mode())
	}
	got, err := LoadAccount()
	if err != nil || got != a {
		t.Errorf("LoadAccount = %+v, %v; want %+v", got, err, a)
	}
	a.Password = ""
	if err := SaveAccount(a); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadAccount(); err != nil || got.Password != "" {
		t.Errorf("after forgetting the password: %+v, %v", got, err)
	}
}

func TestAccountWithoutKeyring(t *testing.T) {
	withKeyring(t, false)
	a := Account{ServerURL: "http://127.0.0.1:8080", User: "sam", Password: "s3cret-pw"}
	err := SaveAccount(a)
	if !errors.Is(err, ErrNoKeyring) {
		t.Fatalf("SaveAccount without a keyring: %v, want ErrNoKeyring", err)
	}
	path, _ := AccountPath()
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), "s3cret") {
		t.Errorf("the account file holds the password: %s", b)
	}
	got, err := LoadAccount()
	if !errors.Is(err, ErrNoKeyring) {
		t.Errorf("LoadAccount error %v, want ErrNoKeyring", err)
	}
	if got.ServerURL != a.ServerURL || got.User != a.User || got.Password != "" {
		t.Errorf("LoadAccount = %+v", got)
	}
}

func TestAccountBrokenKeyring(t *testing.T) {
	withKeyring(t, true)
	keyring.MockInitWithError(errors.New("locked"))
	err := SaveAccount(Account{ServerURL: "http://x", User: "sam", Password: "pw"})
	if !errors.Is(err, ErrNoKeyring) {
		t.Errorf("SaveAccount with a failing keyring: %v", err)
	}
}
