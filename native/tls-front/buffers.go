package main

import "sync"

// readSize holds a whole TLS record's plaintext (at most 2^14 bytes), so one tls.Conn.Read
// empties the record and crypto/tls keeps no plaintext between reads (see record.go).
const readSize = 16384

// Read buffers are borrowed only while bytes move: an idle connection holds none.
var bufPool = sync.Pool{New: func() any {
	b := make([]byte, headerLen+readSize)
	return &b
}}

func getBuf() *[]byte  { return bufPool.Get().(*[]byte) }
func putBuf(p *[]byte) { bufPool.Put(p) }
