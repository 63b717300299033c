// Command modelserver is a tiny inference server to use as a deployment version's
// backend_url: it answers POST {"x": <number>} with {"y": 2x}, and fails with a 500 for a
// negative x, so that both outcomes can be tried.
//
//	go run ./examples/modelserver -listen 127.0.0.1:9000
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:9000", "address to listen on")
	flag.Parse()
	http.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ X float64 }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, "send a JSON object like {\"x\": 21}", http.StatusBadRequest)
			return
		}
		if in.X < 0 {
			http.Error(w, "x must not be negative", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]float64{"y": 2 * in.X})
	})
	log.Printf("model server listening on http://%s", *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}
