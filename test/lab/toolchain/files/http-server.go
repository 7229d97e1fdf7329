// Command http-server: the lab's test image. It answers every GET with the pod's host name and the
// request path (so a test can tell which pod answered), and /healthz with "ok". Standard library only.
//
//	http-server              serve on $LISTEN (default :8080)
//	http-server get URL      the client the tests exec in a pod: GET URL (names resolved by Go's own
//	                         resolver from /etc/resolv.conf, search domains included), print the body,
//	                         exit 0 on a 2xx answer, 1 otherwise (the error on stderr)
package main

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"time"
)

func get(url string) int {
	c := &http.Client{Timeout: 10 * time.Second}
	r, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer r.Body.Close()
	if _, err := io.Copy(os.Stdout, r.Body); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if r.StatusCode/100 != 2 {
		fmt.Fprintf(os.Stderr, "%s: %s\n", url, r.Status)
		return 1
	}
	return 0
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "get" {
		os.Exit(get(os.Args[2]))
	}
	host, _ := os.Hostname()
	addr := ":8080"
	if a := os.Getenv("LISTEN"); a != "" {
		addr = a
	}
	http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hakube-http-server %s %s\n", host, r.URL.Path)
	})
	log.Printf("listening on %s", addr)
	log.Fatal(http.ListenAndServe(addr, nil))
}
