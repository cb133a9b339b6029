// Fused flash attention on the GPU (attention.cu): the same contract as cpu/attention.h, with
// args.precision choosing tensor cores (bf16 operands, fp32 accumulation) or an fp32 path.
#pragma once
#include "cpu/attention.h"

namespace dv::cuda {
void attention_forward(const cpu::AttentionForwardArgs& args);
void attention_backward(const cpu::AttentionBackwardArgs& args);
}  // namespace dv::cuda
