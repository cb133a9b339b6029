/**
 * `--device D` and `--cuda-graph` of `diffvit train` and `diffvit sample`, checked before any work:
 * a malformed or unknown device and --cuda-graph off CUDA are usage errors (exit code 2; main.ts
 * prefixes the command), a CUDA device this process cannot use is an error that says why (the
 * addon's CUDA status).
 */
import { resolveDevice } from '../backend/index.js';
import { usage } from './options.js';

export interface DeviceChoice {
  /** The canonical device ('cpu', 'cuda:0'), or undefined when --device was not given. */
  device: string | undefined;
  cudaGraph: boolean;
}

export function deviceOption(command: string, value: string | undefined, cudaGraph: boolean | undefined): DeviceChoice {
  if (value === '') usage(command, "--device D expected a device (cpu, cuda, cuda:N), received ''");
  let resolved: ReturnType<typeof resolveDevice>;
  try {
    resolved = resolveDevice(value ?? 'cpu', 'device', '--device');
  } catch (e) {
    const why = (e as Error).message.replace(/^diffvit\.device: /, '');
    // 'cuda' where no CUDA device is usable is not a typo: an error saying why, not a usage error.
    if (value !== undefined && /^cuda(:\d+)?$/.test(value)) throw new Error(`diffvit ${command}: --device ${value}: ${why}`);
    usage(command, `--device D: ${why}`);
  }
  if (cudaGraph && resolved.backend.name !== 'cuda') {
    usage(command, `--cuda-graph needs a CUDA device (--device cuda), but the device is '${resolved.device}'`);
  }
  return { device: value === undefined ? undefined : resolved.device, cudaGraph: Boolean(cudaGraph) };
}
