#include "compiler/torchscript_fallback.h"

#include <algorithm>
#include <sstream>
#include <unordered_set>

#include <torch/csrc/jit/api/module.h>

#include "compiler/compile.h"
#include "compiler/embed.h"
#include "partition/region_graph.h"
#include "runtime/torchscript_call.h"
#include "tvmbridge/tensor_bridge.h"

namespace tvmbridge {
namespace {

using frontend::ConversionError;
using frontend::Value;
using torch::jit::Graph;
using torch::jit::Node;

bool IsTensor(const torch::jit::Value* value) {
  return value->type()->kind() == c10::TypeKind::TensorType;
}

// Whether `node` is one of `run`'s nodes, or inside one of their blocks.
bool InsideRun(const Node* node, const std::unordered_set<const Node*>& run) {
  for (; node != nullptr;
       node = node->owningBlock() ? node->owningBlock()->owningNode() : nullptr) {
    if (run.count(node)) return true;
  }
  return false;
}

// The values `node` (with its blocks) reads from outside the run, in first-use order.
void CollectOutsideReads(Node& node, const std::unordered_set<const Node*>& run,
                         std::vector<torch::jit::Value*>& reads) {
  auto visit = [&](torch::jit::Value* value) {
    if (!InsideRun(value->node(), run) &&
        std::find(reads.begin(), reads.end(), value) == reads.end()) {
      reads.push_back(value);
    }
  };
  for (torch::jit::Value* input : node.inputs()) visit(input);
  for (torch::jit::Block* block : node.blocks()) {
    for (Node* inner : block->nodes()) CollectOutsideReads(*inner, run, reads);
    for (torch::jit::Value* output : block->outputs()) visit(output);
  }
}

class HybridConverter {
 public:
  HybridConverter(Analysis& analysis, frontend::ValueMap& values,
                  frontend::ConversionContext& context)
      : analysis_(analysis), values_(values), context_(context) {
    for (const partition::Region& region : analysis.partition.regions) {
      for (const Node* node : region.nodes) in_tvm_.insert(node);
    }
  }

  void ConvertTopBlock() {
    std::vector<Node*> run;
    for (Node* node : analysis_.prepared.graph->nodes()) {
      if (node->kind() == c10::prim::Constant || in_tvm_.count(node) ||
          IsTensorBookkeeping(*node)) {
        CallTorchScript(run);
        frontend::ConvertNode(*node, context_, values_);
      } else if (!AllOutputsKnown(*node)) {
        run.push_back(node);
      }
    }
    CallTorchScript(run);
  }

 private:
  // Tuples and lists of tensors that only the return or TVM code reads (the model's return
  // value, say): built on the Relax side, so that what crosses from TorchScript is always
  // tensors. Those PyTorch reads stay in the run (and cross as their items, if built here).
  bool IsTensorBookkeeping(const Node& node) const {
    if (node.kind() != c10::prim::TupleConstruct && node.kind() != c10::prim::ListConstruct) {
      return false;
    }
    const auto& uses = node.output()->uses();
    return std::all_of(node.inputs().begin(), node.inputs().end(),
                       [](const torch::jit::Value* input) { return IsTensor(input); }) &&
           std::all_of(uses.begin(), uses.end(), [&](const torch::jit::Use& use) {
             return use.user->kind() == c10::prim::Return || in_tvm_.count(use.user);
           });
  }

  // Nodes computed from constants at conversion (the partitioner's constants). A node with
  // no outputs (a check that raises) is not: it runs with the PyTorch code around it.
  bool AllOutputsKnown(const Node& node) {
    if (node.outputs().empty()) return false;
    for (const torch::jit::Value* output : node.outputs()) {
      auto known = analysis_.partition.constants.find(output);
      if (known == analysis_.partition.constants.end()) return false;
      values_[output] = known->second;
    }
    return true;
  }

