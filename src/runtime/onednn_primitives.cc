#include "runtime/onednn_primitives.h"

#include <unordered_map>

namespace tvmbridge {
namespace onednn {

const dnnl::engine& CpuEngine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

bool HasAmxInt8() {
  // oneDNN's ISAs are bit sets, each including those below it; the effective one is what this
  // CPU and OS allow.
  static const bool has = [] {
    const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
    return (isa & dnnl_cpu_isa_avx512_core_amx) == dnnl_cpu_isa_avx512_core_amx;
  }();
  return has;
}

dnnl::primitive_attr ScratchpadPerThread() {
  dnnl::primitive_attr attributes;
  attributes.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attributes;
}

memory WeightPlans::Pack(const memory::desc& layout) const {
  memory packed(layout, CpuEngine());
  memory plain(plain_layout_, CpuEngine(), plain_.data_ptr());
  dnnl::stream stream(CpuEngine());
  dnnl::reorder(plain, packed).execute(stream, plain, packed);
  stream.wait();
  return packed;
}

Plan WeightPlans::Finish(Described described, const memory& weight) {
  return {dnnl::primitive(described.descriptor), std::move(described.source),
          std::move(described.destination), described.descriptor.scratchpad_desc(), weight};
}

void Execute(const Plan& plan, void* source, void* destination, ExtraArguments extra) {
  // Per thread and kept, so a call allocates little: the argument map's entries, and scratch
  // memory grown to the largest plan this thread has run.
  thread_local dnnl::stream stream(CpuEngine());
  thread_local std::unordered_map<int, memory> arguments;
  thread_local at::Tensor scratch = at::empty({0}, at::kByte);
  arguments.clear();
  arguments[DNNL_ARG_SRC] = memory(plan.source, CpuEngine(), source);
  arguments[DNNL_ARG_WEIGHTS] = plan.weight;
  arguments[DNNL_ARG_DST] = memory(plan.destination, CpuEngine(), destination);
  for (const auto& [id, value] : extra) arguments[id] = value;
  const auto scratch_bytes = static_cast<int64_t>(plan.scratchpad.get_size());
  if (scratch.numel() < scratch_bytes) scratch = at::empty({scratch_bytes}, at::kByte);
  if (scratch_bytes > 0) {
    arguments[DNNL_ARG_SCRATCHPAD] = memory(plan.scratchpad, CpuEngine(), scratch.data_ptr());
  }
  plan.primitive.execute(stream, arguments);
  stream.wait();
}

}  // namespace onednn
}  // namespace tvmbridge
