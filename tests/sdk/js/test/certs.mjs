// Certificates for the X.509 tests, made with the openssl command line (node has no
// certificate builder): self-signed device certificates, a CA and the device
// certificates it signs, with their thumbprints.

import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const dir = mkdtempSync(join(tmpdir(), "hubtui-js-certs-"));
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));

const openssl = (...args) => execFileSync("openssl", args, { stdio: "ignore" });

function read(name) {
  const cert = readFileSync(join(dir, `${name}.pem`), "utf8");
  const parsed = new X509Certificate(cert);
  return {
    cert,
    key: readFileSync(join(dir, `${name}-key.pem`), "utf8"),
    name,
    sha1: parsed.fingerprint.replaceAll(":", ""),
    sha256: parsed.fingerprint256.replaceAll(":", ""),
  };
}

const newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/** A self-signed EC certificate and key (PEM) with subject CN `name`. */
export function selfSigned(name) {
  openssl("req", "-x509", ...newKey, "-keyout", join(dir, `${name}-key.pem`),
    "-out", join(dir, `${name}.pem`), "-days", "365", "-subj", `/CN=${name}`);
  return read(name);
}

/** A CA certificate and key (PEM) with subject CN `name`. */
export function certificateAuthority(name) {
  openssl("req", "-x509", ...newKey, "-keyout", join(dir, `${name}-key.pem`),
    "-out", join(dir, `${name}.pem`), "-days", "365", "-subj", `/CN=${name}`,
    "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,digitalSignature");
  return read(name);
}

/**
 * A device certificate with subject CN `name` that `ca` signed, its chain in `cert`: an
 * X.509 v3 client certificate, as Azure's certificate tutorials make them.
 */
export function signedBy(ca, name) {
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n");
  openssl("req", ...newKey, "-keyout", join(dir, `${name}-key.pem`), "-out", csr,
    "-subj", `/CN=${name}`);
  openssl("x509", "-req", "-in", csr, "-CA", join(dir, `${ca.name}.pem`),
    "-CAkey", join(dir, `${ca.name}-key.pem`), "-CAcreateserial",
    "-out", join(dir, `${name}.pem`), "-days", "365", "-extfile", ext);
  const leaf = read(name);
  return { ...leaf, cert: leaf.cert + ca.cert };
}
