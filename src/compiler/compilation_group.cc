#include "compiler/compilation_group.h"

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <sstream>
#include <unordered_set>

#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/pass_manager.h>
#include <torch/csrc/jit/passes/remove_mutation.h>
#include <torch/csrc/jit/runtime/custom_operator.h>
#include <torch/csrc/jit/runtime/interpreter.h>
#include <torch/csrc/jit/serialization/import.h>

#include "frontend/converter.h"
#include "runtime/private_file.h"
#include "runtime/sha256.h"

namespace tvmbridge {
namespace {

using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Stack;
using torch::jit::Value;

const c10::Symbol kGroupKind = c10::Symbol::fromQualString("tvmbridge::CompilationGroup");
// Per group input: 1 when it is a module attribute (a weight), compiled in as a constant.
const c10::Symbol kAttributeInputs = c10::Symbol::attr("attribute_inputs");
const c10::Symbol kSettingsId = c10::Symbol::attr("settings_id");

// ---- Settings and statistics ------------------------------------------------------------

struct Registry {
  std::mutex mutex;
  // Every settings object ever enabled, by id: groups made under one keep using it. Groups
  // look theirs up when they compile rather than holding it, so that releasing the registry
  // drops every reference to the Python build function while Python is still alive.
  std::vector<std::shared_ptr<const GroupSettings>> settings;
  bool enabled = false;
};

Registry& GetRegistry() {
  static Registry registry;
  return registry;
}

// The settings a group was made with; throws once they were released at shutdown.
std::shared_ptr<const GroupSettings> SettingsById(int64_t id) {
  Registry& registry = GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mutex);
  std::shared_ptr<const GroupSettings> settings = registry.settings.at(static_cast<size_t>(id));
  TORCH_CHECK(settings != nullptr,
              "tvmbridge: compilation settings were released (the "
              "interpreter is shutting down)");
  return settings;
}

struct Counters {
  std::atomic<int64_t> groups{0}, compiles{0}, disk_loads{0}, fallbacks{0}, grad_calls{0};
};

Counters& Statistics() {
  static Counters counters;
  return counters;
}

thread_local int pass_suspended = 0;

// One compilation at a time in the process: TVM's pipeline runs under Python's GIL anyway,
// and the frontend's builders are not meant to be shared across threads.
std::mutex& CompileMutex() {
  static std::mutex mutex;
  return mutex;
}

// ---- The pass -----------------------------------------------------------------------------

bool WritesAttributes(const torch::jit::Block& block) {
  for (const Node* node : block.nodes()) {
    if (node->kind() == c10::prim::SetAttr) return true;
    for (const torch::jit::Block* nested : node->blocks()) {
      if (WritesAttributes(*nested)) return true;
    }
  }
  return false;
}

// A module that is not frozen reads each weight (`prim::GetAttr` on `self`) just before its
// use, which would split every run of supported ops. When the graph writes no attribute, the
// reads move to the top, in order, and the runs close up.
void HoistAttributeReads(Graph& graph) {
  if (WritesAttributes(*graph.block())) return;
  std::vector<Node*> reads;
  std::unordered_set<const Node*> hoisted;
  for (Node* node : graph.nodes()) {
    if (node->kind() != c10::prim::GetAttr) continue;
    const Node* source = node->input(0)->node();
    if (source->kind() == c10::prim::Param || hoisted.count(source)) {
      reads.push_back(node);
      hoisted.insert(node);
    }
  }
  Node* front = nullptr;
  for (Node* node : graph.nodes()) {
    if (!hoisted.count(node)) {
      front = node;
      break;
    }
  }
  for (Node* read : reads) {
    if (front != nullptr && front->isBefore(read)) read->moveBefore(front);
  }
}

// The region as a graph of its own: its inputs (`inputs`: the values that stand for
// region.inputs now), the constants it uses, its nodes.
std::shared_ptr<Graph> RegionSubgraph(const partition::Region& region,
                                      const std::vector<Value*>& inputs) {
  auto subgraph = std::make_shared<Graph>();
  std::unordered_map<Value*, Value*> inner;
  for (Value* input : inputs) inner[input] = subgraph->addInput()->copyMetadata(input);
  auto lookup = [&](Value* value) -> Value* {
    auto found = inner.find(value);
    if (found != inner.end()) return found->second;
    TORCH_INTERNAL_ASSERT(value->node()->kind() == c10::prim::Constant, "a region reads %",
                          value->debugName(), " from outside");
    Node* constant = subgraph->insertNode(subgraph->createClone(value->node(), nullptr));
    return inner[value] = constant->output();
  };
  for (Node* node : region.nodes) {
    Node* copy = subgraph->insertNode(subgraph->createClone(node, lookup));
    for (size_t i = 0; i < node->outputs().size(); ++i) inner[node->output(i)] = copy->output(i);
  }
  for (Value* output : region.outputs) subgraph->registerOutput(inner.at(output));
  return subgraph;
}

// `replaced` maps outputs of regions already replaced to the group outputs standing for them.
void ReplaceWithGroup(Graph& graph, const partition::Region& region, int64_t settings_id,
                      std::unordered_map<Value*, Value*>& replaced) {
  std::vector<Value*> inputs;
  std::vector<int64_t> attribute_inputs;
  for (Value* input : region.inputs) {
    auto earlier = replaced.find(input);
    Value* current = earlier != replaced.end() ? earlier->second : input;  // input is gone then
    inputs.push_back(current);
    attribute_inputs.push_back(current->node()->kind() == c10::prim::GetAttr ? 1 : 0);
  }
  Node* group = graph.create(kGroupKind, inputs, region.outputs.size());
  group->g_(c10::attr::Subgraph, RegionSubgraph(region, inputs));
  group->is_(kAttributeInputs, attribute_inputs);
  group->i_(kSettingsId, settings_id);
  group->insertBefore(region.nodes.front());
  for (size_t i = 0; i < region.outputs.size(); ++i) {
    Value* output = region.outputs[i];
    group->output(i)->setType(output->type())->copyMetadata(output);
    output->replaceAllUsesWith(group->output(i));
    replaced[output] = group->output(i);
  }
  for (auto it = region.nodes.rbegin(); it != region.nodes.rend(); ++it) (*it)->destroy();
}

// Returns the number of groups made.
size_t FormGroups(Graph& graph, int64_t min_block_size, int64_t settings_id) {
  std::vector<partition::Region> regions = partition::RegionsByOpKind(graph, min_block_size);
  std::unordered_map<Value*, Value*> replaced;
  for (const partition::Region& region : regions) {
    ReplaceWithGroup(graph, region, settings_id, replaced);
  }
  return regions.size();
}

void FuseCompilationGroups(std::shared_ptr<Graph>& graph) {
  if (pass_suspended > 0) return;
  int64_t min_block_size = 0;
  int64_t settings_id = 0;
  {
    Registry& registry = GetRegistry();
    std::lock_guard<std::mutex> lock(registry.mutex);
    if (!registry.enabled) return;
    min_block_size = registry.settings.back()->options.min_block_size;
    settings_id = static_cast<int64_t>(registry.settings.size()) - 1;
  }
  // On a copy: a failure here must leave the user's graph as it was, and not raise.
  std::shared_ptr<Graph> grouped = graph->copy();
  try {
    HoistAttributeReads(*grouped);
    torch::jit::RemoveListMutation(grouped);
    torch::jit::RemoveTensorMutation(grouped);
    size_t groups = FormGroups(*grouped, min_block_size, settings_id);
    if (groups == 0) return;
    torch::jit::EliminateDeadCode(grouped);
    grouped->lint();
    Statistics().groups += static_cast<int64_t>(groups);
    graph = std::move(grouped);
  } catch (const std::exception& error) {
    TORCH_WARN(
        "tvmbridge: this graph stays stock TorchScript; forming compilation groups "
        "failed: ",
        frontend::ErrorText(error));
  }
}

// ---- The group at run time ----------------------------------------------------------------

// Scalars and lists of them can be compiled in; anything holding tensors cannot.
bool IsFreezableScalar(const c10::IValue& value) {
  return value.isInt() || value.isDouble() || value.isBool() || value.isNone() ||
         value.isString() || value.isDevice() || value.isIntList() || value.isDoubleList() ||
         value.isBoolList();
}

// What one compiled version of a group was specialised to, per input.
struct Expectation {
  enum class Kind { kTensor, kFrozen };
  Kind kind = Kind::kTensor;
  std::vector<int64_t> shape;                      // kTensor
  c10::ScalarType dtype = c10::ScalarType::Float;  // kTensor
  c10::IValue value;  // kFrozen: a weight (compared by identity and version) or a scalar
  int64_t version = 0;

