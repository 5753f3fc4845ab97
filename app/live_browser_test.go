package app

import (
	"context"
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browserHz is the tone the browser's fake microphone plays: distinct from the agent's
// 1000 Hz and no harmonic of it.
const browserHz = customerHz

// browserHeardDB is the level over which the browser's microphone counts as heard: the
// tone goes in at about -10.5 dB, and chromium's noise suppression takes 10-15 dB off a
// steady tone.
const browserHeardDB = -40

// writeToneWAV writes a 48 kHz 16-bit mono WAV of a tone at 0.3 of full scale, the
// fake microphone chromium loops.
func writeToneWAV(t *testing.T, hz float64, d time.Duration) string {
	t.Helper()
	const rate = 48000
	n := int(d.Seconds() * rate)
	data := make([]byte, 44+2*n)
	copy(data, "RIFF")
	binary.LittleEndian.PutUint32(data[4:], uint32(36+2*n))
	copy(data[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(data[16:], 16)
	binary.LittleEndian.PutUint16(data[20:], 1) // PCM
	binary.LittleEndian.PutUint16(data[22:], 1) // mono
	binary.LittleEndian.PutUint32(data[24:], rate)
	binary.LittleEndian.PutUint32(data[28:], 2*rate)
	binary.LittleEndian.PutUint16(data[32:], 2)
	binary.LittleEndian.PutUint16(data[34:], 16)
	copy(data[36:], "data")
	binary.LittleEndian.PutUint32(data[40:], uint32(2*n))
	for i := range n {
		v := int16(0.3 * math.MaxInt16 * math.Sin(2*math.Pi*hz*float64(i)/rate))
		binary.LittleEndian.PutUint16(data[44+2*i:], uint16(v))
	}
	path := filepath.Join(t.TempDir(), "tone.wav")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// chromium starts headless chromium with a fake microphone playing wav; the test skips
// when chromium is not installed (make test installs it).
func chromium(t *testing.T, wav string) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (apt-get install chromium; make test installs it): skipping the browser test")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests run as root in CI containers
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-file-for-fake-audio-capture", wav),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
		chromedp.WindowSize(480, 640),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return bctx
}

// recordRemoteJS records the call page's remote stream through WebAudio at 8 kHz for
// 1.2 s and returns the samples as 16-bit integers.
const recordRemoteJS = `(async () => {
  const ctx = new AudioContext({ sampleRate: 8000 });
  await ctx.resume();
  const src = ctx.createMediaStreamSource(window.ringside.remoteStream);
  const proc = ctx.createScriptProcessor(1024, 1, 1);
  const out = [];
  proc.onaudioprocess = (e) => {
    for (const x of e.inputBuffer.getChannelData(0)) out.push(Math.round(x * 32767));
  };
  src.connect(proc);
  proc.connect(ctx.destination);
  await new Promise((r) => setTimeout(r, 1200));
  proc.disconnect();
  src.disconnect();
  await ctx.close();
  return out;
})()`

// selectedLocalJS is the browser's end of its selected ICE candidate pair, "ip:port".
const selectedLocalJS = `(async () => {
  const stats = await window.ringside.pc.getStats();
  let pairId = "";
  stats.forEach((s) => { if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId; });
  if (!pairId) stats.forEach((s) => { if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pairId = s.id; });
  const pair = stats.get(pairId);
  if (!pair) return "";
  const local = stats.get(pair.localCandidateId);
  return (local.address || local.ip) + ":" + local.port;
})()`

// A real browser calls an agent from the call page: the agent's softphone core rings
// with a live call, answers, hears the browser's microphone tone, and the browser hears
// the agent's tone. The agent saw the browser's own DTLS fingerprint, the media path is
// browser ↔ agent on loopback, and the server's media counters stay still.
func TestLiveCallFromBrowser(t *testing.T) {
	wav := writeToneWAV(t, browserHz, 5*time.Second)
	bctx := chromium(t, wav)
	r := newRig(t)
	alice, aliceDev := r.loginLive("alice", "alice-pw", agentHz)
	before := r.mediaCounters()

	ctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(r.srv.URL()+"/live/1001"),
		chromedp.WaitVisible(chromedp.CSS("#call")),
		chromedp.SendKeys(chromedp.CSS("#name"), "Vera"),
	); err != nil {
		t.Fatalf("opening the call page: %v", err)
	}
	shot := filepath.Join(os.TempDir(), "ringside-live-call-page-idle.png")
	saveScreenshot(t, ctx, shot)

	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#call"))); err != nil {
		t.Fatal(err)
	}
	oc := waitRingingLive(t, alice)
	if p := oc.Peer(); p.Name != "Vera" {
		t.Errorf("the softphone shows %q calling, want Vera", p.Name)
	}
	if err := oc.Answer(tctx(t, 15*time.Second)); err != nil {
		t.Fatalf("answer: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[string](`window.ringside.pc && window.ringside.pc.connectionState === "connected" && window.ringside.state`, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		page, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#status")))
		t.Fatalf("the browser did not connect (page says %q): %v", page, err)
	}
	waitFor(t, alice, 10*time.Second, "the live call connected", func() bool {
		info, _ := oc.LiveInfo()
		return info.Connection == "connected" && info.Remote.IsValid()
	})

	lv := heard(t, aliceDev)
	t.Logf("agent hears: %.1f dB at %d Hz (browser), %.1f dB at %d Hz (own)", lv[browserHz], browserHz, lv[agentHz], agentHz)
	// The page asks for the microphone with the browser's usual processing on: noise
	// suppression takes the steady tone for noise and lowers it by 10-15 dB. It is still
	// plainly heard, and the agent's own tone does not come back.
	if lv[browserHz] < browserHeardDB {
		t.Errorf("the agent should hear the browser's %d Hz: level %.1f dB", browserHz, lv[browserHz])
	}
	if lv[agentHz] > lv[browserHz]-40 {
		t.Errorf("the agent hears its own %d Hz back at %.1f dB", agentHz, lv[agentHz])
	}

	samples, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](recordRemoteJS, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("recording in the browser: %v", err)
	}
	if len(samples) < 8000 {
		t.Fatalf("the browser recorded %d samples, want about 9600", len(samples))
	}
	pcm := make([]int16, 0, len(samples))
	for _, s := range samples[1600:] {
		pcm = append(pcm, int16(max(math.MinInt16, min(math.MaxInt16, s))))
	}
	bl := toneLevels(pcm)
	t.Logf("browser hears: %.1f dB at %d Hz (agent), %.1f dB at %d Hz (own)", bl[agentHz], agentHz, bl[browserHz], browserHz)
	expect(t, "browser", bl, agentHz)

	localSDP, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.ringside.pc.localDescription.sdp`))
	if err != nil {
		t.Fatal(err)
	}
	browserLocal, err := chromedp.Run(ctx, chromedp.Evaluate[string](selectedLocalJS, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	info, _ := oc.LiveInfo()
	t.Logf("live call: %+v; browser's end %s", info, browserLocal)
	// The browser offers every address it has; the agent keeps only loopback ones.
	offered, kept := strings.Count(localSDP, "a=candidate:"), strings.Count(loopbackOnly.filterOffer(localSDP), "a=candidate:")
	t.Logf("the browser offered %d candidates, %d on loopback", offered, kept)
	if kept == 0 {
		t.Errorf("the browser offered no loopback candidate:\n%s", localSDP)
	}
	fp := sdpFingerprint(localSDP)
	if fp == "" || !strings.EqualFold(info.RemoteFingerprint, fp) || !strings.EqualFold(info.RemoteCertFingerprint, fp) {
		t.Errorf("the agent saw fingerprint %q (offer) and %q (handshake); the browser's own is %q", info.RemoteFingerprint, info.RemoteCertFingerprint, fp)
	}
	if info.Codec != "opus" {
		t.Errorf("the agent sends %s to the browser, want opus", info.Codec)
	}
	if info.Remote.String() != browserLocal {
		t.Errorf("the agent sends to %v, the browser's end of the path is %s", info.Remote, browserLocal)
	}
	if !info.Local.Addr().IsLoopback() || !info.Remote.Addr().IsLoopback() {
		t.Errorf("the media path %v -> %v leaves loopback", info.Local, info.Remote)
	}
	for _, a := range []string{r.srv.SIPAddr, r.srv.HTTPAddr} {
		if info.Remote.String() == a {
			t.Errorf("the agent's media goes to the server at %s", a)
		}
	}
	if after := r.mediaCounters(); after != before {
		t.Errorf("the server's media counters moved during the live call:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	saveScreenshot(t, ctx, filepath.Join(os.TempDir(), "ringside-live-call-page.png"))

	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#hangup"))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-oc.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the agent's call did not end after the browser hung up")
	}
	if got := oc.EndReason(); got != "the other side hung up" {
		t.Errorf("end reason %q", got)
	}
}

func saveScreenshot(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the call page: %s", path)
}
