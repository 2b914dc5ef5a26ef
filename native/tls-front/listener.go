package main

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"time"
)

// listenSpec is what Kindred asks for (JSON in a LISTEN frame). The key never touches
// argv or the disk on our side.
type listenSpec struct {
	Host string `json:"host"`
	Port int    `json:"port"`
	// "tls": TLS from the first byte; "starttls": plaintext until Kindred sends START_TLS
	Mode               string   `json:"mode"`
	Cert               string   `json:"cert"`
	Key                string   `json:"key"`
	ALPN               []string `json:"alpn"`
	HandshakeTimeoutMs int      `json:"handshakeTimeoutMs"`
}

type listener struct {
	id               uint32
	ln               net.Listener
	mode             string
	cfg              *tls.Config
	handshakeTimeout time.Duration
}

func (l *link) listen(id uint32, spec listenSpec) {
	if spec.Mode != "tls" && spec.Mode != "starttls" {
		l.listening(id, 0, errors.New("mode must be tls or starttls"))
		return
	}
	cert, err := tls.X509KeyPair([]byte(spec.Cert), []byte(spec.Key))
	if err != nil {
		l.listening(id, 0, err)
		return
	}
	// Keepalive (60 s) is set on every accepted socket by the listener itself, and Go's TCP
	// sockets have TCP_NODELAY already: no per-connection setsockopt calls for either.
	lc := net.ListenConfig{KeepAlive: 60 * time.Second}
	ln, err := lc.Listen(context.Background(), "tcp", net.JoinHostPort(spec.Host, strconv.Itoa(spec.Port)))
	if err != nil {
		l.listening(id, 0, err)
		return
	}
	timeout := time.Duration(spec.HandshakeTimeoutMs) * time.Millisecond
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	lst := &listener{
		id:   id,
		ln:   ln,
		mode: spec.Mode,
		cfg: &tls.Config{
			Certificates: []tls.Certificate{cert},
			MinVersion:   tls.VersionTLS12,
			NextProtos:   spec.ALPN,
		},
		handshakeTimeout: timeout,
	}
	l.mu.Lock()
	if old := l.listeners[id]; old != nil {
		old.ln.Close()
	}
	l.listeners[id] = lst
	l.mu.Unlock()
	l.listening(id, ln.Addr().(*net.TCPAddr).Port, nil)
	go l.acceptLoop(lst)
}

func (l *link) acceptLoop(lst *listener) {
	for {
		conn, err := lst.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and kin: back off a little instead of spinning
			time.Sleep(10 * time.Millisecond)
			continue
		}
		tcp, ok := conn.(*net.TCPConn)
		if !ok {
			conn.Close()
			continue
		}
		c, err := newClientConn(l, lst, tcp)
		if err != nil {
			tcp.Close()
			continue
		}
		l.add(c)
		go c.run()
	}
}
