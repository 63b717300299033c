"""A webhook listener that verifies HTTP message signatures (RFC 9421, Ed25519).

It trusts the keys a ubihooks server publishes at /v2.1/signing-keys (--server), or one
PEM public key file from `ubihooks keys show` (--pubkey).

    pip install cryptography requests requests-http-signature
    python3 receiver.py --server http://127.0.0.1:8080 --port 8000
"""
import argparse
import datetime
import hashlib
import json
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import requests
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from http_message_signatures.exceptions import InvalidSignature
from requests import Request
from requests_http_signature import HTTPSignatureAuth, HTTPSignatureKeyResolver, VerifyResult, algorithms


def key_id(public_key):
    """The key id: "sha512:" + hex SHA-512 of the 32 raw public-key bytes."""
    return "sha512:" + hashlib.sha512(public_key.public_bytes_raw()).hexdigest()


class PublishedKeyResolver(HTTPSignatureKeyResolver):
    """Resolves key ids to the trusted public keys."""

    def __init__(self, server=None, pubkey=None):
        self.url = server.rstrip("/") + "/v2.1/signing-keys" if server else None
        self.keys = {}
        self.fetched = 0.0
        if pubkey:
            with open(pubkey, "rb") as fh:
                data = fh.read()
            # A private key contains the public key: refuse one given by mistake.
            try:
                load_pem_private_key(data, password=None)
            except Exception:
                pass
            else:
                raise ValueError("--pubkey must be a public key, not a private key")
            key = load_pem_public_key(data)
            self.keys = {key_id(key): key}
        else:
            self.fetch()

    def fetch(self):
        response = requests.get(self.url, timeout=10)
        response.raise_for_status()
        keys = {}
        for published in response.json()["keys"]:
            key = load_pem_public_key(published["public_key_pem"].encode())
            if key_id(key) == published["key_id"]:  # never trust a key under another key's id
                keys[published["key_id"]] = key
        self.keys, self.fetched = keys, time.monotonic()

    def resolve_public_key(self, key_id):
        # An unknown key id means the server rotated its key: fetch the published keys
        # again, once (at most every 10 seconds), and look again.
        if key_id not in self.keys and self.url and time.monotonic() - self.fetched > 10:
            self.fetch()
        if key_id not in self.keys:
            raise InvalidSignature(f"unknown key id {key_id}")
        return self.keys[key_id]


class RequestHandler(BaseHTTPRequestHandler):
    key_resolver: PublishedKeyResolver = None

    def do_HEAD(self):
        """Health checks."""
        self.send_response(204)
        self.end_headers()

    def do_POST(self):
        content_length = int(self.headers.get("Content-Length", 0))
        unverified_body = self.rfile.read(content_length)

        # Rebuild the request as the sender signed it (use https:// behind a TLS proxy).
        prepared_request = Request(method=self.command, url=f"http://{self.headers['Host']}{self.path}").prepare()
        prepared_request.body = unverified_body
        for key, value in self.headers.items():
            prepared_request.headers[key] = value

        try:
            verify_result: VerifyResult = HTTPSignatureAuth.verify(
                prepared_request,
                signature_algorithm=algorithms.ED25519,
                key_resolver=self.key_resolver,
                max_age=datetime.timedelta(minutes=5),
            )
        except InvalidSignature as e:
            print(f"Bad signature: {e}")
            self.send_response(401)
            self.end_headers()
            return

        # Trust only what the signature covers, and demand Content-Digest and Date.
        verified_headers = {
            key.strip('"'): self.headers[key.strip('"')]
            for key in verify_result.covered_components
            if not key.startswith('"@')
        }
        for required in ("content-digest", "date"):
            if required not in verified_headers:
                print(f"Bad signature: {required} must be a covered signature component")
                self.send_response(401)
                self.end_headers()
                return

        # The event "id" is the same on every retry and redelivery: deduplicate on it.
        event = json.loads(verify_result.body)
        print("Verified event: " + json.dumps(event, indent=2), flush=True)
        self.send_response(204)
        self.end_headers()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", default="http://127.0.0.1:8080", help="ubihooks server whose published keys to trust")
    p.add_argument("--pubkey", help="instead of --server: a PEM public key file (ubihooks keys show > pub.pem)")
    p.add_argument("--ip", default="127.0.0.1", help="IP on which to listen")
    p.add_argument("--port", default=8000, type=int, help="TCP port on which to listen")
    args = p.parse_args()

    RequestHandler.key_resolver = PublishedKeyResolver(server=None if args.pubkey else args.server, pubkey=args.pubkey)
    server = HTTPServer((args.ip, args.port), RequestHandler)
    print(f"Listening on {args.ip}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
