// `kdp ingress convert`: Ingresses from manifest files (or the API) to Gateway API YAML on stdout, one warning per
// annotation or field that has no Gateway API equivalent on stderr (and as comments at the top of the YAML).
// The converter itself is pure (ingress/convert.ts); this module reads the input and writes the output.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { KdpError } from '../../common/errors.ts';
import type { Ingress, Service } from '../../model/types.ts';
import type { CommandContext } from '../command.ts';
import { flagHelp, parseFlags } from '../flags.ts';
import type { FlagTable } from '../flags.ts';

export const CONVERT_FLAGS = {
  kubeconfig: {
    type: 'string',
    arg: 'FILE',
    help: 'Kubernetes API credentials (the Ingresses and Services are read from the API when no file is given)',
    defaultText: 'KUBECONFIG, ~/.kube/config, in-cluster',
  },
  'gateway-name': { type: 'string', arg: 'NAME', default: 'kdp', help: 'name of the Gateway written' },
  'gateway-namespace': {
    type: 'string',
    arg: 'NS',
    help: 'namespace of the Gateway',
    defaultText: "the Ingresses' namespace if they share one, else default",
  },
  'gateway-class': { type: 'string', arg: 'NAME', default: 'kdp', help: 'GatewayClass written and used' },
} as const satisfies FlagTable;

export const CONVERT_USAGE = `Usage: kdp ingress convert [FILE|DIR...] [options]

Writes Gateway API YAML (GatewayClass for kdp.dev/gateway-controller, one Gateway, ReferenceGrants, HTTPRoutes)
routing the same requests to the same backends as the Ingresses in the files (*.yaml, *.yml, *.json; directories
are read one level deep) or, without files, in the cluster. ingress-nginx annotations kdp supports are
translated; each one that has no Gateway API equivalent is reported on stderr (see docs/ingress.md).

${flagHelp(CONVERT_FLAGS)}`;

async function manifestFiles(paths: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) {
    const s = await stat(p).catch(() => undefined);
    if (!s) throw new KdpError('KDP_USAGE', `kdp ingress convert: ${p}: no such file or directory`);
    if (!s.isDirectory()) out.push(p);
    else
      for (const f of (await readdir(p)).sort())
        if (/\.(ya?ml|json)$/.test(f) && !f.startsWith('.')) out.push(join(p, f));
  }
  return out;
}

async function fromFiles(paths: readonly string[]): Promise<{ ingresses: Ingress[]; services: Service[] }> {
  const { parseManifest } = await import('../../k8s/manifests-source.ts');
  const ingresses: Ingress[] = [];
  const services: Service[] = [];
  for (const file of await manifestFiles(paths)) {
    const parsed = parseManifest(await readFile(file, 'utf8'));
    if (!parsed.ok) throw new KdpError('KDP_USAGE', `${file}:${parsed.line}: ${parsed.reason}`);
    for (const { obj } of parsed.objects) {
      if (obj.kind === 'Ingress') ingresses.push(obj);
      else if (obj.kind === 'Service') services.push(obj);
    }
  }
  return { ingresses, services };
}

const API_TIMEOUT_MS = 20_000;

async function fromApi(
  kubeconfig: string,
  ctx: CommandContext,
): Promise<{ ingresses: Ingress[]; services: Service[] }> {
  const { openSource } = await import('../../k8s/open-source.ts');
  const source = openSource({ ...(kubeconfig === undefined ? {} : { kubeconfig }), log: ctx.log });
  source.watch({ kinds: ['Ingress', 'Service'], changed() {}, synced() {} });
  let timer: NodeJS.Timeout | undefined;
  try {
    // the source retries a failing API forever (a controller must); a one-shot command gives up with an error
    await Promise.race([
      source.start(),
      new Promise((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new KdpError(
                'KDP_K8S_API',
                `kdp ingress convert: could not list Ingresses and Services from the API within ${API_TIMEOUT_MS / 1000} s (see the log)`,
              ),
            ),
          API_TIMEOUT_MS,
        );
      }),
    ]);
    return { ingresses: [...source.view.list('Ingress')], services: [...source.view.list('Service')] };
  } finally {
    clearTimeout(timer);
    await source.stop();
  }
}

export async function convertCommand(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { values, positionals } = parseFlags(CONVERT_FLAGS, argv);
  if ((positionals.length === 0) === (values.kubeconfig === undefined))
    throw new KdpError(
      'KDP_USAGE',
      'kdp ingress convert takes manifest files/directories or --kubeconfig (one of them)',
    );
  const input = values.kubeconfig !== undefined ? await fromApi(values.kubeconfig, ctx) : await fromFiles(positionals);
  const { convertIngresses, DEFAULT_CONVERT_OPTIONS, toYaml } = await import('../../../ingress/convert.ts');
  const result = convertIngresses(
    input.ingresses,
    new Map(input.services.map((s) => [`${s.meta.namespace}/${s.meta.name}`, s])),
    {
      ...DEFAULT_CONVERT_OPTIONS,
      gatewayName: values['gateway-name'],
      gatewayClassName: values['gateway-class'],
      ...(values['gateway-namespace'] === undefined ? {} : { gatewayNamespace: values['gateway-namespace'] }),
    },
  );
  for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
  ctx.out(toYaml(result));
  return 0;
}
