#include "compiler/embed.h"

#include <algorithm>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include "partition/region_graph.h"

namespace tvmbridge {
namespace {

using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

void Expect(Graph& graph, Value* tensor, int64_t index, const TensorSpec& spec) {
  std::vector<torch::jit::NamedValue> arguments{tensor, index, spec.name, spec.shape, spec.dtype};
  if (!spec.dim_ranges.empty()) {
    std::vector<int64_t> min_extents, max_extents;
    for (const ExtentRange& range : spec.dim_ranges) {
      min_extents.push_back(range.min);
      max_extents.push_back(range.max);
    }
    arguments.emplace_back(min_extents);
    arguments.emplace_back(max_extents);
  }
  graph.insert(c10::Symbol::fromQualString("tvmbridge::expect_input"), arguments);
}

// Raises a ValueError naming the input when the caller gives it a value other than the
// default the graph was specialised to.
void ExpectDefault(Graph& graph, Value* input, const std::string& name, const c10::IValue& value) {
  Value* fixed = graph.insertConstant(value);
  Value* differs = value.isNone() ? graph.insert(c10::aten::__isnot__, {input, fixed})
                                  : graph.insert(c10::aten::ne, {input, fixed});
  Node* branch = graph.insertNode(graph.create(c10::prim::If, {differs}, 0));
  torch::jit::WithInsertPoint in_then(branch->addBlock());
  branch->addBlock();
  std::ostringstream message;
  message << "tvmbridge: input '" << name << "' was left out when the model was compiled, so "
          << "the compiled model is specialised to its default (" << value
          << "); compile with it given in inputs to call with other values";
  graph.insert(c10::prim::RaiseException, {message.str(), std::string("builtins.ValueError")});
}

void GuardInputs(Graph& graph, const ForwardSignature& signature) {
  const std::vector<TensorSpec>& inputs = signature.inputs;
  {
    torch::jit::WithInsertPoint at_start(graph.block()->param_node()->next());
    for (size_t fixed : signature.fixed_to_default) {
      ExpectDefault(graph, graph.inputs()[fixed + 1], inputs[fixed].name,
                    *signature.defaults.at(fixed));
    }
    std::vector<Value*> tensors;
    std::vector<int64_t> indices;
    std::vector<std::string> names;
    for (size_t i = 0; i < inputs.size(); ++i) {
      Value* input = graph.inputs()[i + 1];
      if (input->type()->kind() != c10::TypeKind::TensorType) continue;  // see `held`
      Expect(graph, input, static_cast<int64_t>(i), inputs[i]);
      tensors.push_back(input);
      indices.push_back(static_cast<int64_t>(i));
      names.push_back(inputs[i].name);
    }
    if (tensors.size() > 1) {
      Value* list = graph.insertNode(graph.createList(c10::TensorType::get(), tensors))->output();
      for (size_t written : signature.written_back_inputs) {
        auto position = std::find(indices.begin(), indices.end(), static_cast<int64_t>(written));
        graph.insert(c10::Symbol::fromQualString("tvmbridge::expect_unshared"),
                     {list, indices, names, std::distance(indices.begin(), position)});
      }
    }
  }
  for (const HeldTensor& tensor : signature.held) {
    torch::jit::WithInsertPoint after(tensor.value->node()->next());
    Expect(graph, tensor.value, tensor.input_index, tensor.spec);
  }
}

// `replaced` maps outputs of regions already replaced to the values that now stand for them.
void ReplaceWithTvmCall(Graph& graph, Value* self, const partition::Region& region,
                        const std::string& attribute, partition::ValueRemap& replaced) {
  partition::ReplaceRegion(region, replaced, [&](const std::vector<Value*>& current) {
    std::vector<Value*> inputs;
    for (Value* input : current) {
      bool from_pytorch = input->node()->kind() != c10::prim::Param;
      inputs.push_back(from_pytorch ? graph.insert(c10::aten::contiguous, {input}) : input);
    }
    Value* holder = graph.insertGetAttr(self, attribute);
    Value* input_list =
        graph.insertNode(graph.createList(c10::TensorType::get(), inputs))->output();
    Value* output_list =
        graph.insert(c10::Symbol::fromQualString("tvmbridge::run"), {holder, input_list});
    Node* unpack = graph.insertNode(graph.createListUnpack(output_list, region.outputs.size()));
    return std::vector<Value*>(unpack->outputs().begin(), unpack->outputs().end());
  });
}

}  // namespace

std::string EmbedRegions(const std::shared_ptr<Graph>& graph,
                         const std::vector<partition::Region>& regions,
                         const std::vector<c10::intrusive_ptr<TVMModule>>& modules,
                         const ForwardSignature& signature, const torch::jit::Module& original,
                         const std::string& report_json) {
  TORCH_INTERNAL_ASSERT(regions.size() == modules.size());
  // State the graph still reads or writes on `self` (attributes freezing kept because the
  // model assigns them, torchvision's `_has_warned`) moves to the compiled module.
  std::vector<std::pair<std::string, c10::IValue>> kept;
  for (const torch::jit::Use& use : graph->inputs()[0]->uses()) {
    const Node* user = use.user;
    if (user->kind() != c10::prim::GetAttr && user->kind() != c10::prim::SetAttr) continue;
    const std::string& name = user->s(c10::attr::name);
    TORCH_CHECK(original.hasattr(name), "tvmbridge: the compiled forward uses self.", name,
                ", which the model does not have");
    kept.emplace_back(name, original.attr(name));
  }
  torch::jit::Module module = ModuleForGraph("__torch__.tvmbridge.CompiledModule", graph);
  for (const auto& [name, value] : kept) {
    if (!module.hasattr(name)) module.register_attribute(name, value.type(), value);
  }
  module.register_attribute("tvmbridge_report", c10::StringType::get(), report_json);
  Value* self = graph->inputs()[0];
  partition::ValueRemap replaced;
  for (size_t k = 0; k < regions.size(); ++k) {
    std::string attribute = "tvm_module_" + std::to_string(k);
    c10::IValue tvm_module(modules[k]);
    module.register_attribute(attribute, tvm_module.type(), tvm_module);
    ReplaceWithTvmCall(*graph, self, regions[k], attribute, replaced);
  }
  GuardInputs(*graph, signature);
  torch::jit::EliminateDeadCode(graph);

  return SaveWithForward(module, graph, signature.defaults);
}

torch::jit::Module ModuleForGraph(const std::string& qualified_name,
                                  const std::shared_ptr<Graph>& graph) {
  torch::jit::Module module{c10::QualifiedName(qualified_name)};
  module.register_attribute("training", c10::BoolType::get(), false);
  graph->inputs().at(0)->setType(module.type());
  return module;
}

std::string SaveWithForward(torch::jit::Module& module, const std::shared_ptr<Graph>& graph,
                            const std::vector<std::optional<c10::IValue>>& defaults) {
  auto* forward = module._ivalue()->compilation_unit()->create_function(
      c10::QualifiedName(*module.type()->name(), "forward"), graph);
  std::vector<c10::Argument> arguments = forward->getSchema().arguments();
  for (size_t i = 0; i < defaults.size() && i + 1 < arguments.size(); ++i) {
    const c10::Argument& argument = arguments[i + 1];
    if (defaults[i]) {
      arguments[i + 1] = c10::Argument(argument.name(), argument.type(), argument.N(), defaults[i],
                                       argument.kwarg_only());
    }
  }
  forward->setSchema(forward->getSchema().cloneWithArguments(std::move(arguments)));
  module.type()->addMethod(forward);
  std::ostringstream archive;
  module.save(archive);
  return archive.str();
}

}  // namespace tvmbridge
