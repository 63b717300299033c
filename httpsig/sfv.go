package httpsig

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

// This file is a small, strict RFC 8941 structured-field parser and serializer
// for the subset that HTTP message signatures need: dictionaries whose members
// are inner lists or items; bare items that are integers, strings, tokens,
// booleans or byte sequences; and parameters. Decimals are rejected. Unlike
// RFC 8941, duplicate dictionary or parameter keys are an error instead of
// "last one wins", because a silently dropped duplicate in a security header
// is a trap.

// token is an RFC 8941 token (distinct from a string when serializing).
type token string

// param is one parameter; order is preserved so signature parameters can be
// re-serialized exactly as received.
type param struct {
	key   string
	value any // int64, string, token, []byte or bool
}

// item is a bare item with its parameters.
type item struct {
	value  any
	params []param
}

// member is one dictionary member: an inner list (isList) or an item.
type member struct {
	key    string
	isList bool
	list   []item // inner-list items when isList
	item   item   // the item, or the inner list's parameters in item.params
}

var b64 = base64.StdEncoding.Strict()

type sfParser struct {
	s string
	i int
}

func (p *sfParser) eof() bool  { return p.i >= len(p.s) }
func (p *sfParser) peek() byte { return p.s[p.i] }

func (p *sfParser) errf(msg string) error {
	return errors.New(msg + " at offset " + strconv.Itoa(p.i))
}

// parseDictionary parses an RFC 8941 §4.2.2 dictionary.
func parseDictionary(s string) ([]member, error) {
	p := &sfParser{s: s}
	for !p.eof() && p.peek() == ' ' {
		p.i++
	}
	var out []member
	seen := map[string]bool{}
	for !p.eof() {
		key, err := p.parseKey()
		if err != nil {
			return nil, err
		}
		if seen[key] {
			return nil, p.errf("duplicate dictionary key " + strconv.Quote(key))
		}
		seen[key] = true
		m := member{key: key}
		if !p.eof() && p.peek() == '=' {
			p.i++
			if !p.eof() && p.peek() == '(' {
				m.isList = true
				m.list, m.item.params, err = p.parseInnerList()
			} else {
				m.item, err = p.parseItem()
			}
		} else {
			m.item.value = true
			m.item.params, err = p.parseParams()
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m)
		for !p.eof() && (p.peek() == ' ' || p.peek() == '\t') {
			p.i++
		}
		if p.eof() {
			break
		}
		if p.peek() != ',' {
			return nil, p.errf("expected ','")
		}
		p.i++
		for !p.eof() && (p.peek() == ' ' || p.peek() == '\t') {
			p.i++
		}
		if p.eof() {
			return nil, p.errf("trailing ','")
		}
	}
	return out, nil
}

func (p *sfParser) parseInnerList() ([]item, []param, error) {
	p.i++ // '('
	var items []item
	for !p.eof() {
		for !p.eof() && p.peek() == ' ' {
			p.i++
		}
		if p.eof() {
			break
		}
		if p.peek() == ')' {
			p.i++
			params, err := p.parseParams()
			return items, params, err
		}
		it, err := p.parseItem()
		if err != nil {
			return nil, nil, err
		}
		items = append(items, it)
		if p.eof() || (p.peek() != ' ' && p.peek() != ')') {
			return nil, nil, p.errf("expected ' ' or ')' in inner list")
		}
	}
	return nil, nil, p.errf("unterminated inner list")
}

func (p *sfParser) parseItem() (item, error) {
	v, err := p.parseBareItem()
	if err != nil {
		return item{}, err
	}
	params, err := p.parseParams()
	return item{value: v, params: params}, err
}

func (p *sfParser) parseParams() ([]param, error) {
	var out []param
	for !p.eof() && p.peek() == ';' {
		p.i++
		for !p.eof() && p.peek() == ' ' {
			p.i++
		}
		key, err := p.parseKey()
		if err != nil {
			return nil, err
		}
		for _, q := range out {
			if q.key == key {
				return nil, p.errf("duplicate parameter " + strconv.Quote(key))
			}
		}
		var v any = true
		if !p.eof() && p.peek() == '=' {
			p.i++
			if v, err = p.parseBareItem(); err != nil {
				return nil, err
			}
		}
		out = append(out, param{key, v})
	}
	return out, nil
}

