package main

import (
	"encoding/binary"
	"net"
)

// recordConn is what crypto/tls reads the client through. It never returns bytes past the
// end of the current TLS record, so crypto/tls never holds a complete record it has not
// decrypted yet. With readSize buffers, every tls.Conn.Read then leaves crypto/tls empty,
// and "the socket is readable or prefix is not empty" is exactly "there is more to read":
// which is what lets an idle connection wait for readability without holding a buffer
// (clientConn.waitReadable).
//
// One socket read takes whatever has arrived (a record's header and body together, often
// the next records of the same flight too): what lies past the current record waits in
// prefix, a copy exactly that long, dropped once served. Reading header and body apart
// cost two system calls per record, a good part of a login's CPU in this process.
type recordConn struct {
	*net.TCPConn
	// bytes read from the socket and not yet given to crypto/tls: the ClientHello after
	// STARTTLS, or the records after the current one
	prefix []byte
	// a read error that came with bytes kept in prefix: returned once they are served
	err  error
	hdr  [5]byte
	hdrN int
	body int // bytes left in the current record
}

func (r *recordConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(r.prefix) > 0 {
		n := r.consume(r.prefix[:copy(p, r.prefix)])
		r.prefix = r.prefix[n:]
		if len(r.prefix) == 0 {
			r.prefix = nil
		}
		return n, nil
	}
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.TCPConn.Read(p)
	k := r.consume(p[:n])
	if k < n {
		r.prefix = append([]byte(nil), p[k:n]...)
		r.err = err
		return k, nil
	}
	return k, err
}

// consume advances through b as far as the end of the current record (header and body)
// and says how many of its bytes that is.
func (r *recordConn) consume(b []byte) int {
	k := 0
	for k < len(b) {
		if r.body > 0 {
			take := min(r.body, len(b)-k)
			r.body -= take
			k += take
			if r.body == 0 {
				return k
			}
			continue
		}
		take := copy(r.hdr[r.hdrN:], b[k:])
		r.hdrN += take
		k += take
		if r.hdrN == 5 {
			r.hdrN = 0
			r.body = int(binary.BigEndian.Uint16(r.hdr[3:5]))
			if r.body == 0 {
				return k
			}
		}
	}
	return k
}

func (r *recordConn) buffered() bool { return len(r.prefix) > 0 || r.err != nil }