  bool Matches(const c10::IValue& argument) const {
    if (kind == Kind::kTensor) {
      if (!argument.isTensor()) return false;
      const at::Tensor& tensor = argument.toTensor();
      return tensor.scalar_type() == dtype && tensor.sizes().equals(shape) && tensor.is_cpu();
    }
    if (value.isTensor()) {
      return argument.isTensor() && argument.toTensor().is_same(value.toTensor()) &&
             VersionOf(value.toTensor()) == version;
    }
    return IsFreezableScalar(argument) && argument == value;
  }

  static int64_t VersionOf(const at::Tensor& tensor) {
    return tensor.is_inference() ? 0 : static_cast<int64_t>(tensor._version());
  }
};

// One compiled version of a group.
struct Version {
  std::vector<Expectation> expectations;
  bool runs_tvm = false;      // false: the original subgraph runs in TorchScript
  torch::jit::Module module;  // the compiled module, when runs_tvm
  std::shared_ptr<torch::jit::Code> forward;

  bool Matches(const std::vector<c10::IValue>& arguments) const {
    for (size_t i = 0; i < expectations.size(); ++i) {
      if (!expectations[i].Matches(arguments[i])) return false;
    }
    return true;
  }
};

// Readers see the old file or the whole new one, never a part. Failure costs the cache entry
// only (a warning).
void StoreInCache(const std::filesystem::path& path, const std::string& bytes) {
  std::error_code error;
  // A new cache folder is the user's alone: the files in it are loaded as native code.
  if (std::filesystem::create_directories(path.parent_path(), error)) {
    std::filesystem::permissions(path.parent_path(), std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::replace, error);
  }
  try {
    WriteFileAtomically(path.string(), bytes.data(), bytes.size(), 0600);
  } catch (const c10::Error& failure) {
    TORCH_WARN("tvmbridge: could not store a compiled group in the cache (",
               failure.what_without_backtrace(), "); it is compiled again in the next process");
  }
}

std::string TensorDigest(const at::Tensor& tensor) {
  at::Tensor dense = tensor.contiguous();
  std::ostringstream text;
  text << dense.scalar_type() << dense.sizes() << ":"
       << Sha256Hex(dense.data_ptr(), dense.nbytes());
  return text.str();
}

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
    Stack inner;
    inner.reserve(count + 1);
    inner.emplace_back(version->module._ivalue());
    for (size_t i = 0; i < count; ++i) {
      if (version->expectations[i].kind == Expectation::Kind::kTensor) {
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
      if (version->Matches(arguments)) return version;
    }
    versions_.push_back(Build(arguments));
    return versions_.back();
  }