func isLCAlpha(c byte) bool { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool   { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool   { return isLCAlpha(c) || (c >= 'A' && c <= 'Z') }

func isTChar(c byte) bool {
	return isAlpha(c) || isDigit(c) || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isB64(c byte) bool {
	return isAlpha(c) || isDigit(c) || c == '+' || c == '/' || c == '='
}

func (p *sfParser) parseKey() (string, error) {
	start := p.i
	if p.eof() || !(isLCAlpha(p.peek()) || p.peek() == '*') {
		return "", p.errf("expected key")
	}
	for !p.eof() {
		c := p.peek()
		if !(isLCAlpha(c) || isDigit(c) || c == '_' || c == '-' || c == '.' || c == '*') {
			break
		}
		p.i++
	}
	return p.s[start:p.i], nil
}

func (p *sfParser) parseBareItem() (any, error) {
	if p.eof() {
		return nil, p.errf("expected item")
	}
	switch c := p.peek(); {
	case c == '-' || isDigit(c):
		return p.parseInteger()
	case c == '"':
		return p.parseString()
	case c == ':':
		return p.parseBytes()
	case c == '?':
		if p.i+1 < len(p.s) && (p.s[p.i+1] == '0' || p.s[p.i+1] == '1') {
			p.i += 2
			return p.s[p.i-1] == '1', nil
		}
		return nil, p.errf("invalid boolean")
	case isAlpha(c) || c == '*':
		start := p.i
		for !p.eof() && (isTChar(p.peek()) || p.peek() == ':' || p.peek() == '/') {
			p.i++
		}
		return token(p.s[start:p.i]), nil
	default:
		return nil, p.errf("unexpected character " + strconv.QuoteRune(rune(c)))
	}
}

func (p *sfParser) parseInteger() (any, error) {
	start := p.i
	if p.peek() == '-' {
		p.i++
	}
	digits := p.i
	for !p.eof() && isDigit(p.peek()) {
		p.i++
	}
	switch {
	case p.i == digits:
		return nil, p.errf("expected digit")
	case p.i-digits > 15:
		return nil, p.errf("integer too long")
	case !p.eof() && p.peek() == '.':
		return nil, p.errf("decimals are not supported")
	}
	return strconv.ParseInt(p.s[start:p.i], 10, 64)
}

func (p *sfParser) parseString() (any, error) {
	p.i++ // '"'
	var b strings.Builder
	for !p.eof() {
		c := p.peek()
		p.i++
		switch {
		case c == '\\':
			if p.eof() || (p.peek() != '"' && p.peek() != '\\') {
				return nil, p.errf("invalid string escape")
			}
			b.WriteByte(p.peek())
			p.i++
		case c == '"':
			return b.String(), nil
		case c < 0x20 || c > 0x7e:
			return nil, p.errf("invalid string character")
		default:
			b.WriteByte(c)
		}
	}
	return nil, p.errf("unterminated string")
}

func (p *sfParser) parseBytes() (any, error) {
	p.i++ // ':'
	start := p.i
	for !p.eof() && p.peek() != ':' {
		if !isB64(p.peek()) {
			return nil, p.errf("invalid byte sequence character")
		}
		p.i++
	}
	if p.eof() {
		return nil, p.errf("unterminated byte sequence")
	}
	b, err := b64.DecodeString(p.s[start:p.i])
	if err != nil {
		return nil, p.errf("invalid base64")
	}
	p.i++ // ':'
	return b, nil
}

// serializeBareItem writes the canonical RFC 8941 §4.1 form of v.
func serializeBareItem(b *strings.Builder, v any) {
	switch v := v.(type) {
	case int64:
		b.WriteString(strconv.FormatInt(v, 10))
	case string:
		b.WriteByte('"')
		for i := 0; i < len(v); i++ {
			if v[i] == '"' || v[i] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(v[i])
		}
		b.WriteByte('"')
	case token:
		b.WriteString(string(v))
	case []byte:
		b.WriteByte(':')
		b.WriteString(b64.EncodeToString(v))
		b.WriteByte(':')
	case bool:
		if v {
			b.WriteString("?1")
		} else {
			b.WriteString("?0")
		}
	}
}

func serializeParams(b *strings.Builder, params []param) {
	for _, p := range params {
		b.WriteByte(';')
		b.WriteString(p.key)
		if v, ok := p.value.(bool); !ok || !v {
			b.WriteByte('=')
			serializeBareItem(b, p.value)
		}
	}
}

// serializeInnerList writes the canonical form of an inner list with its
// parameters, e.g. ("@method" "date");created=1;keyid="k".
func serializeInnerList(items []item, params []param) string {
	var b strings.Builder
	b.WriteByte('(')
	for i, it := range items {
		if i > 0 {
			b.WriteByte(' ')
		}
		serializeBareItem(&b, it.value)
		serializeParams(&b, it.params)
	}
	b.WriteByte(')')
	serializeParams(&b, params)
	return b.String()
}
