// enable()'s run-time operator: a `tvmbridge::CompilationGroup` node compiles its subgraph on
// its first call with given input shapes and dtypes (weights and scalars compiled in), through
// the same path as tvmbridge.torch.compile, and keeps each compiled version in memory and on
// disk. With enable(dynamic=True), a call that changes only extents compiles one version over
// ranges (group_signature.h) instead of one more exact version.
#include <algorithm>
#include <map>
#include <mutex>
#include <sstream>

#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>
#include <torch/csrc/jit/runtime/custom_operator.h>
#include <torch/csrc/jit/runtime/interpreter.h>

#include "compiler/group_cache.h"
#include "compiler/group_signature.h"
#include "compiler/group_state.h"
#include "frontend/converter.h"
#include "partition/region_graph.h"

namespace tvmbridge::groups {
namespace {

using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Stack;
using torch::jit::Value;

// One compiled version of a group.
struct Version {
  GroupSignature signature;
  bool runs_tvm = false;  // false: the original subgraph runs in TorchScript
  // TVM took every node (whether it runs them, or never_slower measured PyTorch faster).
  bool converted = false;
  torch::jit::Module module;  // the compiled module, when runs_tvm
  std::shared_ptr<torch::jit::Code> forward;
};

class CompilationGroup {
 public:
  CompilationGroup(std::shared_ptr<Graph> subgraph, std::vector<int64_t> attribute_inputs,
                   int64_t settings_id)
      : subgraph_(std::move(subgraph)),
        attribute_inputs_(std::move(attribute_inputs)),
        settings_id_(settings_id) {}

  void Run(Stack& stack) {
    const size_t count = subgraph_->inputs().size();
    std::vector<c10::IValue> arguments(std::make_move_iterator(stack.end() - count),
                                       std::make_move_iterator(stack.end()));
    stack.resize(stack.size() - count);
    if (c10::GradMode::is_enabled() && RequiresGrad(arguments)) {
      ++Statistics().grad_calls;
      std::call_once(grad_warning_, [] {
        TORCH_WARN(
            "tvmbridge: inputs that require grad run in TorchScript (tvmbridge "
            "compiles for inference; use torch.no_grad() or torch.inference_mode())");
      });
      return RunOriginal(std::move(arguments), stack);
    }
    std::shared_ptr<const Version> version = Find(arguments);
    if (!version->runs_tvm) return RunOriginal(std::move(arguments), stack);
    const std::vector<ExpectedArgument>& expected = version->signature.arguments();
    Stack inner;
    inner.reserve(count + 1);
    inner.emplace_back(version->module._ivalue());
    for (size_t i = 0; i < count; ++i) {
      if (expected[i].kind == ExpectedArgument::Kind::kTensor) {
        inner.emplace_back(arguments[i].toTensor().contiguous());
      }
    }
    torch::jit::InterpreterState(*version->forward).run(inner);
    for (const c10::IValue& output : inner.back().toTupleRef().elements()) {
      stack.push_back(output);
    }
  }

 private:
  static bool RequiresGrad(const std::vector<c10::IValue>& arguments) {
    for (const c10::IValue& argument : arguments) {
      if (argument.isTensor() && argument.toTensor().requires_grad()) return true;
    }
    return false;
  }

  void RunOriginal(std::vector<c10::IValue> arguments, Stack& stack) {
    std::call_once(original_once_, [this] {
      original_ = std::make_shared<torch::jit::Code>(subgraph_, "tvmbridge_group_original");
    });
    Stack inner(std::make_move_iterator(arguments.begin()),
                std::make_move_iterator(arguments.end()));
    torch::jit::InterpreterState(*original_).run(inner);
    for (c10::IValue& output : inner) stack.push_back(std::move(output));
  }

  // The version for these arguments, compiled on first sight. Holding the lock while
  // compiling makes concurrent first calls wait for one compilation.
  std::shared_ptr<const Version> Find(const std::vector<c10::IValue>& arguments) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& version : versions_) {
      if (version->signature.Matches(arguments)) return version;
    }
    if (std::shared_ptr<const Version> widened = Widen(arguments)) {
      versions_.push_back(widened);
    } else {
      versions_.push_back(BuildExact(arguments));
    }
    return versions_.back();
  }

