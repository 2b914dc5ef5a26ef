package main

import (
	"encoding/binary"
	"net"
)

// recordConn is what crypto/tls reads the client through. It never returns bytes past the
// end of the current TLS record, so crypto/tls never holds a complete record it has not
// decrypted yet. With readSize buffers, every tls.Conn.Read then leaves crypto/tls empty,
// and "the socket is readable" is exactly "there is more to read": which is what lets an
// idle connection wait for readability without holding a buffer (clientConn.waitReadable).
type recordConn struct {
	*net.TCPConn
	// bytes read from the socket before TLS started (the ClientHello after STARTTLS)
	prefix []byte
	hdr    [5]byte
	hdrN   int
	body   int // bytes left in the current record
}

func (r *recordConn) Read(p []byte) (int, error) {
	limit := r.body
	if limit == 0 {
		limit = 5 - r.hdrN
	}
	if len(p) > limit {
		p = p[:limit]
	}
	var n int
	var err error
	if len(r.prefix) > 0 {
		n = copy(p, r.prefix)
		r.prefix = r.prefix[n:]
		if len(r.prefix) == 0 {
			r.prefix = nil
		}
	} else {
		n, err = r.TCPConn.Read(p)
	}
	if r.body > 0 {
		r.body -= n
	} else {
		r.hdrN += copy(r.hdr[r.hdrN:], p[:n])
		if r.hdrN == 5 {
			r.body = int(binary.BigEndian.Uint16(r.hdr[3:5]))
			r.hdrN = 0
		}
	}
	return n, err
}

func (r *recordConn) buffered() bool { return len(r.prefix) > 0 }
