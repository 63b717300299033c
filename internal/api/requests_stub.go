package api

func (s *Server) requestRoutes(base, tag string) []*route { return nil }
