// Every error code is documented in docs/errors.md and every documented code exists.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { ErrorCodes, KdpError, isKdpError } from '../../../src/common/errors.ts';

t.test('docs/errors.md lists exactly the codes kdp has', async (t) => {
  const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
  const documented = new Set([...doc.matchAll(/^\| `(KDP_[A-Z0-9_]+)` \|/gm)].map((m) => m[1]));
  const codes = new Set(Object.keys(ErrorCodes));
  for (const c of codes) t.ok(documented.has(c), `${c} is documented`);
  for (const c of documented) t.ok(codes.has(c as string), `${c} exists in src/common/errors.ts`);
});

t.test('KdpError carries code, details and cause; instanceof works across copies', async (t) => {
  const cause = new Error('inner');
  const e = new KdpError('KDP_EXEC_FAILED', 'outer', { cause, details: { argv: ['ip'] } });
  t.equal(e.code, 'KDP_EXEC_FAILED');
  t.equal(e.cause, cause);
  t.same(e.toJSON(), { name: 'KdpError', code: 'KDP_EXEC_FAILED', message: 'outer', argv: ['ip'] });
  t.ok(isKdpError(e, 'KDP_EXEC_FAILED'));
  t.notOk(isKdpError(e, 'KDP_USAGE'));
  const foreign = Object.assign(new Error('x'), { [Symbol.for('kdp.error')]: true });
  t.ok(foreign instanceof KdpError, 'brand, not prototype, decides');
  t.notOk(new Error('plain') instanceof KdpError);
});
