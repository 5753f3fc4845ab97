package media

// SampleRing holds captured audio until a whole frame can be sent. When it is full the
// oldest audio makes room for the newest: a stalled sender loses the past, never the
// present. Not safe for concurrent use: its owner locks around it. Zero allocations.
type SampleRing struct {
	buf  []int16
	head int // index of the oldest sample
	n    int // samples held
}

// NewSampleRing holds up to samples samples.
func NewSampleRing(samples int) SampleRing { return SampleRing{buf: make([]int16, samples)} }

// Len is the number of samples held.
func (r *SampleRing) Len() int { return r.n }

// Push appends pcm, or as many zeros when silent (a muted microphone keeps its timing).
func (r *SampleRing) Push(pcm []int16, silent bool) {
	size := len(r.buf)
	if len(pcm) > size {
		pcm = pcm[len(pcm)-size:]
	}
	if over := r.n + len(pcm) - size; over > 0 {
		r.head = (r.head + over) % size
		r.n -= over
	}
	tail := (r.head + r.n) % size
	if silent {
		for i := range len(pcm) {
			r.buf[(tail+i)%size] = 0
		}
	} else {
		k := copy(r.buf[tail:], pcm)
		copy(r.buf, pcm[k:])
	}
	r.n += len(pcm)
}

// Take fills frame with the oldest audio and reports true, or reports false (frame
// untouched) when less than len(frame) samples are held.
func (r *SampleRing) Take(frame []int16) bool {
	if r.n < len(frame) {
		return false
	}
	size := len(r.buf)
	k := copy(frame, r.buf[r.head:min(size, r.head+len(frame))])
	copy(frame[k:], r.buf[:len(frame)-k])
	r.head = (r.head + len(frame)) % size
	r.n -= len(frame)
	return true
}