  // Why these arguments cannot be compiled in or passed to TVM; empty when they can.
  std::string Expect(const std::vector<c10::IValue>& arguments, Version& version) const {
    for (size_t i = 0; i < arguments.size(); ++i) {
      const c10::IValue& argument = arguments[i];
      Expectation expectation;
      if (argument.isTensor() && !attribute_inputs_[i]) {
        const at::Tensor& tensor = argument.toTensor();
        if (!tensor.is_cpu()) return "an input is on " + tensor.device().str() + ", not the CPU";
        expectation.shape = tensor.sizes().vec();
        expectation.dtype = tensor.scalar_type();
      } else if (argument.isTensor() || IsFreezableScalar(argument)) {
        expectation.kind = Expectation::Kind::kFrozen;
        expectation.value = argument;
        if (argument.isTensor()) {
          expectation.version = Expectation::VersionOf(argument.toTensor());
        }
      } else {
        return "an input is a " + argument.type()->repr_str() +
               " computed by PyTorch, which cannot be compiled in";
      }
      version.expectations.push_back(std::move(expectation));
    }
    return "";
  }

  // The subgraph specialised to `version`: `self` first (unused), then the tensor inputs;
  // weights and scalars become constants. Returns it with the tensor inputs' specs.
  std::shared_ptr<Graph> Specialise(const std::vector<c10::IValue>& arguments,
                                    const Version& version, std::vector<TensorSpec>& specs) const {
    auto graph = std::make_shared<Graph>();
    graph->addInput("self");
    std::unordered_map<Value*, Value*> env;
    for (size_t i = 0; i < arguments.size(); ++i) {
      Value* original = subgraph_->inputs()[i];
      const Expectation& expectation = version.expectations[i];
      if (expectation.kind == Expectation::Kind::kTensor) {
        std::string name = frontend::UserName(original, specs.size());
        env[original] = graph->addInput()->setType(c10::TensorType::get());
        specs.push_back({name, expectation.shape, expectation.dtype});
      } else {
        c10::IValue value =
            arguments[i].isTensor() ? c10::IValue(arguments[i].toTensor().detach()) : arguments[i];
        env[original] = graph->insertConstant(value);
      }
    }
    auto lookup = [&](Value* value) { return env.at(value); };
    for (Node* node : subgraph_->nodes()) {
      Node* copy = graph->insertNode(graph->createClone(node, lookup));
      for (size_t i = 0; i < node->outputs().size(); ++i) env[node->output(i)] = copy->output(i);
    }
    std::vector<Value*> outputs;
    for (Value* output : subgraph_->outputs()) outputs.push_back(env.at(output));
    graph->registerOutput(graph->insertNode(graph->createTuple(outputs))->output());
    return graph;
  }

