// Package ubihooks holds the domain of the ubihooks webhook server: the types that the API,
// the stores and the delivery engine share, their validation rules, the error type, and the
// store contract. It depends on the standard library only.
package ubihooks

// Release is the ubihooks release, sent in User-Agent and reported by the API.
const Release = "0.1.0"
