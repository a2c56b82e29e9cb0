// A NATS client written with nats.go (the Go client library that nats-bench and the nats CLI
// use), for the broker's integration tests: it connects to -s, subscribes to -subj, publishes
// -n messages of -ms bytes, and exits 0 only when every message came back, in order.
// Built at test time from Debian's golang-github-nats-io-go-nats-dev sources (GOPATH mode).
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
)

func main() {
	url := flag.String("s", nats.DefaultURL, "server URL")
	n := flag.Int("n", 1000, "messages")
	size := flag.Int("ms", 128, "message size in bytes (at least 8)")
	subj := flag.String("subj", "go.client", "subject")
	wait := flag.Duration("wait", 20*time.Second, "longest wait for the messages")
	seed := flag.String("nkey", "", "file with a user nkey seed to sign the server's nonce with")
	flag.Parse()
	if *size < 8 {
		*size = 8
	}

	opts := []nats.Option{nats.Timeout(5 * time.Second), nats.Name("go-client")}
	if *seed != "" {
		opt, err := nats.NkeyOptionFromSeed(*seed)
		if err != nil {
			fmt.Fprintln(os.Stderr, "nkey:", err)
			os.Exit(1)
		}
		opts = append(opts, opt)
	}
	nc, err := nats.Connect(*url, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "connect:", err)
		os.Exit(1)
	}
	defer nc.Close()

	done := make(chan error, 1)
	next := uint64(0)
	_, err = nc.Subscribe(*subj, func(m *nats.Msg) {
		if len(m.Data) != *size {
			done <- fmt.Errorf("message %d: %d bytes, want %d", next, len(m.Data), *size)
			return
		}
		if seq := binary.BigEndian.Uint64(m.Data); seq != next {
			done <- fmt.Errorf("message %d arrived as number %d", seq, next)
			return
		}
		next++
		if next == uint64(*n) {
			done <- nil
		}
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "subscribe:", err)
		os.Exit(1)
	}
	if err := nc.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "flush:", err)
		os.Exit(1)
	}
	payload := make([]byte, *size)
	for i := 0; i < *n; i++ {
		binary.BigEndian.PutUint64(payload, uint64(i))
		if err := nc.Publish(*subj, payload); err != nil {
			fmt.Fprintln(os.Stderr, "publish:", err)
			os.Exit(1)
		}
	}
	if err := nc.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "flush:", err)
		os.Exit(1)
	}
	select {
	case err := <-done:
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	case <-time.After(*wait):
		fmt.Fprintf(os.Stderr, "timeout: %d of %d messages\n", next, *n)
		os.Exit(1)
	}
	fmt.Printf("received %d/%d from %s (server %s)\n", *n, *n, nc.ConnectedUrl(), nc.ConnectedServerId())
}
