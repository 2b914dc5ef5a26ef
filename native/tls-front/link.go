package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
)

// outFrame is one frame for Kindred; pool, when set, is the read buffer it lives in.
type outFrame struct {
	b    []byte
	pool *[]byte
}

// link is the one connection to Kindred: a writer goroutine batches frames from every
// client connection into few writes, and a reader goroutine dispatches Kindred's frames
// without ever blocking (data is queued per client connection).
type link struct {
	c   net.Conn
	out chan outFrame

	mu        sync.Mutex
	conns     map[uint32]*clientConn
	listeners map[uint32]*listener
	nextID    uint32
}

func newLink(c net.Conn) *link {
	return &link{
		c:         c,
		out:       make(chan outFrame, 1024),
		conns:     make(map[uint32]*clientConn),
		listeners: make(map[uint32]*listener),
	}
}

func (l *link) send(b []byte)                  { l.out <- outFrame{b: b} }
func (l *link) sendPooled(b []byte, p *[]byte) { l.out <- outFrame{b: b, pool: p} }

func (l *link) writeLoop() {
	bw := bufio.NewWriterSize(l.c, 64<<10)
	write := func(f outFrame) {
		_, err := bw.Write(f.b)
		if f.pool != nil {
			putBuf(f.pool)
		}
		if err != nil {
			fatal("writing to Kindred: %v", err)
		}
	}
	drain := func() {
		for {
			select {
			case f := <-l.out:
				write(f)
			default:
				return
			}
		}
	}
	for f := range l.out {
		write(f)
		// everything already waiting goes out with this one, in one flush; and one yield
		// first lets the other connections' goroutines that are ready to run add theirs
		// (during a burst of logins that halves the writes here and the reads in Kindred)
		drain()
		runtime.Gosched()
		drain()
		if err := bw.Flush(); err != nil {
			fatal("writing to Kindred: %v", err)
		}
	}
}

// maxLinkFrame bounds what Kindred may send in one frame (a sanity check on the stream).
const maxLinkFrame = 64 << 20

func (l *link) readLoop() {
	br := bufio.NewReaderSize(l.c, 64<<10)
	var hdr [headerLen]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			// Kindred closed the link (it stopped, or died): every client connection goes with us.
			exit(0)
		}
		n := binary.BigEndian.Uint32(hdr[0:4])
		if n < 5 || n > maxLinkFrame {
			fatal("bad frame length %d from Kindred", n)
		}
		payload := make([]byte, n-5) // exact size: it may sit in a client's queue a while
		if _, err := io.ReadFull(br, payload); err != nil {
			exit(0)
		}
		l.dispatch(hdr[4], binary.BigEndian.Uint32(hdr[5:9]), payload)
	}
}

func (l *link) conn(id uint32) *clientConn {
	l.mu.Lock()
	c := l.conns[id]
	l.mu.Unlock()
	return c
}

func (l *link) dispatch(typ byte, id uint32, payload []byte) {
	switch typ {
	case fListen:
		var spec listenSpec
		if err := json.Unmarshal(payload, &spec); err != nil {
			l.listening(id, 0, fmt.Errorf("bad listen spec: %v", err))
			return
		}
		l.listen(id, spec)
	case fUnlisten:
		l.mu.Lock()
		ln := l.listeners[id]
		delete(l.listeners, id)
		l.mu.Unlock()
		if ln != nil {
			ln.ln.Close()
		}
	default:
		c := l.conn(id)
		if c == nil {
			return // already closed: its CLOSED frame is on the way to Kindred
		}
		switch typ {
		case fData:
			c.enqueue(payload)
		case fEnd:
			c.end()
		case fAbort:
			c.shutdown()
		case fStartTLS:
			c.requestStartTLS()
		case fPauseRead:
			c.pauseRead()
		case fResumeRead:
			c.resumeRead()
		case fAckRead:
			if len(payload) == 4 {
				c.ackRead(binary.BigEndian.Uint32(payload))
			}
		}
	}
}

func (l *link) listening(id uint32, port int, err error) {
	msg := map[string]any{"port": port}
	if err != nil {
		msg = map[string]any{"error": err.Error()}
	}
	b, _ := json.Marshal(msg)
	l.send(frame(fListening, id, b))
}

func (l *link) add(c *clientConn) {
	l.mu.Lock()
	l.nextID++
	if l.nextID == 0 {
		l.nextID = 1
	}
	c.id = l.nextID
	l.conns[c.id] = c
	l.mu.Unlock()
}

func (l *link) remove(id uint32) {
	l.mu.Lock()
	delete(l.conns, id)
	l.mu.Unlock()
}
