//go:build ignore

// fyne-overlay writes the `go build -overlay` file that builds the softphone with Fyne
// patched by third_party/fyne-patches (the event-driven GLFW loop, fonts loaded when
// needed; see its README), and prints the file's path. Run from the repository root:
//
//	go run scripts/fyne-overlay.go [-o bin/fyne-overlay.json]
//	go build -overlay=bin/fyne-overlay.json -tags no_emoji,migrated_fynedo -o bin/ringside ./cmd/ringside
//
// Go refuses overlays of files inside the module cache, so the overlay shows the build a
// Fyne module at bin/fyne-overlay/fyne (directories only on disk: cgo needs them; every
// file is mapped back to the module cache, the patched ones to third_party) and a go.mod
// that replaces fyne.io/fyne/v2 with it. Nothing is copied. It fails when the Fyne module
// in go.mod no longer has the files the patch was made from (upstream.sha256): after a Fyne
// upgrade the patch must be redone, not built stale. Plain `go build` builds stock Fyne.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

const (
	patchDir = "third_party/fyne-patches"
	fyneMod  = "fyne.io/fyne/v2"
)

func main() {
	out := flag.String("o", "bin/fyne-overlay.json", "the overlay file to write")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "fyne-overlay:", err)
		os.Exit(1)
	}
	fmt.Println(*out)
}

func run(out string) error {
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	list, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}} {{.Version}}", fyneMod).Output()
	if err != nil {
		return fmt.Errorf("go list -m %s: %w (go mod download first)", fyneMod, err)
	}
	upstream, version, _ := strings.Cut(strings.TrimSpace(string(list)), " ")
	if upstream == "" {
		return fmt.Errorf("%s is not downloaded (go mod download)", fyneMod)
	}
	checked, err := checkUpstream(upstream, version)
	if err != nil {
		return err
	}

	patch := filepath.Join(root, patchDir)
	dir := filepath.Dir(out)
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(root, dir)
	}
	virtual := filepath.Join(dir, "fyne-overlay", "fyne")
	replace := map[string]string{}
	err = filepath.WalkDir(upstream, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(upstream, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(virtual, rel), 0o755)
		}
		replace[filepath.Join(virtual, rel)] = path
		return nil
	})
	if err != nil {
		return err
	}
	err = filepath.WalkDir(filepath.Join(patch, "internal"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(patch, path)
		if _, ok := replace[filepath.Join(virtual, rel)]; ok && !checked[filepath.ToSlash(rel)] {
			return fmt.Errorf("%s replaces upstream %s, which has no checksum in upstream.sha256", path, rel)
		}
		replace[filepath.Join(virtual, rel)] = path
		return nil
	})
	if err != nil {
		return err
	}

	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return err
	}
	modfile := filepath.Join(dir, "fyne-overlay", "go.mod")
	gomod = fmt.Appendf(gomod, "\n// fyne-overlay: Fyne %s with %s\nreplace %s => %s\n", version, patchDir, fyneMod, virtual)
	if err := os.WriteFile(modfile, gomod, 0o644); err != nil {
		return err
	}
	replace[filepath.Join(root, "go.mod")] = modfile

	data, err := json.MarshalIndent(struct{ Replace map[string]string }{replace}, "", "\t")
	if err != nil {
		return err
	}
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

// checkUpstream verifies upstream.sha256 ("HEX  path" lines, paths in the Fyne module)
// and returns the paths it checked.
func checkUpstream(upstream, version string) (map[string]bool, error) {
	f, err := os.Open(filepath.Join(patchDir, "upstream.sha256"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	checked := map[string]bool{}
	var stale []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, rel, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			continue
		}
		data, err := os.ReadFile(filepath.Join(upstream, rel))
		if errors.Is(err, fs.ErrNotExist) {
			stale = append(stale, rel+" (gone)")
			continue
		} else if err != nil {
			return nil, err
		}
		h := sha256.Sum256(data)
		if hex.EncodeToString(h[:]) != sum {
			stale = append(stale, rel)
		}
		checked[rel] = true
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(stale) > 0 {
		return nil, fmt.Errorf("%s %s is not the Fyne %s patches (changed: %s); redo the patch against %s (see %s/README.md) or build without the overlay",
			fyneMod, version, patchDir, strings.Join(stale, ", "), version, patchDir)
	}
	return checked, nil
}
