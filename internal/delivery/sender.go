package delivery

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/outbound"
)

// sender makes attempts: it opens a delivery's protected headers, signs, sends one HTTP
// call bounded by the webhook's timeout, classifies and redacts what came back, and decides
// what follows by the retry policy. It holds no state of its own and is safe for
// concurrent use.
type sender struct {
	client      *http.Client
	openHeaders func([]ubihooks.Header) ([]ubihooks.Header, error)
	signerFunc  func(context.Context) (signer, error)
	userAgent   string
	retry       RetryPolicy
	owner       string
	now         func() time.Time
	logger      *slog.Logger
}

func newSender(cfg Config) sender {
	return sender{client: cfg.Client, openHeaders: cfg.OpenHeadersFunc, signerFunc: httpsigSigners(cfg.SignerFunc, cfg.NowFunc),
		userAgent: cfg.UserAgent, retry: cfg.Retry, owner: cfg.Owner, now: cfg.NowFunc, logger: cfg.Logger}
}

// attempt signs and sends d once with body, bounded by the webhook's timeout; ctx ending
// cuts it (a stop or a crash).
func (s *sender) attempt(ctx context.Context, d *ubihooks.Delivery, body []byte) outbound.Result {
	headers, err := s.openHeaders(d.Headers)
	if err != nil {
		return outbound.Result{ErrorClass: ubihooks.ClassOther, Error: "a protected header cannot be decrypted; the server's encryption key changed, so set the header again"}
	}
	sig, err := s.signerFunc(ctx)
	if err != nil {
		s.logger.Error("signing key unavailable", "err", err)
		return outbound.Result{ErrorClass: ubihooks.ClassOther, Error: "the server could not sign the webhook (signing key unavailable)"}
	}
	ctx, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, nil)
	if err != nil {
		return outbound.Result{ErrorClass: ubihooks.ClassOther, Error: "the webhook URL is not valid"}
	}
	for _, h := range headers {
		req.Header.Set(h.Key, h.Value)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.userAgent)
	// The event id doubles as an idempotency key: receivers can deduplicate on it, and it
	// lets net/http retry a POST that failed on a stale keep-alive connection before any
	// byte reached the receiver.
	req.Header.Set("Idempotency-Key", d.EventID)
	if err := sig.Sign(req, body); err != nil {
		return outbound.Result{ErrorClass: ubihooks.ClassOther, Error: "the server could not sign the webhook"}
	}
	resp, err := s.client.Do(req)
	return outbound.ClassifyRedacted(resp, err, s.now(), redactor(headers)).WithTimeout(d.Timeout)
}

// outcome is what an attempt of d that began at start, ended at end and came to res
// means for d: succeeded, pending again (due when the retry policy says) or failed.
func (s *sender) outcome(d *ubihooks.Delivery, res outbound.Result, start, end time.Time) ubihooks.Outcome {
	res.Duration = end.Sub(start)
	o := ubihooks.Outcome{DeliveryID: d.ID, WebhookID: d.WebhookID, Owner: s.owner, Attempt: ubihooks.Attempt{DeliveryID: d.ID,
		Number: d.Attempts + 1, StartedAt: start, Duration: res.Duration, StatusCode: res.StatusCode,
		ErrorClass: res.ErrorClass, Error: res.Error, ResponseBody: res.Body}}
	switch delay, retry := s.retry.Next(d.Attempts-d.RetryBase+1, res, d.Retry); {
	case res.OK():
		o.Status = ubihooks.DeliverySucceeded
	case retry:
		o.Status, o.NextAttemptAt = ubihooks.DeliveryPending, end.Add(delay)
	default:
		o.Status = ubihooks.DeliveryFailed
	}
	return o
}

// redactor hides protected header values in what is stored of an attempt: a receiver
// may echo them back.
func redactor(headers []ubihooks.Header) *outbound.Redactor {
	var values []string
	for _, h := range headers {
		if h.Protected {
			values = append(values, h.Value)
		}
	}
	return outbound.NewRedactor(values...)
}