  // Under enable(dynamic=True): a version over ranges covering the latest converted version
  // and this call, when they differ in extents only. nullptr when there is none, or when TVM
  // cannot take the group over ranges (then it compiles exact versions from now on).
  std::shared_ptr<const Version> Widen(const std::vector<c10::IValue>& arguments) {
    if (widening_failed_ || !SettingsById(settings_id_)->dynamic_shapes) return nullptr;
    auto latest = std::find_if(versions_.rbegin(), versions_.rend(),
                               [](const auto& version) { return version->converted; });
    if (latest == versions_.rend()) return nullptr;
    std::vector<GroupSignature> tries;
    for (auto end :
         {GroupSignature::RangeEnd::kPowerOfTwo, GroupSignature::RangeEnd::kLargestSeen}) {
      std::optional<GroupSignature> widened = (*latest)->signature.WidenedTo(arguments, end);
      if (!widened) return nullptr;
      if (tries.empty() || !(*widened == tries.front())) tries.push_back(std::move(*widened));
    }
    std::string why_not;
    for (GroupSignature& signature : tries) {
      auto version = std::make_shared<Version>();
      version->signature = std::move(signature);
      // No examples: the runs at min and max need tensors no call has sent, so all runs
      // take random values valid for the graph (as tvmbridge.torch.compile's for ranges).
      CompileOutcome outcome = CompileInto(*version, {});
      why_not = std::move(outcome.why_not);
      // The model refused the range's end (a position table too short): a shorter end may do.
      if (outcome.refused) continue;
      if (version->converted) {
        ++Statistics().symbolic_compiles;
        return version;
      }
      break;  // TVM cannot take the group over ranges at all: a shorter end would not help
    }
    widening_failed_ = true;
    TORCH_WARN("tvmbridge: a compilation group (", Describe(),
               ") cannot compile over a range of shapes, so it compiles each new shape: ",
               why_not.empty() ? "TVM took none of its nodes" : why_not);
    return nullptr;
  }

  std::shared_ptr<const Version> BuildExact(const std::vector<c10::IValue>& arguments) {
    auto version = std::make_shared<Version>();
    std::string why_not = GroupSignature::Of(arguments, attribute_inputs_, version->signature);
    if (why_not.empty()) {
      // The example runs use this call's tensors: nothing runs on values nobody sent.
      partition::ExampleInputs examples;
      for (size_t i = 0; i < arguments.size(); ++i) {
        if (version->signature.arguments()[i].kind == ExpectedArgument::Kind::kTensor) {
          examples.push_back(arguments[i].toTensor().detach());
        }
      }
      why_not = CompileInto(*version, examples).why_not;
    }
    if (!version->runs_tvm) {
      TORCH_CHECK(!SettingsById(settings_id_)->options.require_full_compilation,
                  "tvmbridge: a compilation group (", Describe(),
                  ") cannot run in TVM, and enable(require_full_compilation=True) does not let "
                  "it run in TorchScript instead: ",
                  why_not.empty() ? "TVM took none of its nodes" : why_not);
      ++Statistics().fallbacks;
      if (!why_not.empty()) {
        TORCH_WARN("tvmbridge: a compilation group (", Describe(),
                   ") runs in TorchScript: ", why_not);
      }
    }
    return version;
  }

  // The subgraph specialised to `signature`: `self` first (unused), then the tensor inputs;
  // weights and scalars become constants. Returns it with the tensor inputs' specs.
  std::shared_ptr<Graph> Specialise(const GroupSignature& signature,
                                    std::vector<TensorSpec>& specs) const {
    auto graph = std::make_shared<Graph>();
    graph->addInput("self");
    partition::ValueRemap env;
    for (size_t i = 0; i < signature.arguments().size(); ++i) {
      Value* original = subgraph_->inputs()[i];
      const ExpectedArgument& expected = signature.arguments()[i];
      if (expected.kind == ExpectedArgument::Kind::kTensor) {
        TensorSpec spec = expected.tensor;
        spec.name = frontend::UserName(original, specs.size());
        env[original] = graph->addInput()->setType(c10::TensorType::get());
        specs.push_back(std::move(spec));
      } else {
        const c10::IValue& value = expected.value;
        env[original] = graph->insertConstant(
            value.isTensor() ? c10::IValue(value.toTensor().detach()) : value);
      }
    }
    const std::vector<Node*> nodes(subgraph_->nodes().begin(), subgraph_->nodes().end());
    partition::CopyNodesInto(*graph, nodes, env, partition::NothingFromOutside);
    std::vector<Value*> outputs;
    for (Value* output : subgraph_->outputs()) outputs.push_back(env.at(output));
    graph->registerOutput(graph->insertNode(graph->createTuple(outputs))->output());
    return graph;
  }

