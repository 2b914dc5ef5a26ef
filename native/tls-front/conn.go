package main

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// one write to the client: queued chunks are merged up to this (one TLS record)
const writeChunk = 16 << 10

// A client that sends the first byte of a TLS handshake on the STARTTLS port without
// Kindred having asked for STARTTLS is given this long before its bytes are relayed as
// plaintext (Kindred then ends the stream).
const startTLSWait = 10 * time.Second

// clientConn is one client connection. One goroutine (run) reads it; it parks in the poller
// with no buffer while the client is idle. A writer goroutine exists only while data queued
// for the client is being written.
type clientConn struct {
	id  uint32
	l   *link
	ln  *listener
	raw *net.TCPConn
	rc  syscall.RawConn
	rec *recordConn // once TLS started
	tc  *tls.Conn   // set once the handshake is done (under mu)

	mu          sync.Mutex
	q           [][]byte
	received    uint64 // bytes Kindred sent for this client
	written     uint64 // of those, written to the client
	acked       uint64 // of those, acknowledged to Kindred (fAck)
	writing     bool
	ending      bool
	dead        bool
	opened      bool // Kindred was told OPEN (so it must be told CLOSED)
	readPaused  bool
	inUnacked   uint64        // bytes sent to Kindred that it has not acknowledged (fAckRead)
	resumed     chan struct{} // closed on RESUME_READ, fAckRead or death, while the reader waits
	startTLS    bool
	plainLeft   int           // queued chunks from before START_TLS (the <proceed/>): still written in clear
	tlsWake     chan struct{} // closed on START_TLS or death, while the reader waits for it
	peek        [1]byte
}

func newClientConn(l *link, ln *listener, raw *net.TCPConn) (*clientConn, error) {
	rc, err := raw.SyscallConn()
	if err != nil {
		return nil, err
	}
	return &clientConn{l: l, ln: ln, raw: raw, rc: rc}, nil
}

func (c *clientConn) run() {
	if c.ln.mode == "tls" {
		// Kindred hears of a direct-TLS connection only once its handshake succeeded.
		if !c.handshake(nil) {
			c.finish()
			return
		}
		// A handshake grows a goroutine's stack to tens of KiB; the GC gives that back only
		// by halves. The idle connection is served by a fresh goroutine with a small stack.
		c.open()
		go c.readLoop()
		return
	}
	c.open()
	c.readLoop()
}

func (c *clientConn) readLoop() {
	handedOff := false
	defer func() {
		if !handedOff {
			c.finish()
		}
	}()
	for {
		if !c.waitUnpaused() || !c.waitReadable() {
			return
		}
		bp := getBuf()
		b := *bp
		var n int
		var err error
		c.mu.Lock()
		tc := c.tc
		c.mu.Unlock()
		if tc != nil {
			n, err = tc.Read(b[headerLen:])
		} else {
			n, err = c.raw.Read(b[headerLen:])
		}
		if n > 0 && tc == nil && c.ln.mode == "starttls" && b[headerLen] == 0x16 && c.awaitStartTLS() {
			// A TLS handshake record after our <proceed/>: hand-shake, starting with these bytes.
			prefix := append([]byte(nil), b[headerLen:headerLen+n]...)
			putBuf(bp)
			if !c.handshake(prefix) {
				return
			}
			c.l.send(frame(fTLSUp, c.id, nil))
			c.kickWriter()
			handedOff = true // a fresh goroutine, as in run()
			go c.readLoop()
			return
		}
		if n > 0 && !(tc == nil && c.startTLSRequested()) {
			c.mu.Lock()
			c.inUnacked += uint64(n)
			c.mu.Unlock()
			putHeader(b, fDataIn, c.id, n)
			c.l.sendPooled(b[:headerLen+n], bp)
		} else {
			// nothing, or plaintext after <starttls/> (RFC 6120 §5.4.3.3: it is dropped)
			putBuf(bp)
		}
		if err != nil {
			return
		}
	}
}

