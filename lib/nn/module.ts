/**
 * Module: a tree of named parameters and sub-modules, PyTorch-style. Parameter names join the path
 * with dots ("enc_blocks.0.attn.qkv.weight") — they are the checkpoint contract with the twin.
 */
import { type Device, resolveDevice } from '../backend/backend.js';
import { keep } from '../tensor/scope.js';
import { formatShape, Tensor } from '../tensor/tensor.js';
import { copyAcross_ } from '../ops/device.js';

export abstract class Module {
  training = true;
  private readonly ownParams = new Map<string, Tensor>();
  private readonly ownChildren = new Map<string, Module>();

  /** Registers a trainable tensor (kept out of every scope, requiresGrad set). */
  protected param(name: string, t: Tensor): Tensor {
    keep(t);
    t.requiresGrad = true;
    this.ownParams.set(name, t);
    return t;
  }

  protected child<M extends Module>(name: string, m: M): M {
    this.ownChildren.set(name, m);
    return m;
  }

  *namedParameters(prefix = ''): Generator<[string, Tensor]> {
    for (const [name, t] of this.ownParams) yield [prefix + name, t];
    for (const [name, m] of this.ownChildren) yield* m.namedParameters(`${prefix}${name}.`);
  }

  parameters(): Tensor[] {
    return [...this.namedParameters()].map(([, t]) => t);
  }

  *namedModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix.replace(/\.$/, ''), this];
    for (const [name, m] of this.ownChildren) yield* m.namedModules(`${prefix}${name}.`);
  }

  numParameters(): number {
    return this.parameters().reduce((n, t) => n + t.size, 0);
  }

  train(on = true): this {
    for (const [, m] of this.namedModules()) m.training = on;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /**
   * The device of the parameters ('cpu' for a module without any). Module.to keeps them on one
   * device; a module whose parameters were placed on several by hand reports the first's.
   */
  get device(): string {
    for (const [, t] of this.namedParameters()) return t.device;
    return 'cpu';
  }

  /**
   * Moves every parameter (and its grad, if any) to `device` in place and returns this: the
   * module's fields, and anything else holding the parameter objects (an optimiser, a list from
   * parameters()), keep referring to the same Tensor objects, now over memory on `device`
   * (contiguous copies; the old memory is freed, unless a view made of a parameter earlier still
   * holds it — such a view keeps the old values). Not recorded by autograd. A parameter already
   * there is left alone, so `to` the current device costs nothing.
   *
   *   const model = new DiffusionViT('iuvit-t/4').to('cuda');
   */
  to(device: Device): this {
    const target = resolveDevice(device, 'Module.to').device;
    for (const t of this.parameters()) {
      t.relocate(target);
      t.grad?.relocate(target);
    }
    return this;
  }

  /** Sets every parameter's grad to null (disposing it). */
  zeroGrad(): void {
    for (const t of this.parameters()) {
      t.grad?.dispose();
      t.grad = null;
    }
  }

  /** Name -> parameter (the live tensors, not copies). */
  stateDict(): Map<string, Tensor> {
    return new Map(this.namedParameters());
  }

  /**
   * Copies values into the parameters. Every parameter must be present with its exact shape, and
   * with `strict` (default) no unknown names may appear. Values may be on another device than
   * the parameters (they are copied across).
   */
  loadStateDict(values: Map<string, Tensor>, options: { strict?: boolean } = {}): void {
    const strict = options.strict ?? true;
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !values.has(k));
    const unexpected = [...values.keys()].filter((k) => !own.has(k));
    if (missing.length || (strict && unexpected.length)) {
      throw new Error(`diffvit.loadStateDict: ${missing.length ? `missing ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` (+${missing.length - 5} more)` : ''}` : ''}${missing.length && unexpected.length ? '; ' : ''}${strict && unexpected.length ? `unexpected ${unexpected.slice(0, 5).join(', ')}${unexpected.length > 5 ? ` (+${unexpected.length - 5} more)` : ''}` : ''}`);
    }
    for (const [name, t] of own) {
      const src = values.get(name)!;
      if (src.shape.length !== t.shape.length || src.shape.some((s, i) => s !== t.shape[i])) {
        throw new Error(`diffvit.loadStateDict: parameter '${name}' expected shape ${formatShape(t.shape)}, received ${formatShape(src.shape)}`);
      }
      if (src.dtype !== t.dtype) throw new Error(`diffvit.loadStateDict: parameter '${name}' expected dtype ${t.dtype}, received ${src.dtype}`);
      copyAcross_(t, src);
    }
  }

  /** Frees every parameter (and grad). The module is unusable afterwards. */
  dispose(): void {
    for (const t of this.parameters()) {
      t.grad?.dispose();
      t.dispose();
    }
  }
}

/** Sub-modules named "0", "1", ... like torch.nn.ModuleList. */
export class ModuleList<M extends Module> extends Module {
  readonly items: M[];
  constructor(items: M[]) {
    super();
    this.items = items;
    items.forEach((m, i) => this.child(String(i), m));
  }
  get length(): number {
    return this.items.length;
  }
}
