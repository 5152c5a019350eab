// Delegation to another plugin (spec section 4): find it on CNI_PATH, run it with the same env (only
// CNI_COMMAND may differ) and the same stdin, parse its result or its error JSON.
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { KdpError } from '../common/errors.ts';
import { defaultExec } from '../common/exec-adapter.ts';
import type { Exec } from '../common/exec-adapter.ts';
import type { CniRequest, CniResult } from './types.ts';

export function findPlugin(type: string, path: readonly string[]): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(type))
    throw new KdpError('KDP_CNI_INVALID_CONFIG', `invalid plugin type ${JSON.stringify(type)}`);
  for (const dir of path) {
    const p = join(dir, type);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  throw new KdpError('KDP_CNI_FAILED', `failed to find plugin ${JSON.stringify(type)} in path ${JSON.stringify(path)}`);
}

export async function delegate(
  type: string,
  command: string,
  req: CniRequest,
  exec: Exec = defaultExec,
): Promise<CniResult | undefined> {
  const bin = findPlugin(type, req.path);
  const env = { ...req.env, CNI_COMMAND: command } as NodeJS.ProcessEnv;
  const res = await exec.run([bin], { input: req.stdin, env, allowFailure: true });
  if (res.code !== 0) {
    let msg = res.stdout.trim() || res.stderr.trim();
    let code = 999;
    try {
      const e = JSON.parse(res.stdout) as { code?: number; msg?: string; details?: string };
      msg = `${e.msg ?? ''}${e.details ? `: ${e.details}` : ''}`;
      code = e.code ?? 999;
    } catch {
      /* not JSON */
    }
    const kdpCode =
      code === 100
        ? 'KDP_IPAM_EXHAUSTED'
        : code === 7
          ? 'KDP_CNI_INVALID_CONFIG'
          : code === 11
            ? 'KDP_CNI_TRY_AGAIN'
            : 'KDP_CNI_FAILED';
    throw new KdpError(kdpCode, `${type} ${command}: ${msg}`, { details: { delegateCode: code } });
  }
  if (command !== 'ADD') return undefined;
  try {
    return JSON.parse(res.stdout) as CniResult;
  } catch {
    throw new KdpError('KDP_CNI_FAILED', `${type} ADD printed no JSON result`);
  }
}
