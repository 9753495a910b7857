// Command gencerts writes a throwaway CA, a Temporal frontend certificate
// and an insuranceflow client certificate into a directory (see package
// tlscerts). `make test-cluster` runs it to start Temporal with mutual TLS.
//
//	go run ./tlscerts/gencerts -dir /tmp/certs -server-name temporal -hosts 127.0.0.1,localhost
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/insuranceflow/insuranceflow/tlscerts"
)

func main() {
	dir := flag.String("dir", "", "directory to write ca.pem, server.pem, server-key.pem, client.pem, client-key.pem into (required)")
	serverName := flag.String("server-name", "temporal", "DNS name the server certificate is issued to")
	clientName := flag.String("client-name", "insuranceflow", "common name of the client certificate")
	hosts := flag.String("hosts", "127.0.0.1,localhost", "more IP addresses and names for the server certificate, comma-separated")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "gencerts: -dir is required")
		os.Exit(2)
	}
	var hs []string
	for _, h := range strings.Split(*hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hs = append(hs, h)
		}
	}
	f, err := tlscerts.Generate(*dir, *serverName, *clientName, hs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gencerts:", err)
		os.Exit(1)
	}
	fmt.Printf("CA %s\nserver %s %s\nclient %s %s\n", f.CACert, f.ServerCert, f.ServerKey, f.ClientCert, f.ClientKey)
}
