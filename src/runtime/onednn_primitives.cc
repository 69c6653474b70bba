#include "runtime/onednn_primitives.h"

namespace tvmbridge {
namespace onednn {

const dnnl::engine& CpuEngine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

bool HasAmx() {
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
  return {dnnl::primitive(described.descriptor),
          std::move(described.source),
          std::move(described.destination),
          described.descriptor.scratchpad_desc(),
          described.descriptor.query_md(dnnl::query::exec_arg_md, DNNL_ARG_BIAS),
          described.descriptor.query_md(dnnl::query::exec_arg_md, kAddendArgument),
          weight,
          described.descriptor.impl_info_str()};
}

std::unique_ptr<ArgumentPool::Arguments> ArgumentPool::Take() {
  std::lock_guard<std::mutex> taking(mutex_);
  if (idle_.empty()) return nullptr;
  std::unique_ptr<Arguments> arguments = std::move(idle_.back());
  idle_.pop_back();
  return arguments;
}

void ArgumentPool::Return(std::unique_ptr<Arguments> arguments) {
  std::lock_guard<std::mutex> returning(mutex_);
  idle_.push_back(std::move(arguments));
}

void Execute(const Plan& plan, void* source, void* destination, const void* bias,
             ExtraArguments extra, const void* addend) {
  // Per thread and kept, as the argument sets are per plan: scratch memory grown to the largest
  // plan this thread has run. Per call, small models spent a third of their time outside the
  // kernels (MobileNet-V2 at 64 px), making memory objects and tensors among it.
  thread_local dnnl::stream stream(CpuEngine());
  thread_local at::Tensor scratch = at::empty({0}, at::kByte);
  const auto scratch_bytes = static_cast<int64_t>(plan.scratchpad.get_size());
  if (scratch.numel() < scratch_bytes) scratch = at::empty({scratch_bytes}, at::kByte);
  std::unique_ptr<ArgumentPool::Arguments> arguments = plan.arguments->Take();
  if (!arguments) {
    arguments = std::make_unique<ArgumentPool::Arguments>();
    (*arguments)[DNNL_ARG_SRC] = memory(plan.source, CpuEngine(), nullptr);
    (*arguments)[DNNL_ARG_WEIGHTS] = plan.weight;
    (*arguments)[DNNL_ARG_DST] = memory(plan.destination, CpuEngine(), nullptr);
    if (scratch_bytes > 0) {
      (*arguments)[DNNL_ARG_SCRATCHPAD] = memory(plan.scratchpad, CpuEngine(), nullptr);
    }
  }
  arguments->at(DNNL_ARG_SRC).set_data_handle(source);
  arguments->at(DNNL_ARG_DST).set_data_handle(destination);
  if (scratch_bytes > 0) arguments->at(DNNL_ARG_SCRATCHPAD).set_data_handle(scratch.data_ptr());
  // An argument only some calls pass: its memory object made at the set's first such call.
  const auto set = [&arguments](int id, const memory::desc& layout, const void* data) {
    memory& value = (*arguments)[id];
    if (!value) value = memory(layout, CpuEngine(), nullptr);
    value.set_data_handle(const_cast<void*>(data));
  };
  if (bias) set(DNNL_ARG_BIAS, plan.bias, bias);
  if (addend) set(kAddendArgument, plan.addend, addend);
  for (const auto& [id, value] : extra) (*arguments)[id] = value;
  plan.primitive.execute(stream, *arguments);
  stream.wait();
  plan.arguments->Return(std::move(arguments));
}

}  // namespace onednn
}  // namespace tvmbridge
