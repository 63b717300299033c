package api

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/service"
)

// RuntimeRequest is a request handed to an external runtime, with the lease token it
// reports back with.
type RuntimeRequest struct {
	ID         string          `json:"id"`
	Deployment string          `json:"deployment"`
	Version    string          `json:"version"`
	Input      json.RawMessage `json:"input"`
	LeaseToken string          `json:"lease_token"`
	LeaseUntil *string         `json:"lease_until"`
	Timeout    int             `json:"timeout"`
}

// RuntimeReport is what an external runtime reports for a claimed request.
type RuntimeReport struct {
	LeaseToken   string          `json:"lease_token"`
	Status       string          `json:"status"`
	Result       json.RawMessage `json:"result"`
	ErrorMessage string          `json:"error_message"`
}

// runtimeClaim hands pending requests of a version without backend to an external worker.
func (s *Server) runtimeClaim(c *call) error {
	o, v, err := s.target(c)
	if err != nil {
		return err
	}
	if v.BackendURL != "" {
		return ubihooks.Errorf(ubihooks.EINVALID, "version %s runs on its backend_url; only versions without backend_url are claimed by external runtimes", v.Name)
	}
	limit, err := c.queryInt("limit", 1, 1, 100)
	if err != nil {
		return err
	}
	leaseS, err := c.queryInt("lease", 300, 10, 86400)
	if err != nil {
		return err
	}
	// Random per claim: the request id may come from the caller (X-Request-Id), and two
	// claims must never share a lease.
	nonce := make([]byte, 12)
	_, _ = rand.Read(nonce)
	token := "rt-" + c.token.ID + "-" + hex.EncodeToString(nonce)
	rs, err := s.svc.ClaimRequests(c.r.Context(), ubihooks.RequestClaim{Owner: token, Limit: limit, Lease: time.Duration(leaseS) * time.Second,
		VersionID: v.ID, External: true})
	if err != nil {
		return err
	}
	out := make([]RuntimeRequest, len(rs))
	for i, r := range rs {
		out[i] = RuntimeRequest{ID: r.ID, Deployment: o.Name, Version: v.Name, Input: r.Input, LeaseToken: token,
			LeaseUntil: isoTime(r.LeaseExpiresAt), Timeout: int(r.Timeout.Seconds())}
	}
	return c.json(http.StatusOK, out)
}

// runtimeReport records an external worker's result or error for a claimed request.
func (s *Server) runtimeReport(c *call) error {
	o, v, err := s.scope(c)
	if err != nil {
		return err
	}
	var in RuntimeReport
	if err := c.decodeLimit(&in, MaxRequestInputBytes); err != nil {
		return err
	}
	r, err := s.svc.ReportRequest(c.r.Context(), service.ReportRequestParams{Object: o, Version: versionName(v), RequestID: c.p["request_id"],
		LeaseToken: in.LeaseToken, Status: ubihooks.RequestStatus(in.Status), Result: in.Result, ErrorMessage: in.ErrorMessage})
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, requestDetail(r, true))
}
