/**
 * Builds the emulated-CUDA addon (scripts/build-emu.sh: build-emu/diffvit_cuda_emu.node) before
 * the 'cuda-emulated' project runs; an up-to-date build takes a second.
 */
import { execFileSync } from 'node:child_process';

export default function setup(): void {
  const started = Date.now();
  execFileSync('bash', ['scripts/build-emu.sh'], { stdio: 'inherit' });
  console.log(`cuda-emulated: build-emu/diffvit_cuda_emu.node ready (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}
