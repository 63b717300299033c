package api

import "net/http"

// Status is the service status.
type Status struct {
	Status string `json:"status"`
}

func (s *Server) status(c *call) error { return c.json(http.StatusOK, Status{Status: "ok"}) }
