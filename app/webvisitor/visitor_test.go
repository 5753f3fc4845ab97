package webvisitor

import (
	"slices"
	"testing"

	"ringside/media"
)

// Loop plays its samples over and over, across frame boundaries; empty is silence.
func TestLoopWrapsAround(t *testing.T) {
	pcm := []int16{1, 2, 3, 4, 5, 6, 7}
	v := Loop(pcm)
	var got []int16
	frame := make([]int16, media.FrameSamples)
	for range 3 {
		v.Fill(frame)
		got = append(got, frame...)
	}
	for i, s := range got {
		if want := pcm[i%len(pcm)]; s != want {
			t.Fatalf("sample %d = %d, want %d", i, s, want)
		}
	}
	frame[0] = 9
	Loop(nil).Fill(frame)
	if slices.ContainsFunc(frame, func(s int16) bool { return s != 0 }) {
		t.Error("an empty loop is not silent")
	}
}
