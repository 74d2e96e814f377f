#!/bin/sh
# Regenerates the RSA fixtures: a throwaway 2048-bit key signs one targets body with
# rsapss (salt 32) and one with rsapkcs1v15, once as a bare `rsa` key and once as `rsa-x509`.
# The private key is deleted afterwards; only public material and signatures are kept.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/key.pem" 2>/dev/null
openssl pkey -in "$tmp/key.pem" -pubout -outform DER -out spki.der
openssl req -new -x509 -key "$tmp/key.pem" -subj "/CN=example.com\/rsa" -days 3650 \
  -out cert.pem 2>/dev/null
python3 - "$tmp/key.pem" <<'PY'
import base64, hashlib, json, subprocess, sys
key = sys.argv[1]
def key_id(keytype, public):
    obj = {"keytype": keytype, "keyval": {"private": None, "public": base64.b64encode(public).decode()}}
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
signed = {"_type": "Targets", "delegations": {"keys": {}, "roles": []},
          "expires": "2030-01-01T00:00:00Z",
          "targets": {"v1": {"hashes": {"sha256": base64.b64encode(bytes(32)).decode()}, "length": 1}},
          "version": 1}
msg = json.dumps(signed, sort_keys=True, separators=(",", ":")).encode()
def sign(opts):
    return subprocess.run(["openssl", "dgst", "-sha256", "-sign", key, *opts],
                          input=msg, capture_output=True, check=True).stdout
pss = sign(["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"])
pkcs1 = sign([])
for name, keytype, public in [("rsa", "rsa", open("spki.der", "rb").read()),
                              ("rsa-x509", "rsa-x509", open("cert.pem", "rb").read())]:
    kid = key_id(keytype, public)
    sigs = [{"keyid": kid, "method": "rsapss", "sig": base64.b64encode(pss).decode()},
            {"keyid": kid, "method": "rsapkcs1v15", "sig": base64.b64encode(pkcs1).decode()}]
    with open(f"targets-{name}.json", "wb") as f:
        f.write(b'{"signed":' + msg + b',"signatures":' +
                json.dumps(sigs, separators=(",", ":")).encode() + b"}")
PY
