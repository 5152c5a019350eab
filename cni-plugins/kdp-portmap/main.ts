// kdp-portmap CNI plugin entry point: the skeleton owns env, stdin, stdout and the exit code; the verbs
// load only for ADD/DEL/CHECK/STATUS/GC (VERSION stays cheap).
import { runPluginProcess } from '../../src/cnispec/skel.ts';

runPluginProcess(async () => {
  const { portmapVerbs } = await import('../../src/cni/portmap.ts');
  return portmapVerbs();
});
