package delivery

import (
	"context"
	"crypto/ed25519"
	"net/http"
	"time"

	"github.com/ubihooks/ubihooks/httpsig"
)

// signer signs an outgoing webhook: it makes req carry body (with a Content-Length) and
// adds the headers of its scheme. req carries its other headers already; nothing may change
// it afterwards.
type signer interface {
	Sign(req *http.Request, body []byte) error
}

// The RFC 9421 (Ed25519) signer of package httpsig is the one implementation; another
// scheme (Standard Webhooks' HMAC with a per-webhook secret, say) would be a second.
var _ signer = (*httpsig.Signer)(nil)

// httpsigSigners returns the signer of each attempt: RFC 9421 with the server's active
// Ed25519 key, which keyFunc returns (with its key id) and which may change between
// attempts when keys rotate, stamped with the time of now. Every webhook gets the same
// scheme; a scheme chosen per webhook would be chosen here, by the delivery.
func httpsigSigners(keyFunc func(context.Context) (ed25519.PrivateKey, string, error), now func() time.Time) func(context.Context) (signer, error) {
	return func(ctx context.Context) (signer, error) {
		key, keyID, err := keyFunc(ctx)
		if err != nil {
			return nil, err
		}
		return &httpsig.Signer{Key: key, KeyID: keyID, Now: now}, nil
	}
}
