// A throwaway certificate authority for the TLS e2e tests (ECDSA P-256, 2 days, in the test's directory): the
// client trusts `certFile`; certificates signed by it come from selfSigned(..., { certFile, keyFile }).
import { join } from 'node:path';
import { run } from '../../src/common/exec-adapter.ts';

export async function testCa(dir: string, cn: string): Promise<{ certFile: string; keyFile: string }> {
  const keyFile = join(dir, 'ca.key');
  const certFile = join(dir, 'ca.crt');
  await run([
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
    '-days',
    '2',
    '-keyout',
    keyFile,
    '-out',
    certFile,
  ]);
  return { certFile, keyFile };
}
