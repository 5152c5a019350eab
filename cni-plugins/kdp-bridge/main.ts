// kdp-bridge CNI plugin entry point: the skeleton owns env, stdin, stdout and the exit code; the verbs
// load only for ADD/DEL/CHECK/STATUS/GC (VERSION stays cheap).
import { runPluginProcess } from '../../src/cnispec/skel.ts';

runPluginProcess(async () => {
  const { bridgeVerbs } = await import('../../src/cni/bridge.ts');
  return bridgeVerbs();
});
