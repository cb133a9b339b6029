/** The samplers `generate` offers, by name. */
export const SAMPLERS = ['heun', 'euler', 'ddim', 'dpmpp2m'] as const;
export type SamplerName = (typeof SAMPLERS)[number];