// takeLocked takes the next waiting delivery that may be sent now — a send slot free, its
// host below its bound, and not too many outcomes waiting to be recorded — taking hosts in
// turn, and counts its send as started. e.mu is held.
func (e *Engine) takeLocked() (prepared, bool) {
	if e.closing || e.q.nWaiting == 0 || e.q.sending >= e.cfg.MaxInFlight ||
		e.held-e.q.nWaiting >= e.cfg.MaxInFlight+e.cfg.MaxUnrecorded {
		return prepared{}, false
	}
	p, ok := e.q.pop()
	if ok && e.q.perHost[p.d.Host] == 1 { // its host's only send
		e.backlogs.began(p.d.Host, e.cfg.NowFunc())
	}
	return p, ok
}

// takeAllLocked takes every waiting delivery that may be sent now. e.mu is held.
func (e *Engine) takeAllLocked() []prepared {
	var out []prepared
	for {
		p, ok := e.takeLocked()
		if !ok {
			return out
		}
		out = append(out, p)
	}
}

// startSends runs each delivery's send in a goroutine of its own, which goes on with the
// waiting deliveries that its slot lets start.
func (e *Engine) startSends(ps []prepared) {
	if len(ps) == 0 {
		return
	}
	e.sends.Add(len(ps))
	for _, p := range ps {
		go e.sendLoop(p)
	}
}

func (e *Engine) sendLoop(p prepared) {
	defer e.sends.Done()
	for {
		e.send(p.d, p.body)
		e.mu.Lock()
		next, ok := e.takeLocked()
		e.mu.Unlock()
		if !ok {
			return
		}
		p = next
	}
}

// send makes one attempt of d with body (its payload, shared read-only with the other
// deliveries of its event) and hands its outcome to the recorder. Its send slot is
// freed when the call ends; its hold when the recorder has recorded the outcome.
func (e *Engine) send(d *ubihooks.Delivery, body []byte) {
	start := e.cfg.NowFunc()
	if e.leaseEndsTooSoon(d, start) {
		e.handBack(d)
		return
	}
	res := e.sender.attempt(e.sendCtx, d, body)
	e.sent(d.Host, res.ErrorClass != ubihooks.ClassTimeout)
	if e.sendCtx.Err() != nil && res.ErrorClass != "" {
		// Cut by shutdown or a crash: not the receiver's fault, so no attempt is recorded.
		e.mu.Lock()
		e.released = append(e.released, d.ID)
		e.mu.Unlock()
		e.done(1)
		return
	}
	o := e.sender.outcome(d, res, start, e.cfg.NowFunc())
	if res.ErrorClass != "" {
		e.cfg.Logger.Info("delivery attempt failed", "delivery", d.ID, "webhook", d.WebhookID, "host", d.Host,
			"class", res.ErrorClass, "status", res.StatusCode, "next", o.Status)
	}
	e.recorder.add(o)
}

// leaseEndsTooSoon reports whether d's lease would end before an attempt begun at now and
// its record could: d waited that long for a send slot (a slow host, a stalled recorder).
// The rescuer may then hand d to another engine while this one sends it, and the receiver
// would get it twice. A lease too short for any attempt of d is sent anyway: handing it
// back would only make the next claim hand it back again.
func (e *Engine) leaseEndsTooSoon(d *ubihooks.Delivery, now time.Time) bool {
	need := d.Timeout + leaseMargin(e.cfg.Lease)
	return !d.LeaseExpiresAt.IsZero() && e.cfg.Lease >= need && d.LeaseExpiresAt.Sub(now) < need
}

// leaseMargin is the part of a lease kept, beyond the attempt's timeout, for signing and
// recording its outcome.
func leaseMargin(lease time.Duration) time.Duration { return min(lease/10, 10*time.Second) }

// handBack gives up d, whose send slot it had, unattempted: the claim loop releases its
// lease at once so that it is claimed again with a fresh one.
func (e *Engine) handBack(d *ubihooks.Delivery) {
	e.mu.Lock()
	e.expiring = append(e.expiring, d.ID)
	if e.q.sent(d.Host) {
		e.backlogs.idle(d.Host)
	}
	e.mu.Unlock()
	e.done(1)
	e.Notify()
}

// sent frees the send slots of a delivery whose HTTP call ended; answered tells whether
// the receiver answered (a timeout is no sign of progress).
func (e *Engine) sent(host string, answered bool) {
	e.mu.Lock()
	now := e.cfg.NowFunc()
	if answered {
		e.backlogs.answered(host, now)
	} else {
		e.backlogs.unanswered(host, now)
	}
	if e.q.sent(host) {
		e.backlogs.idle(host)
	}
	e.mu.Unlock()
	e.signalFreed()
}