  // Same graph, weights, shapes and settings: same key, in any process.
  static std::string CacheKey(const Graph& graph, const std::vector<TensorSpec>& specs,
                              const GroupSettings& settings) {
    std::ostringstream text;
    text << settings.fingerprint << "\n" << graph;
    for (const TensorSpec& spec : specs) text << spec.dtype << c10::IntArrayRef(spec.shape);
    for (const Node* node : graph.nodes()) {
      if (node->kind() != c10::prim::Constant) continue;
      auto constant = torch::jit::toIValue(node->output());
      if (constant && constant->isTensor()) text << TensorDigest(constant->toTensor());
    }
    std::string bytes = text.str();
    return Sha256Hex(bytes.data(), bytes.size());
  }

  std::shared_ptr<const Version> Build(const std::vector<c10::IValue>& arguments) {
    auto version = std::make_shared<Version>();
    std::string why_not = Expect(arguments, *version);
    if (why_not.empty()) {
      try {
        why_not = CompileInto(arguments, *version);
      } catch (const std::exception& error) {
        why_not = frontend::ErrorText(error);
      }
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

  // Compiles (or loads from the disk cache) the version; returns why it cannot run TVM code.
  std::string CompileInto(const std::vector<c10::IValue>& arguments, Version& version) {
    c10::AutoGradMode no_grad(false);
    std::lock_guard<std::mutex> lock(CompileMutex());
    std::shared_ptr<const GroupSettings> settings = SettingsById(settings_id_);
    std::vector<TensorSpec> specs;
    std::shared_ptr<Graph> graph = Specialise(arguments, version, specs);
    std::filesystem::path cached;
    bool loaded = false;
    if (!settings->cache_dir.empty()) {
      cached =
          std::filesystem::path(settings->cache_dir) / (CacheKey(*graph, specs, *settings) + ".pt");
      if (std::filesystem::exists(cached)) {
        try {
          version.module = torch::jit::load(cached.string());
          loaded = true;
          ++Statistics().disk_loads;
        } catch (const std::exception& error) {
          TORCH_WARN("tvmbridge: ignoring the unreadable cache file ", cached.string(), ": ",
                     frontend::ErrorText(error));
        }
      }
    }
    std::string why_not;
    if (!loaded) {
      // The example runs use this call's tensors: nothing runs on values nobody sent.
      partition::ExampleInputs examples;
      for (size_t i = 0; i < arguments.size(); ++i) {
        if (version.expectations[i].kind == Expectation::Kind::kTensor) {
          examples.push_back(arguments[i].toTensor().detach());
        }
      }
      CompileResult result = CompilePrepared(frontend::PrepareFrozenGraph(graph), specs,
                                             settings->options, settings->build, examples);
      ++Statistics().compiles;
      version.module = frontend::LoadModule(result.archive);
      if (!cached.empty()) StoreInCache(cached, result.archive);
      for (const std::string& node : result.fallback_nodes) {
        why_not += (why_not.empty() ? "" : "; ") + node;
      }
      if (!why_not.empty() && result.tvm_regions > 0) {
        TORCH_WARN("tvmbridge: part of a compilation group runs in TorchScript: ", why_not);
        why_not.clear();
      }
    }
    version.runs_tvm = version.module.hasattr("tvm_module_0");
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
  std::once_flag grad_warning_;
  std::once_flag original_once_;
  std::shared_ptr<torch::jit::Code> original_;
};

torch::jit::Operation CreateGroupOperation(const Node* node) {
  auto group = std::make_shared<CompilationGroup>(node->g(c10::attr::Subgraph)->copy(),
                                                  node->is(kAttributeInputs), node->i(kSettingsId));
  return [group](Stack& stack) { group->Run(stack); };
}

const torch::jit::RegisterOperators kGroupOperator({torch::jit::Operator(
    kGroupKind, CreateGroupOperation, c10::AliasAnalysisKind::PURE_FUNCTION)});

const torch::jit::RegisterPass kGroupPass(FuseCompilationGroups);

}  // namespace

CompilationGroupsSuspended::CompilationGroupsSuspended() { ++pass_suspended; }
CompilationGroupsSuspended::~CompilationGroupsSuspended() { --pass_suspended; }

void EnableCompilationGroups(GroupSettings settings) {
  Registry& registry = GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mutex);
  registry.settings.push_back(std::make_shared<const GroupSettings>(std::move(settings)));
  registry.enabled = true;
}

void DisableCompilationGroups() {
  Registry& registry = GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mutex);
  registry.enabled = false;
}

void ReleaseCompilationSettings() {
  Registry& registry = GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mutex);
  registry.enabled = false;
  for (auto& settings : registry.settings) settings.reset();
}

bool CompilationGroupsEnabled() {
  Registry& registry = GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mutex);
  return registry.enabled;
}

GroupStats CompilationGroupStatistics() {
  Counters& counters = Statistics();
  return {counters.groups.load(), counters.compiles.load(), counters.disk_loads.load(),
          counters.fallbacks.load(), counters.grad_calls.load()};
}

}  // namespace tvmbridge
