/**
 * The autograd tape (define-by-run): each op that sees an input requiring grad attaches a GradNode
 * to its output through record(). The walk back along the tape is lib/ops/backward.ts.
 */
import type { GradNode, Tensor } from './tensor.js';

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn without recording the tape (inference, optimiser updates). */
export function noGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}

/** True when an op with these inputs must record a node. */
export function needsGrad(...inputs: (Tensor | null | undefined)[]): boolean {
  if (!gradEnabled) return false;
  for (const t of inputs) if (t && t.requiresGrad) return true;
  return false;
}

/**
 * Links `output` to its inputs. `backward` gets d(loss)/d(output) and returns one gradient per
 * input (null for inputs that need none); it runs with the tape off.
 */
export function record(
  name: string,
  output: Tensor,
  inputs: readonly Tensor[],
  backward: (dy: Tensor) => (Tensor | null)[],
): Tensor {
  if (!needsGrad(...inputs)) return output;
  output.requiresGrad = true;
  output.gradFn = { name, inputs, backward } satisfies GradNode;
  return output;
}