  struct CompileOutcome {
    std::string why_not;   // why the version leaves nodes to PyTorch; empty when it does not
    bool refused = false;  // compiling threw: the model refuses these shapes
  };

  // Compiles (or loads from the disk cache) the version.
  CompileOutcome CompileInto(Version& version, const partition::ExampleInputs& examples) {
    try {
      return {CompileOrLoad(version, examples), false};
    } catch (const std::exception& error) {
      return {frontend::ErrorText(error), true};
    }
  }

  // CompileInto's work; returns why the version cannot run TVM code alone.
  std::string CompileOrLoad(Version& version, const partition::ExampleInputs& examples) {
    c10::AutoGradMode no_grad(false);
    std::lock_guard<std::mutex> lock(CompileMutex());
    std::shared_ptr<const GroupSettings> settings = SettingsById(settings_id_);
    std::vector<TensorSpec> specs;
    std::shared_ptr<Graph> graph = Specialise(version.signature, specs);
    std::string key;
    std::optional<torch::jit::Module> cached;
    if (!settings->cache_dir.empty()) {
      key = CacheKey(*graph, specs, settings->fingerprint);
      cached = LoadFromCache(settings->cache_dir, key);
    }
    std::string why_not;
    if (cached) {
      version.module = std::move(*cached);
      ++Statistics().disk_loads;
    } else {
      CompileResult result = CompilePrepared(passes::PrepareFrozenGraph(graph), specs,
                                             settings->options, settings->build, examples);
      ++Statistics().compiles;
      version.module = passes::LoadModule(result.archive);
      if (!key.empty()) StoreInCache(settings->cache_dir, key, result.archive);
      for (const std::string& node : result.fallback_nodes) {
        why_not += (why_not.empty() ? "" : "; ") + node;
      }
      if (!why_not.empty() && result.tvm_regions > 0) {
        TORCH_WARN("tvmbridge: part of a compilation group runs in TorchScript: ", why_not);
        why_not.clear();
      }
    }
    version.runs_tvm = version.module.hasattr("tvm_module_0");
    version.converted = why_not.empty();
    if (version.runs_tvm) {
      version.forward = std::make_shared<torch::jit::Code>(
          version.module.get_method("forward").graph(), "tvmbridge_group");
    }
    return why_not;
  }

  // "aten::conv2d x3, aten::relu x2": what the group holds, for messages.
  std::string Describe() const {
    std::map<std::string, int> counts;
    for (const Node* node : subgraph_->nodes()) {
      if (node->kind() != c10::prim::Constant) ++counts[node->kind().toQualString()];
    }
    std::ostringstream text;
    for (const auto& [kind, count] : counts) {
      text << (text.tellp() > 0 ? ", " : "") << kind
           << (count > 1 ? " x" + std::to_string(count) : "");
    }
    return text.str();
  }

  const std::shared_ptr<Graph> subgraph_;
  const std::vector<int64_t> attribute_inputs_;
  const int64_t settings_id_;
  std::mutex mutex_;
  std::vector<std::shared_ptr<const Version>> versions_;
  bool widening_failed_ = false;
  std::once_flag grad_warning_;
  std::once_flag original_once_;
  std::shared_ptr<torch::jit::Code> original_;
};

torch::jit::Operation CreateGroupOperation(const Node* node) {
  auto group = std::make_shared<CompilationGroup>(node->g(c10::attr::Subgraph)->copy(),
                                                  node->is(AttributeInputsAttribute()),
                                                  node->i(SettingsIdAttribute()));
  return [group](Stack& stack) { group->Run(stack); };
}

const torch::jit::RegisterOperators kGroupOperator({torch::jit::Operator(
    GroupKind(), CreateGroupOperation, c10::AliasAnalysisKind::PURE_FUNCTION)});

}  // namespace
}  // namespace tvmbridge::groups
