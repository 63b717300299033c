package api

import (
	"net/http"

	"github.com/ubihooks/ubihooks"
)

// ProjectDetail is a project.
type ProjectDetail struct {
	ID                  string            `json:"id"`
	Name                string            `json:"name"`
	CreationDate        *string           `json:"creation_date"`
	OrganizationName    string            `json:"organization_name"`
	AdvancedPermissions bool              `json:"advanced_permissions"`
	Credits             *float64          `json:"credits"`
	Suspended           bool              `json:"suspended"`
	Labels              map[string]string `json:"labels"`
	CorsOrigins         []string          `json:"cors_origins"`
}

// ProjectCreate is the body that creates a project.
type ProjectCreate struct {
	Name             string `json:"name"`
	OrganizationName string `json:"organization_name"`
}

func projectDetail(p *ubihooks.Project) ProjectDetail {
	return ProjectDetail{ID: p.ID, Name: p.Name, CreationDate: isoTime(p.CreatedAt), OrganizationName: p.OrganizationName,
		Labels: map[string]string{}, CorsOrigins: []string{}}
}

func (s *Server) projectsCreate(c *call) error {
	var in ProjectCreate
	if err := c.decode(&in); err != nil {
		return err
	}
	p, err := s.svc.CreateProject(c.r.Context(), in.Name, in.OrganizationName, c.token)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, projectDetail(p))
}

func (s *Server) projectsList(c *call) error {
	p, err := s.svc.ListProjects(c.r.Context(), c.token.ID)
	if err != nil {
		return err
	}
	out := []ProjectDetail{}
	for _, x := range p {
		out = append(out, projectDetail(x))
	}
	return c.json(http.StatusOK, out)
}

func (s *Server) projectsGet(c *call) error { return c.json(http.StatusOK, projectDetail(c.project)) }
