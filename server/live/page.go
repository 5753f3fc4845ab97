package live

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"strings"
	"unicode/utf8"

	"ringside/server/store"
)

//go:embed page.html
var pageHTML string

// page is the call page: plain HTML, inline CSS and JS, nothing fetched from elsewhere.
var page = template.Must(template.New("live").Parse(pageHTML))

type pageData struct {
	Title     string
	AgentName string
	Initial   string
	Ext       string
	WSPath    string
	Nonce     string
}

// servePage is GET /live/{ext}: the page a visitor calls the agent from.
func (s *Server) servePage(w http.ResponseWriter, r *http.Request) {
	ext := r.PathValue("ext")
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	d := pageData{Ext: ext, WSPath: "/live/" + ext + "/ws", Nonce: base64.RawStdEncoding.EncodeToString(nonce[:])}
	ctx, cancel := storeCtx()
	agent, err := s.cfg.Store.UserByExt(ctx, ext)
	cancel()
	name, status := "page", http.StatusOK
	switch {
	case errors.Is(err, store.ErrNotFound):
		name, status, d.Title = "notfound", http.StatusNotFound, "No such agent"
	case err != nil:
		s.log.Error("live page: reading agent", "ext", ext, "err", err)
		http.Error(w, "the server could not look up the agent; try again in a moment", http.StatusInternalServerError)
		return
	default:
		d.AgentName, d.Title = agent.Name, "Call "+agent.Name
		if r, _ := utf8.DecodeRuneInString(agent.Name); r != utf8.RuneError {
			d.Initial = strings.ToUpper(string(r))
		}
	}
	var buf bytes.Buffer
	if err := page.ExecuteTemplate(&buf, name, d); err != nil {
		s.log.Error("live page", "err", err)
		http.Error(w, "the page could not be made; try again", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	// Only this page's own inline script and style run, and it talks only to this server.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+d.Nonce+"'; style-src 'nonce-"+d.Nonce+
		"'; connect-src 'self'; media-src 'self' blob: mediastream:; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("Permissions-Policy", "microphone=(self), camera=()")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}
