/**
 * Reverse-mode autodiff over the tape (lib/tensor/autograd.ts): `backward(loss)` walks the nodes in
 * reverse topological order, summing gradients per tensor, and leaves d(loss)/d(leaf) in
 * `leaf.grad` (accumulated across calls until zeroed). Gradients are summed with ops, so they stay
 * on the tensors' device.
 */
import { noGrad } from '../tensor/autograd.js';
import { keep } from '../tensor/scope.js';
import { formatShape, type GradNode, Tensor } from '../tensor/tensor.js';
import { add } from './elementwise.js';
import { axpby_, copy_, fill_ } from './inplace.js';
import { sameShape } from './util.js';

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

/** A contiguous copy that no other tensor shares, so it can be accumulated into in place. */
function ownedCopy(t: Tensor): Tensor {
  return copy_(Tensor.empty(t.shape, t.dtype, t.device), t);
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
    seed = fill_(Tensor.empty(root.shape, 'float32', root.device), 1);
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
            const sum = add(previous, gi);
            previous.dispose();
            gi.dispose();
            grads.set(input, sum);
          } else {
            grads.set(input, gi);
          }
        });
        if (!options.retainGraph) t.gradFn = freedNode(node.name);
      } else if (t.grad) {
        axpby_(t.grad, g, 1, 1);
      } else {
        t.grad = keep(ownedCopy(g));
      }
      if (g !== options.grad) g.dispose();
    }
  });
}