func (c *clientConn) open() {
	var addr [6]byte
	ip := ""
	if ra, ok := c.raw.RemoteAddr().(*net.TCPAddr); ok {
		binary.BigEndian.PutUint16(addr[4:6], uint16(ra.Port))
		ip = ra.IP.String()
	}
	binary.BigEndian.PutUint32(addr[0:4], c.ln.id)
	c.mu.Lock()
	c.opened = true
	c.mu.Unlock()
	c.l.send(frame(fOpen, c.id, append(addr[:], ip...)))
}

// handshake runs the server side of TLS on the raw connection, reading prefix first.
func (c *clientConn) handshake(prefix []byte) bool {
	rec := &recordConn{TCPConn: c.raw, prefix: prefix}
	tc := tls.Server(rec, c.ln.cfg)
	c.raw.SetDeadline(time.Now().Add(c.ln.handshakeTimeout))
	if err := tc.Handshake(); err != nil {
		return false
	}
	c.raw.SetDeadline(time.Time{})
	c.mu.Lock()
	c.rec = rec
	c.tc = tc
	c.mu.Unlock()
	return true
}

// waitReadable parks until the client sent something (or closed), holding no buffer.
func (c *clientConn) waitReadable() bool {
	if c.rec != nil && c.rec.buffered() {
		return true
	}
	err := c.rc.Read(func(fd uintptr) bool {
		_, _, e := syscall.Recvfrom(int(fd), c.peek[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return e != syscall.EAGAIN && e != syscall.EINTR
	})
	return err == nil
}

func (c *clientConn) waitUnpaused() bool {
	c.mu.Lock()
	for (c.readPaused || c.inUnacked >= window) && !c.dead {
		if c.resumed == nil {
			c.resumed = make(chan struct{})
		}
		ch := c.resumed
		c.mu.Unlock()
		<-ch
		c.mu.Lock()
	}
	dead := c.dead
	c.mu.Unlock()
	return !dead
}

// awaitStartTLS: the client began a TLS handshake on the STARTTLS port. True once Kindred
// asked for STARTTLS (it sent <proceed/>); false if it did not within startTLSWait.
func (c *clientConn) awaitStartTLS() bool {
	c.mu.Lock()
	if c.startTLS || c.dead {
		ok := !c.dead
		c.mu.Unlock()
		return ok
	}
	if c.tlsWake == nil {
		c.tlsWake = make(chan struct{})
	}
	ch := c.tlsWake
	c.mu.Unlock()
	t := time.NewTimer(startTLSWait)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.startTLS && !c.dead
}

func (c *clientConn) startTLSRequested() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.startTLS
}

func (c *clientConn) requestStartTLS() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ln.mode != "starttls" || c.tc != nil || c.startTLS {
		return
	}
	c.startTLS = true
	c.plainLeft = len(c.q)
	if c.tlsWake != nil {
		close(c.tlsWake)
		c.tlsWake = nil
	}
}

func (c *clientConn) pauseRead() {
	c.mu.Lock()
	c.readPaused = true
	c.mu.Unlock()
}

func (c *clientConn) resumeRead() {
	c.mu.Lock()
	c.readPaused = false
	c.wakeReaderLocked()
	c.mu.Unlock()
}

func (c *clientConn) ackRead(n uint32) {
	c.mu.Lock()
	if uint64(n) > c.inUnacked {
		n = uint32(c.inUnacked)
	}
	c.inUnacked -= uint64(n)
	c.wakeReaderLocked()
	c.mu.Unlock()
}

func (c *clientConn) wakeReaderLocked() {
	if c.resumed != nil {
		close(c.resumed)
		c.resumed = nil
	}
}

// writable: plaintext may go out before STARTTLS was asked for (including what was queued
// before the request: the <proceed/>), and nothing else until the handshake is done.
func (c *clientConn) writableLocked() bool {
	return !c.startTLS || c.tc != nil || c.plainLeft > 0
}

func (c *clientConn) enqueue(b []byte) {
	if len(b) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead || c.ending {
		return
	}
	c.q = append(c.q, b)
	c.received += uint64(len(b))
	c.startWriterLocked()
}

