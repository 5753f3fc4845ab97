package transport

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"ringside/media"
	"ringside/media/dtlssrtp"
)

// Shared sockets. With a socket per leg, every leg costs the clock one receive and one send
// system call per frame, and those calls, not the mixing, are most of the server's CPU.
// With shared sockets each clock shard has sockets of its own, which its calls' legs open
// on: at every poll with frames due (up to one every 1.25 ms) it drains them (recvmmsg),
// and at the end sends what its rooms wrote, socket by socket (sendmmsg). A poll is then a
// handful of system calls however many legs it carries. The kernel stamps each datagram's
// arrival, so a frame drained later than it came is still timed by when it came.
//
// Off by default (server.Config.RTPMux): on the 2-core bench machine, at 500 whispered
// calls, they take about a fifth off the server's CPU; for small loads a socket per leg
// costs no more.
//
// Legs on a shared socket are told apart by the peer's address and port from its SDP: a
// datagram from an address no leg signalled is dropped, which is the same no-RTP-bleed rule
// a per-leg socket keeps. So a socket can hold only one leg per peer address; a peer that
// uses one address and port for two legs is given per-leg sockets where we learn it in time
// (its offer), and refused (ErrPeerShared) where we don't (its answer to our offer).

const (
	muxRxBatchLen = 64 // datagrams per receive call on a shared socket
	// muxMaxBatches bounds one drain of a shared socket (64 × 16 = 1,024 datagrams, against
	// a few dozen a poll in normal flow), as rxMaxBatches does for a leg's own socket.
	muxMaxBatches = 16
	muxTxBatchLen = 64      // datagrams per sendmmsg; a fuller poll takes more than one
	muxSockBuffer = 4 << 20 // bytes of socket buffer: many legs' frames of packets
	txBufSize     = 12 + 4*15 + 4 + 16 + media.MaxFramePayload + dtlssrtp.Overhead
)

// ErrPeerShared means a peer signalled, for a leg on a shared socket, the address and port
// another leg on that socket already uses: their packets could not be told apart.
var ErrPeerShared = errors.New("the peer's RTP address and port are already used by another call on this server: each call needs its own RTP port")

// MuxConfig turns on shared sockets.
type MuxConfig struct {
	Shards   int // clock shards; each gets its own sockets
	PerShard int // sockets per shard (default 8): a peer socket can pair with each once
}

// muxSock is one shared socket.
type muxSock struct {
	local netip.AddrPort
	v6    bool

	// rx makes drains exclusive (the legs' inbound state needs no other lock) and holds
	// the socket against close while one runs.
	rx  sync.Mutex
	rxb *rxBatch

	peersMu sync.RWMutex
	peers   map[netip.AddrPort]*Endpoint // by the peer's unmapped address
	npeers  atomic.Int32                 // len(peers): an idle socket isn't drained

	// tx guards the send batch, and the socket against close while a send runs.
	tx  sync.Mutex
	txb *txBatch
	// ticking is set while the socket's shard is between Receive and Flush: frames written
	// meanwhile wait in txb for its Flush. Outside a poll (or with no clock: tools, tests)
	// they go at once. Shared by the sockets of a shard.
	ticking *atomic.Int32

	sock *sock // nil once closed; changed under both rx and tx

	foreign atomic.Uint64 // datagrams from no leg's peer, dropped
}

func muxKey(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
}

// reserve binds peer to e on this socket; false when another endpoint holds it.
func (m *muxSock) reserve(e *Endpoint, peer netip.AddrPort) bool {
	k := muxKey(peer)
	m.peersMu.Lock()
	defer m.peersMu.Unlock()
	if o := m.peers[k]; o != nil && o != e {
		return false
	}
	m.peers[k] = e
	m.npeers.Store(int32(len(m.peers)))
	return true
}

