package simphone

import (
	"slices"
	"testing"
	"time"

	"ringside/media"
)

// A device that plays the periods the phone knows ahead (Lookahead) plays exactly what
// asking for each period plays: two calls' tones, frames arriving one by one, one phone
// asked every period and one that peeks and advances whenever it may. With the calls'
// frames arriving together the phone knows every other period; with the second call's
// half a frame later, each period begins a frame of one of them, and hardly any is known.
func TestLookaheadPlaysWhatPlaybackWould(t *testing.T) {
	for _, c := range []struct {
		name   string
		offset bool
	}{{"together", false}, {"half a frame apart", true}} {
		t.Run(c.name, func(t *testing.T) {
			ahead := testLookahead(t, c.offset)
			if !c.offset && ahead < 90 {
				t.Errorf("%d of 200 periods played ahead, want about half", ahead)
			}
			// (but as the second call starts: its first frame waits a period)
			if c.offset && ahead > 1 {
				t.Errorf("%d periods played ahead, where each began a frame", ahead)
			}
		})
	}
}

func testLookahead(t *testing.T, offset bool) (ahead int) {
	const period = 80
	type side struct {
		pa      *phoneAudio
		streams [2]*streamAudio
		out     []int16
	}
	mk := func() *side {
		s := &side{pa: &phoneAudio{}}
		for i := range s.streams {
			s.streams[i] = newStreamAudio()
			s.streams[i].epoch = time.Now()
			s.pa.streams = append(s.pa.streams, s.streams[i])
		}
		return s
	}
	asked, peeked := mk(), mk()
	tones := [2]*media.Tone{media.NewTone(440, 0.3), media.NewTone(1320, 0.3)}
	pcm := make([]int16, media.FrameSamples)
	payload := make([]byte, media.FrameSamples)
	buf, next := make([]int16, period), make([]int16, period)
	aheadFor := false
	for frame := range 100 {
		for p := range media.FrameSamples / period {
			for i, tone := range tones {
				if p != 0 && (!offset || i == 0) || p == 0 && offset && i == 1 {
					continue // frames come when a period begins: both calls', or the second's a period later
				}
				tone.Fill(pcm)
				media.PCMU.Encode(payload, pcm)
				h := media.RTPHeader{PayloadType: uint8(media.PCMU), Seq: uint16(frame), Timestamp: uint32(frame * media.FrameSamples)}
				now := time.Now()
				asked.streams[i].pushReceived(h, payload, now)
				peeked.streams[i].pushReceived(h, payload, now)
			}
			asked.pa.playback(buf)
			asked.out = append(asked.out, buf...)
			if aheadFor {
				peeked.pa.advance(period)
				peeked.out = append(peeked.out, next...)
				ahead++
			} else {
				peeked.pa.playback(buf)
				peeked.out = append(peeked.out, buf...)
			}
			aheadFor = !aheadFor && peeked.pa.peek(next)
		}
	}
	if i := slices.IndexFunc(asked.out, func(v int16) bool { return v != 0 }); i < 0 {
		t.Fatal("the phone played silence")
	}
	for i := range asked.out {
		if asked.out[i] != peeked.out[i] {
			t.Fatalf("sample %d: %d played ahead, %d when asked", i, peeked.out[i], asked.out[i])
		}
	}
	for _, hz := range []float64{440, 1320} {
		if db := media.ToneLevelDB(peeked.out[len(peeked.out)/2:], hz); db < -20 {
			t.Errorf("%v Hz played at %.1f dB", hz, db)
		}
	}
	t.Logf("%d of 200 periods played ahead", ahead)
	return ahead
}
