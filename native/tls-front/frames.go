package main

// The link protocol between Kindred and this process: one Unix-domain socket (a socketpair
// Kindred creates when it spawns us, passed as file descriptor 3) carries every client
// connection. Each frame is
//
//	u32 length (of what follows) | u8 type | u32 id | payload
//
// big-endian. The id is a listener id (LISTEN, UNLISTEN, LISTENING) or a connection id
// (everything else; we assign them, starting at 1). src/protocol/tls-front/frames.ts is the
// other half; the two lists must match.

import "encoding/binary"

const headerLen = 9

// Kindred -> front
const (
	fListen     = 1 // payload: JSON listenSpec
	fUnlisten   = 2
	fData       = 3 // bytes for the client
	fEnd        = 4 // write what is queued, then close
	fAbort      = 5 // close now
	fStartTLS   = 6 // XMPP STARTTLS: <proceed/> was sent, the next bytes from the client are a TLS handshake
	fPauseRead  = 7 // stop reading from the client (inbound backpressure)
	fResumeRead = 8
	// payload u32: Kindred consumed that many more bytes of this client's data. We read at
	// most `window` bytes ahead of it per client, so a flooding client is not read into
	// memory faster than Kindred can refuse it (a 10 MB stanza is cut off after ~256 KiB).
	fAckRead = 9
)

// front -> Kindred
const (
	fHello       = 20 // payload: JSON {version, pid}
	fListening   = 21 // payload: JSON {port} or {error}
	fOpen        = 22 // payload: u32 listener id, u16 remote port, remote IP (text)
	fDataIn      = 23 // bytes from the client
	fClosed      = 24 // the connection is gone; no frame for this id follows
	fTLSUp       = 25 // STARTTLS handshake done
	// payload u32: that many more of the bytes Kindred sent for this client were written to it.
	// Kindred sends while fewer than `window` bytes are unacknowledged, then holds (and counts
	// what it holds against its send-buffer limit): so we queue at most window + one frame.
	fAck = 26
)

// window (both directions) must match WINDOW_BYTES in src/protocol/tls-front/frames.ts.
const window = 64 << 10

func putHeader(b []byte, typ byte, id uint32, payloadLen int) {
	binary.BigEndian.PutUint32(b[0:4], uint32(5+payloadLen))
	b[4] = typ
	binary.BigEndian.PutUint32(b[5:9], id)
}

// frame builds a small control frame (one allocation).
func frame(typ byte, id uint32, payload []byte) []byte {
	b := make([]byte, headerLen+len(payload))
	putHeader(b, typ, id, len(payload))
	copy(b[headerLen:], payload)
	return b
}
