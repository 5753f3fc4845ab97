package media

import (
	"slices"
	"testing"
)

// The ring hands out audio in order across its wrap, keeps the newest when it
// overflows, and writes silence for a muted microphone.
func TestSampleRing(t *testing.T) {
	r := NewSampleRing(8)
	frame := make([]int16, 3)
	r.Push([]int16{1, 2, 3, 4, 5}, false)
	if !r.Take(frame) || !slices.Equal(frame, []int16{1, 2, 3}) {
		t.Fatalf("first frame %v", frame)
	}
	r.Push([]int16{6, 7, 8, 9, 10}, false) // wraps
	r.Push([]int16{11, 12}, false)         // overflows: 4 is dropped
	if r.Len() != 8 {
		t.Fatalf("held %d, want 8", r.Len())
	}
	for _, want := range [][]int16{{5, 6, 7}, {8, 9, 10}} {
		if !r.Take(frame) || !slices.Equal(frame, want) {
			t.Fatalf("frame %v, want %v", frame, want)
		}
	}
	if r.Take(frame) {
		t.Fatal("took a frame from two samples")
	}
	r.Push([]int16{13, 14}, true)
	if !r.Take(frame) || !slices.Equal(frame, []int16{11, 12, 0}) {
		t.Fatalf("muted frame %v, want silence after 11, 12", frame)
	}
	if n := testing.AllocsPerRun(100, func() { r.Push(frame, false); r.Take(frame) }); n != 0 {
		t.Errorf("%v allocations per push and take", n)
	}
}
