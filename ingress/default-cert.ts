// The default certificate (served for names no Ingress TLS section covers), self-signed like
// ingress-nginx's "Kubernetes Ingress Controller Fake Certificate", made with openssl in a temp dir.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Exec } from '../src/common/exec-adapter.ts';
import { defaultExec } from '../src/common/exec-adapter.ts';

export interface CertPair {
  readonly certPem: string;
  readonly keyPem: string;
}

/** Self-signed certificate for `cn` (with SANs `names`), EC P-256, valid `days`. */
export async function selfSigned(
  cn: string,
  names: readonly string[] = [],
  days = 365,
  exec: Exec = defaultExec,
  signer?: { certFile: string; keyFile: string },
): Promise<CertPair> {
  const dir = await mkdtemp(join(tmpdir(), 'kdp-cert-'));
  try {
    const key = join(dir, 'tls.key');
    const crt = join(dir, 'tls.crt');
    const san = names.length > 0 ? ['-addext', `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`] : [];
    if (signer) {
      const csr = join(dir, 'tls.csr');
      const ext = join(dir, 'ext.cnf');
      await exec.run([
        'openssl',
        'req',
        '-new',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-subj',
        `/CN=${cn}`,
        '-keyout',
        key,
        '-out',
        csr,
      ]);
      const { writeFile } = await import('node:fs/promises');
      await writeFile(ext, names.length > 0 ? `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}\n` : '\n');
      await exec.run([
        'openssl',
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        signer.certFile,
        '-CAkey',
        signer.keyFile,
        '-CAcreateserial',
        '-days',
        String(days),
        '-extfile',
        ext,
        '-out',
        crt,
      ]);
    } else {
      await exec.run([
        'openssl',
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-subj',
        `/CN=${cn}`,
        ...san,
        '-days',
        String(days),
        '-keyout',
        key,
        '-out',
        crt,
      ]);
    }
    return { certPem: await readFile(crt, 'utf8'), keyPem: await readFile(key, 'utf8') };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function fakeCertificate(exec: Exec = defaultExec): Promise<CertPair> {
  return selfSigned('Kubernetes Ingress Controller Fake Certificate', ['ingress.local'], 365, exec);
}
