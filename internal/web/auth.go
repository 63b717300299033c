package web

import (
	"net/http"
	"strings"

	"github.com/ubihooks/ubihooks"
)

type loginData struct {
	Next string
}

// safeNext keeps a post-login target only when it is a UI path of this origin.
func safeNext(next string) string {
	if strings.HasPrefix(next, "/ui/") && !strings.HasPrefix(next, "//") && !strings.Contains(next, "\\") && !strings.HasPrefix(next, "/ui/login") {
		return next
	}
	return "/ui/"
}

func (s *Server) loginForm(c *call) error {
	if c.secret != "" {
		if _, _, err := s.svc.AuthenticateSession(c.r.Context(), c.secret, ""); err == nil {
			http.Redirect(c.w, c.r, safeNext(c.r.URL.Query().Get("next")), http.StatusSeeOther)
			return nil
		}
	}
	return c.render(http.StatusOK, "login", &page{Title: "Sign in", Data: loginData{Next: safeNext(c.r.URL.Query().Get("next"))}})
}

func (s *Server) login(c *call) error {
	if err := c.r.ParseForm(); err != nil {
		return ubihooks.Errorf(ubihooks.EINVALID, "the form could not be read: %v", err)
	}
	next := safeNext(c.r.PostForm.Get("next"))
	ns, err := s.svc.SignIn(c.r.Context(), c.r.PostForm.Get("token"))
	if ubihooks.ErrorCode(err) == ubihooks.EUNAUTHORIZED {
		return c.render(statusRefused, "login", &page{Title: "Sign in", Error: &formError{Message: ubihooks.ErrorMessage(err), Field: "token"}, Data: loginData{Next: next}})
	}
	if err != nil {
		return err
	}
	http.SetCookie(c.w, &http.Cookie{
		Name: cookieName, Value: ns.Secret, Path: BasePath, Expires: ns.Session.ExpiresAt,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.secure || c.r.TLS != nil,
	})
	http.Redirect(c.w, c.r, next, http.StatusSeeOther)
	return nil
}

func (s *Server) logout(c *call) error {
	if err := s.svc.SignOut(c.r.Context(), c.secret); err != nil {
		return err
	}
	http.SetCookie(c.w, &http.Cookie{Name: cookieName, Value: "", Path: BasePath, MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.secure || c.r.TLS != nil})
	http.Redirect(c.w, c.r, "/ui/login?done=signedout", http.StatusSeeOther)
	return nil
}

type homeData struct {
	Projects []*ubihooks.Project
}

// home opens the token's project, or lists them when it has several.
func (s *Server) home(c *call) error {
	ps, err := s.svc.ListProjects(c.r.Context(), c.tok.ID)
	if err != nil {
		return err
	}
	if len(ps) == 1 {
		http.Redirect(c.w, c.r, "/ui/p/"+pathEscape(ps[0].Name)+"/", http.StatusSeeOther)
		return nil
	}
	return c.render(http.StatusOK, "home", &page{Title: "Projects", Data: homeData{Projects: ps}})
}

// switchProject is the project switcher's target (a GET form).
func (s *Server) switchProject(c *call) error {
	name := c.r.URL.Query().Get("project")
	if name == "" {
		http.Redirect(c.w, c.r, "/ui/", http.StatusSeeOther)
		return nil
	}
	http.Redirect(c.w, c.r, "/ui/p/"+pathEscape(name)+"/", http.StatusSeeOther)
	return nil
}

// projects lists the projects for the switcher in the header.
func (c *call) projects() []*ubihooks.Project {
	if c.tok == nil {
		return nil
	}
	ps, err := c.s.svc.ListProjects(c.r.Context(), c.tok.ID)
	if err != nil {
		return nil
	}
	return ps
}