func (c *clientConn) kickWriter() {
	c.mu.Lock()
	c.startWriterLocked()
	c.mu.Unlock()
}

func (c *clientConn) startWriterLocked() {
	if !c.writing && !c.dead && c.writableLocked() && (len(c.q) > 0 || c.ending) {
		c.writing = true
		go c.writeLoop()
	}
}

func (c *clientConn) end() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead || c.ending {
		return
	}
	c.ending = true
	c.startWriterLocked()
}

// writeLoop writes the queue out, merging small chunks, and exits when it is empty.
func (c *clientConn) writeLoop() {
	var scratch *[]byte
	defer func() {
		if scratch != nil {
			putBuf(scratch)
		}
	}()
	for {
		c.mu.Lock()
		if c.dead || len(c.q) == 0 || !c.writableLocked() {
			c.writing = false
			ending := c.ending && len(c.q) == 0 && !c.dead
			c.mu.Unlock()
			if ending {
				c.closeGracefully()
			}
			return
		}
		var w io.Writer = c.raw
		if c.tc != nil {
			w = c.tc
		}
		limit := len(c.q)
		if c.startTLS && c.tc == nil {
			limit = c.plainLeft // only what came before START_TLS, in clear
		}
		out := c.q[0]
		taken := 1
		if limit > 1 && len(out) < writeChunk {
			if scratch == nil {
				scratch = getBuf()
			}
			buf := append((*scratch)[:0], out...)
			for taken < limit && len(buf)+len(c.q[taken]) <= writeChunk {
				buf = append(buf, c.q[taken]...)
				taken++
			}
			if taken > 1 {
				out = buf
			}
		}
		for i := 0; i < taken; i++ {
			c.q[i] = nil
		}
		c.q = c.q[taken:]
		if c.startTLS && c.tc == nil {
			c.plainLeft -= taken
		}
		if len(c.q) == 0 {
			c.q = nil // let the backing array go
		}
		c.mu.Unlock()

		_, err := w.Write(out)

		c.mu.Lock()
		c.written += uint64(len(out))
		var ack []byte
		// Kindred holds data once `window` bytes are unacknowledged: tell it what went out.
		// Below that it is not waiting, so small writes cost no acknowledgement each.
		if c.received-c.acked >= window && c.written > c.acked && !c.dead {
			var n [4]byte
			binary.BigEndian.PutUint32(n[:], uint32(c.written-c.acked))
			c.acked = c.written
			ack = frame(fAck, c.id, n[:])
		}
		c.mu.Unlock()
		if ack != nil {
			c.l.send(ack)
		}
		if err != nil {
			c.shutdown()
			c.mu.Lock()
			c.writing = false
			c.mu.Unlock()
			return
		}
	}
}

// closeGracefully: everything was written; say goodbye (TLS close_notify), half-close, and
// let the reader see the client's close. If the client never closes, Kindred aborts us.
func (c *clientConn) closeGracefully() {
	c.mu.Lock()
	tc := c.tc
	c.mu.Unlock()
	if tc != nil {
		tc.CloseWrite()
	}
	c.raw.CloseWrite()
	time.AfterFunc(5*time.Second, c.shutdown)
}

// shutdown closes the socket now; the reader notices and reports CLOSED.
func (c *clientConn) shutdown() {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return
	}
	c.dead = true
	c.q = nil
	if c.resumed != nil {
		close(c.resumed)
		c.resumed = nil
	}
	if c.tlsWake != nil {
		close(c.tlsWake)
		c.tlsWake = nil
	}
	c.mu.Unlock()
	c.raw.Close()
}

// finish runs when the reader stops: the connection is gone for good.
func (c *clientConn) finish() {
	c.shutdown()
	c.l.remove(c.id)
	c.mu.Lock()
	opened := c.opened
	c.mu.Unlock()
	if opened {
		c.l.send(frame(fClosed, c.id, nil))
	}
}
