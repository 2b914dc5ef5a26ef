package main

import (
	"bytes"
	"io"
	"net"
	"testing"
)

// tcpPair is a connected loopback TCP pair: what recordConn reads from, and the writer.
func tcpPair(t *testing.T) (*net.TCPConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	w, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(); r.Close() })
	return r.(*net.TCPConn), w
}

func record(typ byte, body []byte) []byte {
	return append([]byte{typ, 3, 3, byte(len(body) >> 8), byte(len(body))}, body...)
}

// Several records in one segment, and a prefix holding a record and a half: every Read
// ends at a record boundary, nothing is lost or reordered, and the rest waits in prefix.
func TestRecordConnStopsAtRecordBoundaries(t *testing.T) {
	raw, w := tcpPair(t)
	a := record(0x17, bytes.Repeat([]byte{'a'}, 300))
	b := record(0x17, bytes.Repeat([]byte{'b'}, 10))
	c := record(0x17, bytes.Repeat([]byte{'c'}, 700))
	d := record(0x15, []byte{1, 0})
	// the prefix ends inside b's header; the socket has the rest of b, then c and d at once
	prefix := append(append([]byte(nil), a...), b[:3]...)
	rest := append(append(append([]byte(nil), b[3:]...), c...), d...)
	if _, err := w.Write(rest); err != nil {
		t.Fatal(err)
	}
	w.Close()
	r := &recordConn{TCPConn: raw, prefix: prefix}
	want := [][]byte{a, b, c, d}
	var got []byte
	buf := make([]byte, 4096)
	for rec := 0; rec < len(want); rec++ {
		var one []byte
		for len(one) < len(want[rec]) {
			n, err := r.Read(buf)
			one = append(one, buf[:n]...)
			if err != nil {
				t.Fatalf("record %d: %v after %d bytes", rec, err, len(one))
			}
		}
		if !bytes.Equal(one, want[rec]) {
			t.Fatalf("record %d: got %d bytes, want %d (a read crossed a record boundary)", rec, len(one), len(want[rec]))
		}
		got = append(got, one...)
	}
	if r.buffered() && len(r.prefix) > 0 {
		t.Fatalf("%d bytes left in prefix after the last record", len(r.prefix))
	}
	if n, err := r.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("after the last record: %d, %v; want 0, EOF", n, err)
	}
}

// A record split over many tiny reads (a slow client) still comes out whole.
func TestRecordConnAcrossSmallReads(t *testing.T) {
	raw, w := tcpPair(t)
	a := record(0x17, bytes.Repeat([]byte{'x'}, 50))
	go func() {
		for i := range a {
			w.Write(a[i : i+1])
		}
	}()
	r := &recordConn{TCPConn: raw}
	var got []byte
	buf := make([]byte, 64)
	for len(got) < len(a) {
		n, err := r.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, a) {
		t.Fatalf("got %x, want %x", got, a)
	}
}