  // Replaces `run` (consecutive nodes left to PyTorch) by one call of the TorchScript region
  // made of them, and empties it.
  void CallTorchScript(std::vector<Node*>& run) {
    if (run.empty()) return;
    std::unordered_set<const Node*> members(run.begin(), run.end());
    std::vector<torch::jit::Value*> reads;
    for (Node* node : run) CollectOutsideReads(*node, members, reads);
    std::vector<torch::jit::Value*> results;  // what later nodes (or the return) use
    for (Node* node : run) {
      for (torch::jit::Value* output : node->outputs()) {
        if (std::any_of(
                output->uses().begin(), output->uses().end(),
                [&](const torch::jit::Use& use) { return !InsideRun(use.user, members); })) {
          results.push_back(output);
        }
      }
    }

    auto region = std::make_shared<Graph>();
    region->addInput("self");
    torch::jit::Module module = ModuleForGraph("__torch__.tvmbridge.TorchScriptRegion", region);
    partition::ValueRemap inner;
    std::vector<relax::Expr> arguments;
    // A tensor read becomes an input of the region; a constant, a constant of it; a list or
    // tuple built on the Relax side is rebuilt inside the region from its items.
    auto bring_in = [&](torch::jit::Value* read, const Value& converted,
                        auto& self_ref) -> torch::jit::Value* {
      if (converted.kind == Value::Kind::kConstant) {
        return region->insertConstant(converted.constant);
      }
      if (converted.kind == Value::Kind::kTensor) {
        arguments.push_back(converted.tensor);
        return region->addInput()->setType(c10::TensorType::get());
      }
      std::vector<torch::jit::Value*> items;
      for (const Value& item : converted.items) items.push_back(self_ref(read, item, self_ref));
      if (auto list = read->type()->cast<c10::ListType>()) {
        return region->insertNode(region->createList(list->getElementType(), items))->output();
      }
      if (read->type()->kind() == c10::TypeKind::TupleType) {
        return region->insertNode(region->createTuple(items))->output();
      }
      throw ConversionError("fallback='torchscript': PyTorch code (" + Describe(run) + ") reads %" +
                            read->debugName() + ", a " + read->type()->repr_str() +
                            " built by TVM code; only tensors, lists and tuples can cross");
    };
    for (torch::jit::Value* read : reads) {
      inner[read] = bring_in(read, values_.at(read), bring_in);
    }
    partition::CopyNodesInto(*region, run, inner, partition::NothingFromOutside);
    std::vector<torch::jit::Value*> returned;
    std::vector<relax::TensorInfo> result_types;
    for (torch::jit::Value* result : results) {
      if (!IsTensor(result)) {
        throw ConversionError("fallback='torchscript': PyTorch code (" + Describe(run) +
                              ") computes %" + result->debugName() + ", a " +
                              result->type()->repr_str() +
                              " that TVM code needs; only tensors can cross from TorchScript");
      }
      returned.push_back(inner.at(result));
      result_types.push_back(ResultType(result));
    }
    region->registerOutput(region->insertNode(region->createTuple(returned))->output());

    arguments.insert(
        arguments.begin(),
        relax::MakeConstant(ToTvm(PackTorchScriptRegion(SaveWithForward(module, region)))));
    relax::Expr call =
        context_.EmitExpr(relax::CallPurePacked(kTorchScriptRunFunction, arguments, result_types));
    for (size_t i = 0; i < results.size(); ++i) {
      values_[results[i]] =
          Value::Tensor(context_.EmitExpr(relax::TupleGetItem(call, static_cast<int>(i))));
    }
    run.clear();
  }

  // The observed shape when it is static; the rank alone when it depends on the data.
  relax::TensorInfo ResultType(const torch::jit::Value* value) const {
    auto observed = analysis_.observations.find(value);
    if (observed == analysis_.observations.end()) {
      throw ConversionError("fallback='torchscript': %" + value->debugName() +
                            " was not computed in the example runs, so its type is unknown");
    }
    relax::TensorInfo info;
    info.dtype = DtypeName(observed->second.dtype);
    info.ndim = static_cast<int>(observed->second.shape.size());
    if (observed->second.static_shape && observed->second.dim_symbols.empty()) {
      info.shape = observed->second.shape;
    }
    return info;
  }

  static std::string Describe(const std::vector<Node*>& run) {
    std::ostringstream text;
    for (size_t i = 0; i < run.size() && i < 3; ++i) {
      text << (i ? ", " : "") << run[i]->kind().toQualString();
    }
    if (run.size() > 3) text << ", ...";
    return text.str();
  }

  Analysis& analysis_;
  frontend::ValueMap& values_;
  frontend::ConversionContext& context_;
  std::unordered_set<const Node*> in_tvm_;
};

}  // namespace

frontend::ConversionResult ConvertWithTorchScriptFallback(
    const std::string& archive, const std::vector<TensorSpec>& inputs,
    const partition::PartitionOptions& options, const partition::ExampleInputs& examples) {
  Analysis analysis = Analyse(PrepareArchive(archive), inputs, options, examples);
  Graph& graph = *analysis.prepared.graph;
  frontend::ConversionResult result;
  std::vector<frontend::FunctionAssembler::Input> parameters =
      frontend::FunctionAssembler::ForwardInputs(graph, analysis.inputs);
  for (const auto& parameter : parameters) result.inputs.push_back(parameter.spec);
  frontend::FunctionAssembler function(parameters, analysis.partition.constants);
  HybridConverter(analysis, function.values(), function.context()).ConvertTopBlock();
  frontend::GraphOutputs outputs =
      frontend::ConvertGraphOutput(graph, function.context(), function.values());
  result.output_is_tuple = outputs.is_tuple;
  result.ir_module = function.Finish(outputs.tensors, outputs.is_tuple, "main", result.outputs);
  return result;
}

}  // namespace tvmbridge
