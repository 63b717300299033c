package delivery

import "github.com/ubihooks/ubihooks"

// prepared is a claimed delivery and its payload, ready to send.
type prepared struct {
	d    *ubihooks.Delivery
	body []byte
}

// hostQueue holds the deliveries that wait for a send slot, by destination (host:port), and
// counts the places each host takes: its sends in progress, its waiting deliveries and the
// places reserved for deliveries being emitted (see Engine.Take). Hosts take turns (round
// robin), so that one host's backlog does not hold back the others', and each host is
// bounded: at most maxPerHost sends, at most hostCap places in all.
//
// It knows none of the engine's other bounds (free send slots, outcomes waiting to be
// recorded): the engine checks those before it takes from the queue. It is not safe for
// concurrent use; the engine's mutex guards it.
type hostQueue struct {
	maxPerHost int // sends in progress per host
	hostCap    int // places per host: sending, waiting and reserved

	waiting   map[string][]prepared // host → deliveries waiting for a send slot, oldest first
	hosts     []string              // hosts with waiting deliveries, in turn
	nWaiting  int                   // deliveries in waiting
	perHost   map[string]int        // host → sends in progress
	sending   int                   // sends in progress
	reserved  map[string]int        // host → places reserved
	nReserved int                   // places in reserved
}

func newHostQueue(maxPerHost, hostCap int) hostQueue {
	return hostQueue{maxPerHost: maxPerHost, hostCap: hostCap,
		waiting: map[string][]prepared{}, perHost: map[string]int{}, reserved: map[string]int{}}
}

// places is how many places are taken over all hosts: sending, waiting and reserved.
func (q *hostQueue) places() int { return q.sending + q.nWaiting + q.nReserved }

// load is how many places host takes.
func (q *hostQueue) load(host string) int {
	return q.perHost[host] + len(q.waiting[host]) + q.reserved[host]
}

// full reports whether host takes all the places it may.
func (q *hostQueue) full(host string) bool { return q.load(host) >= q.hostCap }

// push adds p behind the waiting deliveries of its host, unless the host is full.
func (q *hostQueue) push(p prepared) bool {
	h := p.d.Host
	if q.full(h) {
		return false
	}
	if len(q.waiting[h]) == 0 {
		q.hosts = append(q.hosts, h)
	}
	q.waiting[h] = append(q.waiting[h], p)
	q.nWaiting++
	return true
}

// pop takes the oldest waiting delivery of the first host in turn that has a free send
// slot, counts its send as started, and moves the host behind the others.
func (q *hostQueue) pop() (prepared, bool) {
	for i, h := range q.hosts {
		if q.perHost[h] >= q.maxPerHost {
			continue
		}
		w := q.waiting[h]
		p := w[0]
		rest := append(q.hosts[:i:i], q.hosts[i+1:]...)
		if len(w) == 1 {
			delete(q.waiting, h)
			q.hosts = rest
		} else {
			q.waiting[h] = w[1:]
			q.hosts = append(rest, h) // its next one after the other hosts'
		}
		q.nWaiting--
		q.perHost[h]++
		q.sending++
		return p, true
	}
	return prepared{}, false
}

// sent counts the end of a send to host. It reports whether host has no send in progress
// left.
func (q *hostQueue) sent(host string) (idle bool) {
	q.sending--
	if q.perHost[host]--; q.perHost[host] <= 0 {
		delete(q.perHost, host)
		return true
	}
	return false
}

// reserve takes a place for a delivery to host that is being emitted; the caller checks
// that the host is not full.
func (q *hostQueue) reserve(host string) {
	q.reserved[host]++
	q.nReserved++
}

// unreserve gives back a place that reserve took.
func (q *hostQueue) unreserve(host string) {
	if q.reserved[host]--; q.reserved[host] <= 0 {
		delete(q.reserved, host)
	}
	q.nReserved--
}

// drain removes every waiting delivery and returns them.
func (q *hostQueue) drain() []prepared {
	var out []prepared
	for h, w := range q.waiting {
		out = append(out, w...)
		delete(q.waiting, h)
	}
	q.hosts, q.nWaiting = nil, 0
	return out
}

// saturated returns the hosts whose send slots are all taken.
func (q *hostQueue) saturated() []string {
	var hs []string
	for h, n := range q.perHost {
		if n >= q.maxPerHost {
			hs = append(hs, h)
		}
	}
	return hs
}

// fullSending returns the hosts that are sending and take all the places they may. Only
// sending hosts count: one whose deliveries all wait waits for the engine's send slots,
// and what a claim brings beyond its places is handed back (push refuses it).
func (q *hostQueue) fullSending() []string {
	var hs []string
	for h := range q.perHost {
		if q.full(h) {
			hs = append(hs, h)
		}
	}
	return hs
}
