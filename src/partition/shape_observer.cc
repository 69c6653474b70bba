#include "partition/shape_observer.h"

#include "frontend/converter.h"
#include "frontend/op_traits.h"
#include "passes/passes.h"

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <unordered_set>

#include <ATen/Functions.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/util/Exception.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/jit_log.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/loop_unrolling.h>
#include <torch/csrc/jit/passes/lower_tuples.h>
#include <torch/csrc/jit/passes/peephole_list_idioms.h>
#include <torch/csrc/jit/runtime/interpreter.h>
#include <torch/library.h>

namespace tvmbridge::partition {
namespace {

using torch::jit::Block;
using torch::jit::Node;
using torch::jit::Value;

// aten::index takes its indices in a list, which observations do not cover: its shape is
// data-dependent when an index is a boolean (or byte) mask, or has a data-dependent shape
// itself; with integer index tensors of static shape it is theirs, broadcast.
bool IndexShapeIsDataDependent(const Node& node, const Observations& observations) {
  const Node* list = node.input(1)->node();
  if (list->kind() != c10::prim::ListConstruct) return true;  // not visible: assume the worst
  for (const Value* index : list->inputs()) {
    if (index->type()->kind() == c10::TypeKind::NoneType) continue;
    auto it = observations.find(index);
    if (it == observations.end() || !it->second.static_shape) return true;
    c10::ScalarType dtype = it->second.dtype;
    if (dtype == c10::ScalarType::Bool || dtype == c10::ScalarType::Byte) return true;
  }
  return false;
}

// Whether the node's result extents depend on tensor values, not only on shapes: what PyTorch
// says of the op (frontend::MayHaveDynamicOutputShape), refined where the arguments decide it.
bool ValueDecidedShape(const Node& node, const Observations& observations) {
  if (node.kind() == c10::aten::index) return IndexShapeIsDataDependent(node, observations);
  if (node.kind() == c10::aten::one_hot) {  // num_classes=-1: one more than the largest index
    std::optional<int64_t> classes = torch::jit::constant_as<int64_t>(node.input(1));
    return !classes || *classes < 0;
  }
  return frontend::MayHaveDynamicOutputShape(node);
}

// Where the probe op records; one observation run at a time per thread.
thread_local std::vector<ObservedTensor>* current_records = nullptr;
thread_local std::vector<bool>* current_seen = nullptr;
// Per probe, the shape each run saw first (a run that never reached it: nullopt).
using RunShapes = std::vector<std::optional<std::vector<int64_t>>>;
thread_local std::vector<RunShapes>* current_run_shapes = nullptr;
thread_local size_t current_run = 0;
// Bytes of floating-point samples still to keep in this run; negative: keep none.
thread_local int64_t sample_budget = -1;

void KeepSample(ObservedTensor& record, const at::Tensor& tensor) {
  if (sample_budget < 0) return;
  const bool floating = c10::isFloatingType(tensor.scalar_type());
  // A loop observes its body's tensors once per iteration; the last value counts.
  if (floating && record.sample.defined()) {
    sample_budget += static_cast<int64_t>(record.sample.nbytes());
  }
  const int64_t bytes = static_cast<int64_t>(tensor.nbytes());
  if (floating && bytes > sample_budget) {
    record.sample = at::Tensor();
    return;
  }
  if (floating) sample_budget -= bytes;
  record.sample = tensor.clone();  // later in-place ops must not change it
}

// `value` is a Tensor-typed value of the graph, which at run time may also be the placeholder
// of a path not taken (prim::Uninitialized: TorchScript's lowering of early returns and
// raising branches) or None (an absent optional tensor, after unchecked_cast).
void Observe(const c10::IValue& value, int64_t id) {
  if (current_records == nullptr || id < 0 || static_cast<size_t>(id) >= current_records->size()) {
    return;
  }
  if (!value.isTensor() && !value.isNone()) return;  // a placeholder: nothing ran here
  ObservedTensor& record = (*current_records)[id];
  const at::Tensor tensor = value.isTensor() ? value.toTensor() : at::Tensor();
  if (!tensor.defined()) {  // an absent optional tensor: nothing a region could take
    (*current_seen)[id] = true;
    record.static_shape = false;
    record.seen_undefined = true;
    return;
  }
  record.seen_defined = true;
  KeepSample(record, tensor);
  std::vector<int64_t> shape = tensor.sizes().vec();
  RunShapes& runs = (*current_run_shapes)[id];
  if (runs.size() <= current_run) runs.resize(current_run + 1);
  if (!runs[current_run]) {
    runs[current_run] = shape;
  } else if (*runs[current_run] != shape) {  // loop iterations of one run disagree
    record.static_shape = false;
  }
  if (!(*current_seen)[id]) {
    (*current_seen)[id] = true;
    record.dtype = tensor.scalar_type();
  } else if (record.dtype != tensor.scalar_type()) {
    record.static_shape = false;
  }
  record.shape = shape;
}

// The extents of one dim in each run, keyed to the input symbol they belong to.
using RunExtents = std::vector<int64_t>;

// What the runs' shapes say of a tensor (see ObserveTensors): `symbols` gives the input
// symbols by their extents in the runs; an extent that matches none, or two, is dynamic.
void ResolveRunShapes(ObservedTensor& record, const RunShapes& runs, size_t run_count,
                      const std::map<RunExtents, std::vector<std::string>>& symbols,
                      const std::map<std::string, ExtentRange>& ranges) {
  if (!record.static_shape) return;
  if (runs.size() != run_count ||
      std::any_of(runs.begin(), runs.end(), [](const auto& shape) { return !shape; })) {
    // Not reached in every run (a branch): nothing says how its shape follows the inputs.
    if (std::any_of(runs.begin(), runs.end(),
                    [&](const auto& shape) { return shape && *shape != record.shape; })) {
      record.static_shape = false;
    }
    return;
  }
  const size_t rank = runs[0]->size();
  for (const auto& shape : runs) {
    if (shape->size() != rank) {
      record.static_shape = false;
      return;
    }
  }
  std::vector<std::string> dim_symbols(rank);
  std::vector<ExtentRange> dim_ranges;
  bool symbolic = false;
  for (size_t d = 0; d < rank; ++d) {
    RunExtents extents;
    for (const auto& shape : runs) extents.push_back((*shape)[d]);
    if (std::all_of(extents.begin(), extents.end(),
                    [&](int64_t extent) { return extent == extents[0]; })) {
      dim_ranges.push_back({extents[0], extents[0], extents[0]});
      continue;
    }
    auto symbol = symbols.find(extents);
    if (symbol == symbols.end() || symbol->second.size() != 1) {
      record.static_shape = false;
      return;
    }
    dim_symbols[d] = symbol->second[0];
    dim_ranges.push_back(ranges.at(dim_symbols[d]));
    symbolic = true;
  }
  if (symbolic) {
    record.dim_symbols = std::move(dim_symbols);
    record.dim_ranges = std::move(dim_ranges);
  }
}

bool IsTensor(const Value* value) { return value->type()->kind() == c10::TypeKind::TensorType; }

// Pairs every value of `copy` with the value of `original` at the same place.
void MatchValues(const Block* original, const Block* copy,
                 std::unordered_map<const Value*, const Value*>& to_original) {
  for (size_t i = 0; i < original->inputs().size(); ++i) {
    to_original[copy->inputs()[i]] = original->inputs()[i];
  }
  auto original_node = original->nodes().begin();
  auto copy_node = copy->nodes().begin();
  for (; original_node != original->nodes().end(); ++original_node, ++copy_node) {
    for (size_t i = 0; i < (*original_node)->outputs().size(); ++i) {
      to_original[(*copy_node)->output(i)] = (*original_node)->output(i);
    }
    for (size_t b = 0; b < (*original_node)->blocks().size(); ++b) {
      MatchValues((*original_node)->blocks()[b], (*copy_node)->blocks()[b], to_original);
    }
  }
}

void InsertProbe(torch::jit::Graph& graph, Value* value, int64_t id) {
  Node* probe = graph.create(c10::Symbol::fromQualString("tvmbridge::_observe"),
                             {value, graph.insertConstant(id)}, 0);
  graph.insertNode(probe);
}

// Adds a probe after every tensor definition in `block` (and nested blocks).
void Instrument(torch::jit::Graph& graph, Block* block,
                const std::unordered_map<const Value*, const Value*>& to_original,
                std::unordered_map<const Value*, int64_t>& ids) {
  auto probe = [&](Value* value) {
    // Uninitialized: the placeholder output of a branch that raises.
    if (!IsTensor(value) || value->node()->kind() == c10::prim::Uninitialized) return;
    int64_t id = static_cast<int64_t>(ids.size());
    ids.emplace(to_original.at(value), id);
    InsertProbe(graph, value, id);
  };
  {
    torch::jit::WithInsertPoint at_start(block->nodes().front());
    for (Value* param : block->inputs()) probe(param);
  }
  std::vector<Node*> nodes(block->nodes().begin(), block->nodes().end());
  for (Node* node : nodes) {
    for (Block* nested : node->blocks()) Instrument(graph, nested, to_original, ids);
    torch::jit::WithInsertPoint after(node->next());
    for (Value* output : node->outputs()) probe(output);
  }
}

// The number of rows of the tables an integer input indexes, where the graph shows them: an
// embedding's (or index_select's) constant weight, reached through ops that keep the values.
// Example values must stay below it: PyTorch raises for others, and some kernels read out of
// bounds. nullopt when the graph shows no such use.
std::optional<int64_t> IndexedRows(const Value* input) {
  static const std::unordered_set<std::string> keeps_values = {
      "aten::to",      "aten::view",    "aten::reshape",    "aten::flatten", "aten::unsqueeze",
      "aten::squeeze", "aten::expand",  "aten::contiguous", "aten::slice",   "aten::select",
      "aten::clone",   "aten::long",    "aten::int",        "aten::t",       "aten::transpose",
      "aten::permute", "aten::type_as", "aten::detach",
  };
  auto rows_of = [](const Value* table, std::optional<int64_t> dim) -> std::optional<int64_t> {
    std::optional<c10::IValue> constant = torch::jit::toIValue(table);
    if (!constant || !constant->isTensor() || !dim) return std::nullopt;
    const at::Tensor& tensor = constant->toTensor();
    if (tensor.dim() == 0) return std::nullopt;
    int64_t axis = *dim < 0 ? *dim + tensor.dim() : *dim;
    if (axis < 0 || axis >= tensor.dim()) return std::nullopt;
    return tensor.size(axis);
  };
  std::optional<int64_t> rows;
  std::vector<const Value*> pending{input};
  while (!pending.empty()) {
    const Value* value = pending.back();
    pending.pop_back();
    for (const torch::jit::Use& use : value->uses()) {
      const Node* user = use.user;
      const std::string kind = user->kind().toQualString();
      std::optional<int64_t> found;
      if ((kind == "aten::embedding" || kind == "aten::embedding_bag") && use.offset == 1) {
        found = rows_of(user->input(0), 0);
      } else if (kind == "aten::index_select" && use.offset == 2) {
        found = rows_of(user->input(0), torch::jit::constant_as<int64_t>(user->input(1)));
      } else if (keeps_values.count(kind) != 0 && use.offset == 0) {
        pending.push_back(user->output(0));
      }
      if (found) rows = rows ? std::min(*rows, *found) : *found;
    }
  }
  return rows;
}

at::Tensor ExampleInput(const TensorSpec& spec, const Value* input, int64_t ExtentRange::*extents) {
  const std::vector<int64_t> shape = ShapeAt(spec, extents);
  if (c10::isFloatingType(spec.dtype)) return at::randn(shape).to(spec.dtype);
  if (spec.dtype == c10::ScalarType::Bool) return at::randint(0, 2, shape).to(spec.dtype);
  std::optional<int64_t> rows = IndexedRows(input);
  int64_t high = rows && *rows > 0 ? *rows : 10;
  return at::randint(0, high, shape).to(spec.dtype);
}

// Ops that turn tensor values into numbers the graph computes with.
bool ReadsTensorValues(const Node& node) {
  static const std::unordered_set<std::string> ops = {
      "aten::Int",           "aten::Float",          "aten::Bool",
      "aten::item",          "aten::tolist",         "aten::IntImplicit",
      "aten::FloatImplicit", "aten::ScalarImplicit", "aten::is_nonzero",
  };
  return ops.count(node.kind().toQualString()) != 0;
}

// Whether `node` makes a 0-d tensor holding a number the shapes decide: NumToTensor of an int
// not read from tensor values, or size arithmetic on such tensors and constants (traced code
// computes `seq_length + past_length` this way).
bool HoldsSizeNumber(const Node& node, const std::unordered_set<const Value*>& from_values,
                     const std::unordered_set<const Value*>& size_numbers) {
  if (node.outputs().size() != 1 || !IsTensor(node.output())) return false;
  if (node.kind() == c10::prim::NumToTensor) return from_values.count(node.input(0)) == 0;
  if (!frontend::IsSizeArithmetic(node)) return false;
  bool from_a_size = false;
  for (const Value* input : node.inputs()) {
    if (size_numbers.count(input) != 0) {
      from_a_size = true;
    } else if (input->node()->kind() != c10::prim::Constant) {
      return false;
    }
  }
  return from_a_size;
}

// Outputs of data-dependent ops, and of anything computed from a dynamic tensor by an op
// without a static shape rule, are dynamic; so are tensors made with numbers read from tensor
// values (`torch.zeros(int(x.max()))`, a loop running `int(n)` times), whose shape the
// example runs alone cannot vouch for. `from_values` collects those numbers. A branch on a
// value keeps what the runs saw: its results are dynamic only when their shapes differed.
void MarkDataDependent(const Block* block, Observations& observations,
                       std::unordered_set<const Value*>& from_values,
                       std::unordered_set<const Value*>& dynamic_containers,
                       std::unordered_set<const Value*>& size_numbers) {
  for (const Node* node : block->nodes()) {
    for (const Block* nested : node->blocks()) {
      MarkDataDependent(nested, observations, from_values, dynamic_containers, size_numbers);
    }
    bool dynamic_input = false;
    if (HoldsSizeNumber(*node, from_values, size_numbers)) size_numbers.insert(node->output());
    // Int(NumToTensor(n) + 1), traced code's way to pass a size on, reads back a number the
    // shapes decide.
    const bool number_round_trip =
        !node->inputs().empty() && size_numbers.count(node->input(0)) != 0;
    bool reads_values = ReadsTensorValues(*node) && !number_round_trip;
    bool sized_by_values = false;  // an int argument (a size, a count) comes from values
    for (size_t i = 0; i < node->inputs().size(); ++i) {
      const Value* input = node->input(i);
      auto it = observations.find(input);
      dynamic_input = dynamic_input || (it != observations.end() && !it->second.static_shape) ||
                      dynamic_containers.count(input) != 0;
      if (from_values.count(input) == 0 || (node->kind() == c10::prim::If && i == 0)) continue;
      reads_values = true;
      const c10::TypePtr& type = input->type();
      sized_by_values = sized_by_values || type->kind() == c10::TypeKind::IntType ||
                        (type->kind() == c10::TypeKind::ListType &&
                         type->containedType(0)->kind() == c10::TypeKind::IntType);
    }
    if (reads_values) {
      for (const Value* output : node->outputs()) {
        if (!IsTensor(output)) from_values.insert(output);
      }
    }
    dynamic_input = dynamic_input || (sized_by_values && node->kind() != c10::prim::NumToTensor);
    bool data_dependent = ValueDecidedShape(*node, observations);
    if (!data_dependent && !dynamic_input) continue;
    for (const Value* output : node->outputs()) {
      auto it = observations.find(output);
      if (it != observations.end()) it->second.static_shape = false;
      // A list or tuple holding such tensors (where(condition)'s): what is taken out of it is
      // dynamic too, though the example runs may have agreed on its shape.
      if (!IsTensor(output)) dynamic_containers.insert(output);
    }
  }
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(tvmbridge, m) {
  // Side effects only: the schema's conservative alias analysis keeps DCE away from it.
  m.def(torch::schema("_observe(Any x, int id) -> ()", c10::AliasAnalysisKind::CONSERVATIVE),
        Observe);
}

Observations ObserveTensors(torch::jit::Graph& graph, const c10::IValue& self,
                            const std::vector<TensorSpec>& inputs, const ExampleInputs& examples,
                            bool keep_samples) {
  TORCH_CHECK(examples.empty() || examples.size() == inputs.size(), "tvmbridge: ", examples.size(),
              " example inputs for ", inputs.size(), " inputs");
  std::shared_ptr<torch::jit::Graph> instrumented = graph.copy();
  std::unordered_map<const Value*, const Value*> to_original;
  MatchValues(graph.block(), instrumented->block(), to_original);
  std::unordered_map<const Value*, int64_t> ids;
  Instrument(*instrumented, instrumented->block(), to_original, ids);

  std::vector<ObservedTensor> records(ids.size());
  std::vector<bool> seen(ids.size(), false);
  std::vector<RunShapes> run_shapes(ids.size());
  // Ranged inputs run at their min, max and opt extents (opt last: its values are the samples
  // timing uses); fixed ones twice, to catch shapes that change from run to run.
  std::map<RunExtents, std::vector<std::string>> symbols;
  std::map<std::string, ExtentRange> symbol_ranges;
  std::vector<int64_t ExtentRange::*> runs{&ExtentRange::opt, &ExtentRange::opt};
  for (const TensorSpec& spec : inputs) {
    for (size_t d = 0; d < spec.dim_ranges.size(); ++d) {
      const ExtentRange& range = spec.dim_ranges[d];
      if (spec.dim_symbols.empty() || spec.dim_symbols[d].empty()) continue;
      runs = {&ExtentRange::min, &ExtentRange::max, &ExtentRange::opt};
      symbol_ranges[spec.dim_symbols[d]] = range;
      std::vector<std::string>& named = symbols[{range.min, range.max, range.opt}];
      if (std::find(named.begin(), named.end(), spec.dim_symbols[d]) == named.end()) {
        named.push_back(spec.dim_symbols[d]);
      }
    }
  }
  torch::jit::Code code(instrumented, "tvmbridge_observe");
  // The example runs take the paths compiled code takes: inference, no autocast
  // (SpecializeToShapes folds the checks for both).
  at::NoGradGuard no_grad;
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  for (size_t run = 0; run < runs.size(); ++run) {
    torch::jit::Stack stack{self};
    for (size_t i = 0; i < inputs.size(); ++i) {
      // Copies: the model may write to its inputs (and to tensors in them).
      if (IsValueInput(inputs[i])) {
        stack.push_back(examples.at(i).deepcopy());
      } else if (!examples.empty() && examples[i].isTensor()) {
        stack.emplace_back(examples[i].toTensor().clone());
      } else {
        stack.emplace_back(ExampleInput(inputs[i], graph.inputs().at(i + 1), runs[run]));
      }
    }
    current_records = &records;
    current_seen = &seen;
    current_run_shapes = &run_shapes;
    current_run = run;
    sample_budget = keep_samples && run == runs.size() - 1 ? kMaxSampleBytes : -1;
    struct Reset {
      ~Reset() {
        current_records = nullptr;
        current_seen = nullptr;
        current_run_shapes = nullptr;
        sample_budget = -1;
      }
    } reset;
    torch::jit::InterpreterState(code).run(stack);
  }

  Observations observations;
  for (const auto& [value, id] : ids) {
    if (!seen[id]) continue;
    ResolveRunShapes(records[id], run_shapes[id], runs.size(), symbols, symbol_ranges);
    observations.emplace(value, records[id]);
  }
  // Numbers the caller passes (an int input, the ints in a list input) size tensors as
  // numbers read from tensors do: the example runs cannot vouch for those shapes.
  std::unordered_set<const Value*> from_values;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Value* input = graph.inputs().at(i + 1);
    if (!IsTensor(input)) from_values.insert(input);
  }
  std::unordered_set<const Value*> dynamic_containers;
  std::unordered_set<const Value*> size_numbers;
  MarkDataDependent(graph.block(), observations, from_values, dynamic_containers, size_numbers);
  return observations;
}

TensorSpec ObservedSpec(const std::string& name, const ObservedTensor& observed) {
  TensorSpec spec{name, observed.shape, observed.dtype};
  if (observed.dim_symbols.empty()) return spec;
  spec.dim_symbols = observed.dim_symbols;
  spec.dim_ranges = observed.dim_ranges;
  for (size_t d = 0; d < spec.shape.size(); ++d) {
    if (!spec.dim_symbols[d].empty()) spec.shape[d] = kDynamicExtent;
  }
  return spec;
}

void SpecializeToShapes(const std::shared_ptr<torch::jit::Graph>& graph,
                        const Observations& observations) {
  GRAPH_DUMP("Before specialising to the example shapes:", graph);
  std::vector<Node*> candidates;
  std::vector<Block*> pending{graph->block()};
  while (!pending.empty()) {
    Block* block = pending.back();
    pending.pop_back();
    for (Node* node : block->nodes()) {
      for (Block* nested : node->blocks()) pending.push_back(nested);
      // Compiled code is inference on dense CPU tensors in the model's own dtypes: no
      // autograd, no nested tensors, no autocast (what scripted nn.MultiheadAttention and
      // nn.TransformerEncoder ask before choosing their fast paths).
      static const c10::Symbol kInferenceOnly[] = {
          c10::prim::requires_grad, c10::Symbol::fromQualString("prim::is_nested"),
          c10::Symbol::fromQualString("aten::is_grad_enabled"),
          c10::Symbol::fromQualString("aten::is_autocast_enabled"),
          c10::Symbol::fromQualString("aten::is_autocast_cpu_enabled")};
      if (std::find(std::begin(kInferenceOnly), std::end(kInferenceOnly), node->kind()) !=
          std::end(kInferenceOnly)) {
        torch::jit::WithInsertPoint before(node);
        node->output()->replaceAllUsesWith(graph->insertConstant(false));
        continue;
      }
      if (node->kind() == c10::aten::size || node->kind() == c10::aten::dim ||
          node->kind() == c10::prim::dtype || node->kind() == c10::prim::device ||
          node->kind() == c10::prim::layout || node->kind() == c10::aten::numel) {
        candidates.push_back(node);
      }
    }
  }
  for (Node* node : candidates) {
    auto it = observations.find(node->input(0));
    if (it == observations.end()) continue;
    c10::IValue value;
    if (node->kind() == c10::prim::dtype) {
      value = static_cast<int64_t>(it->second.dtype);
    } else if (node->kind() == c10::prim::device) {
      value = c10::Device(c10::kCPU);  // the example runs, like compiled modules, are CPU-only
    } else if (node->kind() == c10::prim::layout) {
      value = static_cast<int64_t>(c10::Layout::Strided);
    }
    const std::vector<int64_t>& shape = it->second.shape;
    if (!value.isNone()) {
      // dtype and device do not depend on the shape
    } else if (!it->second.static_shape) {
      continue;
    } else if (node->kind() == c10::aten::dim) {
      value = static_cast<int64_t>(shape.size());
    } else if (!it->second.dim_symbols.empty() && node->inputs().size() == 2) {
      // A size of a symbolic tensor folds where that extent is fixed.
      auto dim = torch::jit::toIValue(node->input(1));
      if (node->kind() != c10::aten::size || !dim || !dim->isInt()) continue;
      int64_t axis =
          dim->toInt() < 0 ? dim->toInt() + static_cast<int64_t>(shape.size()) : dim->toInt();
      if (axis < 0 || axis >= static_cast<int64_t>(shape.size()) ||
          !it->second.dim_symbols[axis].empty()) {
        continue;
      }
      value = shape[axis];
    } else if (!it->second.dim_symbols.empty()) {
      continue;  // numel, or the whole shape, of a symbolic tensor
    } else if (node->kind() == c10::aten::numel) {
      int64_t elements = 1;
      for (int64_t extent : shape) elements *= extent;
      value = elements;
    } else if (node->inputs().size() == 1) {
      value = c10::IValue(shape);
    } else {
      auto dim = torch::jit::toIValue(node->input(1));
      if (!dim || !dim->isInt()) continue;
      int64_t axis =
          dim->toInt() < 0 ? dim->toInt() + static_cast<int64_t>(shape.size()) : dim->toInt();
      if (axis < 0 || axis >= static_cast<int64_t>(shape.size())) continue;
      value = shape[axis];
    }
    torch::jit::WithInsertPoint before(node);
    node->output()->replaceAllUsesWith(graph->insertConstant(value));
    node->destroy();
  }
  std::shared_ptr<torch::jit::Graph> folded = graph;
  torch::jit::ConstantPropagation(folded);
  // Resolved shape checks leave Optional values that now hold tensors: `hx is None` folds.
  passes::FoldNoneChecks(folded);
  // `for` loops whose trip count the shapes just fixed are unrolled, so their bodies join
  // the regions around them instead of running as TorchScript loops (within a budget).
  if (passes::UnrollConstantLoopsWithinBudget(folded)) torch::jit::ConstantPropagation(folded);
  // Writes in branches and loops that are now resolved or unrolled become local.
  passes::RemoveLocalMutation(folded);
  torch::jit::ConstantPropagation(folded);
  // Tuples and lists that resolved branches used to return (scripted nn.MultiheadAttention's
  // `(output, weights)`) are unpacked where they are built, so unused parts die and
  // identity checks see the tensors themselves.
  torch::jit::LowerSimpleTuples(folded);
  torch::jit::PeepholeOptimizeListIdioms(folded);  // and lists: `q, k = [a, b]`
  // Fused attention's weights are undefined exactly when need_weights is false, a constant:
  // the example runs answer `weights is None`.
  passes::FoldNoneChecks(folded, [&](const Value* tensor) -> std::optional<bool> {
    auto it = observations.find(tensor);
    if (it == observations.end() || it->second.seen_defined == it->second.seen_undefined) {
      return std::nullopt;
    }
    return it->second.seen_undefined;
  });
  torch::jit::EliminateDeadCode(folded);
  GRAPH_DUMP("Specialised to the example shapes:", graph);
}

}  // namespace tvmbridge::partition
