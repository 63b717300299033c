package ubihooks

import (
	"net"
	"net/url"
	"strconv"
	"strings"
)

// NormalizeURL validates a callback URL and returns its normal form: an absolute http or
// https URL, lowercase scheme and host, no default port, no fragment, a path of at least "/",
// and percent-encoding normalised the way HTTP clients and signature verifiers rebuild it
// (unreserved characters decoded, hex digits upper case). Storing the normal form makes the
// signed @target-uri equal to what receivers reconstruct.
func NormalizeURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", Errorf(EINVALID, "url is required")
	}
	if len(raw) > MaxURLLength {
		return "", Errorf(EINVALID, "url must be at most %d characters", MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", Errorf(EINVALID, "url %q is not a valid URL", raw)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", Errorf(EINVALID, "url must be an absolute http:// or https:// URL, got %q", raw)
	}
	if u.Opaque != "" || u.Host == "" {
		return "", Errorf(EINVALID, "url must be an absolute http:// or https:// URL with a host, got %q", raw)
	}
	if u.User != nil {
		return "", Errorf(EINVALID, "url must not contain credentials; send them in a protected header instead")
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return "", Errorf(EINVALID, "url must have a host, got %q", raw)
	}
	port := u.Port()
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return "", Errorf(EINVALID, "url has an invalid port %q", port)
		}
		port = strconv.Itoa(n)
		if (scheme == "http" && n == 80) || (scheme == "https" && n == 443) {
			port = ""
		}
	}
	host = strings.Replace(host, "%", "%25", 1) // an IPv6 zone ("fe80::1%eth0") is escaped in URLs
	hostport := host
	if strings.Contains(host, ":") { // IPv6 literal
		hostport = "[" + host + "]"
	}
	if port != "" {
		hostport = net.JoinHostPort(host, port)
	}
	path := normalizeEscapes(u.EscapedPath())
	if path == "" {
		path = "/"
	}
	out := scheme + "://" + hostport + path
	if u.RawQuery != "" || u.ForceQuery {
		out += "?" + normalizeEscapes(u.RawQuery)
	}
	return out, nil
}

// normalizeEscapes decodes percent-escapes of unreserved characters and upper-cases the hex
// digits of the others (RFC 3986 §6.2.2), and escapes bytes that may not appear raw.
func normalizeEscapes(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			v := unhex(s[i+1])<<4 | unhex(s[i+2])
			if isUnreserved(v) {
				b.WriteByte(v)
			} else {
				b.WriteByte('%')
				b.WriteByte(hex[v>>4])
				b.WriteByte(hex[v&15])
			}
			i += 2
			continue
		}
		if c <= 0x20 || c >= 0x7f || c == '"' || c == '<' || c == '>' || c == '\\' || c == '^' || c == '`' || c == '{' || c == '|' || c == '}' || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func isUnreserved(c byte) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~'
}
