import t from 'tap';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createLogger, silentLogger } from '../../../src/common/log.ts';

t.test('JSON mode writes one object per line with level, time, name and fields', async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), 'kdp-log-')), 'log');
  t.teardown(() => rmSync(dirname(file), { recursive: true, force: true }));
  const fd = openSync(file, 'w');
  const log = await createLogger({ fd, format: 'json', name: 'kdp-test', level: 'debug' });
  log.info({ svc: 'default/web' }, 'synced');
  log.child({ component: 'proxy' }).warn('slow');
  log.debug('detail');
  closeSync(fd);
  const lines = readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  t.equal(lines.length, 3);
  t.match(lines[0], { level: 30, name: 'kdp-test', svc: 'default/web', msg: 'synced', time: /^\d{4}-\d\d-\d\dT/ });
  t.match(lines[1], { level: 40, component: 'proxy', msg: 'slow' });
  t.match(lines[2], { level: 20, msg: 'detail' });
});

t.test('pretty mode is human-readable, not JSON', async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), 'kdp-log-')), 'log');
  t.teardown(() => rmSync(dirname(file), { recursive: true, force: true }));
  const fd = openSync(file, 'w');
  const log = await createLogger({ fd, format: 'pretty', isTTY: false });
  log.info({ nodes: 2 }, 'lab ready');
  closeSync(fd);
  const text = readFileSync(file, 'utf8');
  t.match(text, /INFO.*lab ready/);
  t.match(text, /nodes: 2/);
  t.throws(() => JSON.parse(text));
});

t.test('level filters and the silent logger', async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), 'kdp-log-')), 'log');
  t.teardown(() => rmSync(dirname(file), { recursive: true, force: true }));
  const fd = openSync(file, 'w');
  const log = await createLogger({ fd, format: 'json', level: 'warn' });
  log.info('hidden');
  log.error('shown');
  closeSync(fd);
  t.equal(readFileSync(file, 'utf8').trim().split('\n').length, 1);
  silentLogger.error('nothing');
  t.equal(silentLogger.child({}), silentLogger);
});