// rebind moves e from the old peer to the new one.
func (m *muxSock) rebind(e *Endpoint, old, peer netip.AddrPort) error {
	k := muxKey(peer)
	m.peersMu.Lock()
	defer m.peersMu.Unlock()
	if e.closed.Load() {
		return net.ErrClosed
	}
	// Nothing comes from an unspecified address or port 0 (a held or refused stream):
	// such a peer takes no place on the socket.
	none := !peer.IsValid() || peer.Port() == 0 || peer.Addr().IsUnspecified()
	if o := m.peers[k]; !none && o != nil && o != e {
		return ErrPeerShared
	}
	if old.IsValid() {
		if ok := muxKey(old); m.peers[ok] == e {
			delete(m.peers, ok)
		}
	}
	if !none {
		m.peers[k] = e
	}
	m.npeers.Store(int32(len(m.peers)))
	return nil
}

// release forgets e. Once it returns no drain hands e another datagram.
func (m *muxSock) release(e *Endpoint) {
	m.peersMu.Lock()
	for k, o := range m.peers {
		if o == e {
			delete(m.peers, k)
		}
	}
	m.npeers.Store(int32(len(m.peers)))
	m.peersMu.Unlock()
}

func (m *muxSock) legs() int {
	m.peersMu.RLock()
	defer m.peersMu.RUnlock()
	return len(m.peers)
}

// drain takes everything queued, without waiting, to the legs it belongs to.
func (m *muxSock) drain() {
	m.rx.Lock()
	defer m.rx.Unlock()
	m.drainLocked()
}

func (m *muxSock) drainLocked() {
	for range muxMaxBatches {
		if m.sock == nil {
			return
		}
		n := m.sock.recv(m.rxb)
		if n == 0 {
			return
		}
		// One read lock for the batch: Configure and Close wait at most one batch.
		now := time.Now()
		m.peersMu.RLock()
		for i := range n {
			pkt, from := m.rxb.packet(i)
			if e := m.peers[muxKey(from)]; e != nil {
				e.handle(pkt, from, m.rxb.arrival(i, now))
			} else {
				m.foreign.Add(1)
			}
		}
		m.peersMu.RUnlock()
		if n < m.rxb.size() {
			return
		}
	}
}

// write sends or (inside its shard's poll) queues one datagram of e's.
func (m *muxSock) write(e *Endpoint, pkt []byte, p *peer) error {
	m.tx.Lock()
	defer m.tx.Unlock()
	if m.sock == nil {
		return net.ErrClosed
	}
	if m.ticking.Load() == 0 {
		err := m.sock.sendTo(pkt, p)
		if err == nil {
			e.Stats.Sent.Add(1)
		}
		return err
	}
	if m.txb.add(pkt, p, e) {
		m.sock.sendBatch(m.txb)
	}
	return nil
}

// sendNow sends one datagram at once (DTLS records: their timing is the handshake's).
func (m *muxSock) sendNow(pkt []byte, p *peer) error {
	m.tx.Lock()
	defer m.tx.Unlock()
	if m.sock == nil {
		return net.ErrClosed
	}
	return m.sock.sendTo(pkt, p)
}

func (m *muxSock) flush() {
	m.tx.Lock()
	if m.sock != nil && m.txb.n > 0 {
		m.sock.sendBatch(m.txb)
	}
	m.tx.Unlock()
}

func (m *muxSock) close() error {
	m.rx.Lock()
	m.tx.Lock()
	defer m.rx.Unlock()
	defer m.tx.Unlock()
	if m.sock == nil {
		return nil
	}
	err := m.sock.close()
	m.sock = nil
	return err
}

// MuxShard is one clock shard's shared sockets, as the clock drives them: Receive before
// the shard's rooms are serviced, Flush after (room.ShardIO). The shard's legs open on them.
type MuxShard struct {
	socks   []*muxSock
	ticking *atomic.Int32
	next    atomic.Uint32
}

// Receive drains the shard's sockets into their legs (skipping one a leg's SetMode is
// draining right then) and opens the poll: frames written until Flush are sent together.
func (s *MuxShard) Receive() {
	s.ticking.Add(1)
	for _, m := range s.socks {
		// A socket no leg signalled a peer on has nothing to give (strangers' packets
		// wait, or overflow its buffer): no system call for it.
		if m.npeers.Load() == 0 {
			continue
		}
		if m.rx.TryLock() {
			m.drainLocked()
			m.rx.Unlock()
		}
	}
}

// Flush sends what was written during the poll, one sendmmsg per socket that has any.
func (s *MuxShard) Flush() {
	for _, m := range s.socks {
		m.flush()
	}
	s.ticking.Add(-1)
}

