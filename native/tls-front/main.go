// kindred-tls-front terminates TLS for Kindred's TCP listeners (the native protocol over TLS,
// XMPP with STARTTLS, XMPP with direct TLS) and relays the plaintext of every client
// connection to Kindred over one Unix-domain socket (file descriptor 3, a socketpair Kindred
// made when it started us).
//
// Why it exists: in Node, a TLS socket (node:tls) costs about 34 KiB per idle connection
// (OpenSSL's SSL object and its buffers plus the TLSWrap and stream state), ten times the rest
// of an idle Kindred session. Here an idle connection is a parked goroutine and a crypto/tls
// state, and read buffers are pooled: a connection holds one only while bytes are moving.
// Kindred supervises this process (src/protocol/tls-front/) and restarts it if it dies.
//
// Standard library only, so `go build` needs no network.
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"syscall"
)

const version = "1"

// stopProfile flushes the CPU profile, if one is being taken, before the process exits.
var stopProfile = func() {}

func exit(code int) {
	stopProfile()
	os.Exit(code)
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kindred-tls-front: "+format+"\n", args...)
	exit(1)
}

func main() {
	// Idle connections allocate nothing, so a tighter heap target costs little CPU and
	// keeps RSS close to the live heap. KINDRED_FRONT_GOGC overrides it (GOGC still wins if set).
	if os.Getenv("GOGC") == "" {
		gc := 50
		if v, err := strconv.Atoi(os.Getenv("KINDRED_FRONT_GOGC")); err == nil && v > 0 {
			gc = v
		}
		debug.SetGCPercent(gc)
	}
	// SIGUSR1: collect and return free memory to the OS now (for memory measurements)
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			debug.FreeOSMemory()
		}
	}()
	// KINDRED_FRONT_CPUPROFILE=FILE: a Go CPU profile of this process, written when Kindred
	// closes the link (for finding where a handshake's time goes; `go tool pprof FILE`)
	if path := os.Getenv("KINDRED_FRONT_CPUPROFILE"); path != "" {
		if out, err := os.Create(path); err == nil && pprof.StartCPUProfile(out) == nil {
			stopProfile = func() { pprof.StopCPUProfile(); out.Close() }
			// Kindred stops us with SIGTERM right after closing the link: flush first
			term := make(chan os.Signal, 1)
			signal.Notify(term, syscall.SIGTERM)
			go func() { <-term; exit(0) }()
		}
	}
	f := os.NewFile(3, "kindred-link")
	if f == nil {
		fatal("no link on fd 3: Kindred starts this program, it is not run by hand")
	}
	c, err := net.FileConn(f)
	if err != nil {
		fatal("fd 3 is not a socket: %v", err)
	}
	f.Close()
	l := newLink(c)
	hello, _ := json.Marshal(map[string]any{"version": version, "pid": os.Getpid()})
	l.send(frame(fHello, 0, hello))
	go l.writeLoop()
	l.readLoop()
}
