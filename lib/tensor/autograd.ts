/**
 * Tape autograd (define-by-run). Each op that sees an input requiring grad attaches a GradNode to
 * its output; `backward(loss)` walks the nodes in reverse topological order, summing gradients per
 * tensor, and leaves d(loss)/d(leaf) in `leaf.grad` (accumulated across calls until zeroed).
 */
import { native } from '../backend/native.js';
import { keep } from './scope.js';
import { formatShape, type GradNode, Tensor } from './tensor.js';

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

function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  // Iterative DFS: the tape of a deep model is longer than the JS stack likes.
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const inputs = top[0].gradFn?.inputs ?? [];
    if (top[1] < inputs.length) {
      const next = inputs[top[1]++];
      if (next.requiresGrad && !visited.has(next)) {
        visited.add(next);
        stack.push([next, 0]);
      }
    } else {
      order.push(top[0]);
      stack.pop();
    }
  }
  return order.reverse();
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((s, i) => s === b[i]);
}

/** A contiguous copy that no other tensor shares, so it can be accumulated into in place. */
function ownedCopy(t: Tensor): Tensor {
  const out = Tensor.empty(t.shape, t.dtype);
  native.copyStrided(t.buffer, t.offset, [...t.strides], out.buffer, 0, [...out.strides], [...t.shape]);
  return out;
}

function accumulate(into: Tensor, g: Tensor): void {
  const src = g.isContiguous() ? g : ownedCopy(g);
  native.axpby(into.buffer, into.offset, src.buffer, src.offset, into.size, 1, 1);
  if (src !== g) src.dispose();
}

/** Left in place of a node whose graph an earlier backward() freed: running it again is an error. */
function freedNode(name: string): GradNode {
  return {
    name,
    inputs: [],
    backward: () => {
      throw new Error(`diffvit.backward: the graph through '${name}' was freed by an earlier backward(); ` +
        'pass { retainGraph: true } to the first call to run backward through it twice');
    },
  };
}

export interface BackwardOptions {
  /** d(loss)/d(root); defaults to 1 for a one-element root. */
  grad?: Tensor;
  /** Keep the graph so backward can run again through it. */
  retainGraph?: boolean;
}

export function backward(root: Tensor, options: BackwardOptions = {}): void {
  root.assertAlive('backward');
  if (!root.requiresGrad) {
    throw new Error(`diffvit.backward: tensor ${formatShape(root.shape)} does not require grad (no input of it requires grad)`);
  }
  let seed = options.grad;
  if (seed) {
    if (!sameShape(seed.shape, root.shape)) {
      throw new Error(`diffvit.backward: argument 'grad' expected shape ${formatShape(root.shape)}, received ${formatShape(seed.shape)}`);
    }
  } else {
    if (root.size !== 1) {
      throw new Error(`diffvit.backward: expected a one-element loss or an explicit 'grad', received shape ${formatShape(root.shape)}`);
    }
    seed = Tensor.empty(root.shape);
    native.fill(seed.buffer, 0, 1, 1);
  }
  const order = topologicalOrder(root);
  const grads = new Map<Tensor, Tensor>([[root, seed]]);
  noGrad(() => {
    for (const t of order) {
      const g = grads.get(t);
      if (!g) continue;
      grads.delete(t);
      if (t.isDisposed) {
        throw new Error(`diffvit.backward: tensor #${t.id} ${formatShape(t.shape)} on the graph was disposed before backward()`);
      }
      const node = t.gradFn;
      if (node) {
        const inputGrads = node.backward(g);
        const seen = new Set<Tensor>([g]);
        node.inputs.forEach((input, i) => {
          let gi = inputGrads[i];
          // Each map entry must own its tensor object: alias repeats through a fresh view.
          if (gi && seen.has(gi)) gi = gi.view(gi.shape, gi.strides, gi.offset);
          if (gi) seen.add(gi);
          if (!gi || !input.requiresGrad) {
            gi?.dispose();
            return;
          }
          if (!sameShape(gi.shape, input.shape)) {
            throw new Error(`diffvit.backward: the gradient of '${node.name}' for input ${i} has shape ${formatShape(gi.shape)}, expected ${formatShape(input.shape)}`);
          }
          const previous = grads.get(input);
          if (previous) {
            const sum = Tensor.empty(input.shape);
            const a = previous, b = gi;
            native.binary('add', a.buffer, a.offset, [...a.strides], b.buffer, b.offset, [...b.strides], sum.buffer, 0, [...input.shape]);
            previous.dispose();
            gi.dispose();
            grads.set(input, sum);
          } else {
            grads.set(input, gi);
          }
        });
        if (!options.retainGraph) t.gradFn = freedNode(node.name);
      } else if (t.grad) {
        accumulate(t.grad, g);
      } else {
        t.grad = keep(ownedCopy(g));
      }
      if (g !== options.grad) g.dispose();
    }
  });
}