// Foreign counts datagrams dropped on the shard's sockets because no leg signalled their
// source.
func (s *MuxShard) Foreign() uint64 {
	var n uint64
	for _, m := range s.socks {
		n += m.foreign.Load()
	}
	return n
}

// EnableMux binds cfg.Shards × cfg.PerShard shared sockets from the range. Endpoints then
// come from OpenFor, on their shard's sockets.
func (p *Ports) EnableMux(cfg MuxConfig) error {
	if cfg.PerShard <= 0 {
		cfg.PerShard = 8
	}
	shards := make([]*MuxShard, max(cfg.Shards, 1))
	for i := range shards {
		ticking := new(atomic.Int32)
		sh := &MuxShard{ticking: ticking}
		for range cfg.PerShard {
			s, local, err := p.bind()
			if err != nil {
				for _, o := range shards[:i+1] {
					if o != nil {
						for _, m := range o.socks {
							m.close()
						}
					}
				}
				return err
			}
			s.setBuffers(muxSockBuffer)
			sh.socks = append(sh.socks, &muxSock{
				local: local, v6: s.v6, sock: s,
				rxb: newBatch(muxRxBatchLen), txb: newTxBatch(muxTxBatchLen),
				peers: make(map[netip.AddrPort]*Endpoint), ticking: ticking,
			})
		}
		shards[i] = sh
	}
	p.mu.Lock()
	p.mux = shards
	p.mu.Unlock()
	return nil
}

// Shard is shard i's shared sockets for the clock to drive; nil without EnableMux.
func (p *Ports) Shard(i int) *MuxShard {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i < 0 || i >= len(p.mux) {
		return nil
	}
	return p.mux[i]
}

// ShardFor is the first shard, from first on, with a shared socket that no leg uses with
// peer: a new call whose caller offered from peer is best placed there. It is first when
// shared sockets are off or all are taken.
func (p *Ports) ShardFor(first int, peer netip.AddrPort) int {
	p.mu.Lock()
	shards := p.mux
	p.mu.Unlock()
	if len(shards) == 0 || !peer.IsValid() {
		return first
	}
	k := muxKey(peer)
	for i := range shards {
		sh := (first + i) % len(shards)
		for _, m := range shards[sh].socks {
			m.peersMu.RLock()
			taken := m.peers[k] != nil
			m.peersMu.RUnlock()
			if !taken {
				return sh
			}
		}
	}
	return first
}

// OpenFor opens an endpoint for a leg whose room runs on clock shard shard. peer is the
// address the peer offered, when it offered first (invalid when we offer): the leg goes on
// a shared socket of the shard that no other leg uses with that peer, or on a socket of its
// own when none is free. Without shared sockets it is Open.
func (p *Ports) OpenFor(shard int, peer netip.AddrPort) (*Endpoint, error) {
	sh := p.Shard(shard)
	if sh == nil {
		return p.Open()
	}
	n := len(sh.socks)
	start := int(sh.next.Add(1))
	if !peer.IsValid() {
		// We offer: the socket with the fewest legs, so each peer socket finds one it
		// doesn't use yet.
		m := sh.socks[start%n]
		for i := range n {
			if o := sh.socks[(start+i)%n]; o.npeers.Load() < m.npeers.Load() {
				m = o
			}
		}
		e := newEndpoint(m.local, m.v6)
		e.mux = m
		return e, nil
	}
	for i := range n {
		m := sh.socks[(start+i)%n]
		e := newEndpoint(m.local, m.v6)
		e.mux = m
		if m.reserve(e, peer) {
			return e, nil
		}
	}
	return p.Open()
}

// Close closes the shared sockets; endpoints on them are closed first by their owners.
func (p *Ports) Close() error {
	p.mu.Lock()
	shards := p.mux
	p.mux = nil
	p.mu.Unlock()
	var err error
	for _, sh := range shards {
		for _, m := range sh.socks {
			err = errors.Join(err, m.close())
		}
	}
	return err
}

// SharedSocket reports whether the endpoint is on a shared socket, drained by its clock
// shard rather than leg by leg.
func (e *Endpoint) SharedSocket() bool { return e.mux != nil }
