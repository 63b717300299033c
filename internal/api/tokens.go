package api

import (
	"net/http"

	"github.com/ubihooks/ubihooks"
)

// TokenDetail is an API token as admins list it (ubihooks extension): never its secret,
// nor its hash.
type TokenDetail struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Projects are the projects the token may use: its own and those it created.
	Projects     []string `json:"projects"`
	Admin        bool     `json:"admin"`
	CreationDate *string  `json:"creation_date"`
	ExpiryDate   *string  `json:"expiry_date"`
	LastUsed     *string  `json:"last_used"`
	RevokedDate  *string  `json:"revoked_date"`
}

func tokenDetail(t *ubihooks.Token) TokenDetail {
	d := TokenDetail{ID: t.ID, Name: t.Name, Projects: t.Projects, Admin: t.Admin, CreationDate: isoTime(t.CreatedAt),
		ExpiryDate: isoTime(t.ExpiresAt), LastUsed: isoTime(t.LastUsedAt), RevokedDate: isoTime(t.RevokedAt)}
	if d.Projects == nil {
		d.Projects = []string{}
	}
	return d
}

func (s *Server) tokensList(c *call) error {
	toks, err := s.svc.ListTokens(c.r.Context(), c.token, c.r.URL.Query().Get("project"))
	if err != nil {
		return err
	}
	out := make([]TokenDetail, 0, len(toks))
	for _, t := range toks {
		out = append(out, tokenDetail(t))
	}
	return c.json(http.StatusOK, out)
}

func (s *Server) tokensRevoke(c *call) error {
	if err := s.svc.RevokeToken(c.r.Context(), c.token, c.p["token_id"]); err != nil {
		return err
	}
	return c.noContent()
}
