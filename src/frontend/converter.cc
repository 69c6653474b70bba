#include "frontend/converter.h"

#include <algorithm>
#include <functional>
#include <numeric>
#include <set>
#include <sstream>
#include <unordered_set>
#include <utility>

#include <ATen/Functions.h>
#include <c10/util/Exception.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/runtime/operator.h>

#include "tvmbridge/tensor_bridge.h"

namespace tvmbridge::frontend {
namespace {

using torch::jit::Node;

}  // namespace

std::string Describe(const Node& node) {
  std::ostringstream out;
  out << node;
  std::string text = out.str();
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// "x.1" -> "x": TorchScript adds numeric suffixes to keep names unique.
std::string UserName(const torch::jit::Value* value, size_t index) {
  std::string name = value->hasDebugName() ? value->debugName() : "";
  auto dot = name.find('.');
  if (dot != std::string::npos) name = name.substr(0, dot);
  return name.empty() ? "input_" + std::to_string(index) : name;
}

bool ProducesOnlyNonTensors(const Node& node) {
  return std::none_of(node.outputs().begin(), node.outputs().end(),
                      [](const torch::jit::Value* output) {
                        return output->type()->kind() == c10::TypeKind::TensorType;
                      });
}

// Nodes computing ints, floats, bools or lists from constants are evaluated by TorchScript's
// own interpreter, so shape arithmetic works without a converter per scalar op.
bool CanFold(const Node& node) {
  // A node with no outputs (aten::warn, prim::RaiseException) has nothing to fold.
  return !node.outputs().empty() && ProducesOnlyNonTensors(node) && node.maybeOperator() != nullptr;
}

namespace {

std::vector<Value> SplitConstant(const c10::IValue& constant, size_t count) {
  std::vector<c10::IValue> elements;
  if (constant.isTuple()) {
    elements = constant.toTupleRef().elements().vec();
  } else if (constant.isList()) {
    elements = constant.toList().vec();
  }
  TORCH_CHECK(elements.size() == count, "expected ", count, " elements to unpack, got ",
              elements.size());
  std::vector<Value> values;
  for (auto& element : elements) values.push_back(Value::Constant(element));
  return values;
}

}  // namespace

Value Value::Tensor(relax::Expr expr) {
  Value value;
  value.kind = Kind::kTensor;
  value.tensor = std::move(expr);
  return value;
}
Value Value::Constant(c10::IValue constant) {
  Value value;
  value.kind = Kind::kConstant;
  value.constant = std::move(constant);
  return value;
}
Value Value::List(std::vector<Value> items) {
  Value value;
  value.kind = Kind::kList;
  value.items = std::move(items);
  return value;
}

Value Value::Size(relax::Dim size) {
  if (size.IsStatic()) return Constant(size.Static());
  Value value;
  value.kind = Kind::kSize;
  value.size = std::move(size);
  return value;
}

void ConverterTable::Register(const std::string& kind, Converter converter, OpTraits traits) {
  bool added = converters_.emplace(kind, RegisteredOp{std::move(converter), traits}).second;
  TORCH_CHECK(added, "tvmbridge: two converters are registered for ", kind);
}

const RegisteredOp* ConverterTable::Find(const Node& node) const {
  const std::string kind = node.kind().toQualString();
  if (const c10::FunctionSchema* schema = node.maybeSchema()) {
    if (!schema->overload_name().empty()) {
      auto overload = converters_.find(kind + "." + schema->overload_name());
      if (overload != converters_.end()) return &overload->second;
    }
    // An out= overload writes its result into an argument, which the kind's converters (made
    // for the functional forms) do not: the readers of `out` would read what it held before.
    // Only a converter registered for the overload takes it; none is, so they stay in PyTorch.
    if (OutArgument(node) != nullptr) return nullptr;
  }
  auto found = converters_.find(kind);
  return found == converters_.end() ? nullptr : &found->second;
}

void RegisterWithInplace(ConverterTable& table, const std::string& name, Converter converter,
                         OpTraits traits) {
  table.Register(name + "_", converter, traits);
  table.Register(name, std::move(converter), traits);
}

void RegisterAll(ConverterTable& table, std::initializer_list<const char*> kinds,
                 const Converter& converter, OpTraits traits) {
  for (const char* kind : kinds) table.Register(kind, converter, traits);
}

int64_t NormalizeAxis(int64_t axis, int64_t rank) {
  int64_t normalized = axis < 0 ? axis + rank : axis;
  TORCH_CHECK(normalized >= 0 && normalized < std::max<int64_t>(rank, 1), "dimension ", axis,
              " is out of range for a tensor of rank ", rank);
  return normalized;
}

std::vector<int64_t> SwappedAxes(int64_t rank, int64_t a, int64_t b) {
  std::vector<int64_t> axes(rank);
  std::iota(axes.begin(), axes.end(), 0);
  std::swap(axes[a], axes[b]);
  return axes;
}

const ConverterTable& Converters() {
  static const ConverterTable table = [] {
    ConverterTable all;
    RegisterElementwiseOps(all);
    RegisterNNOps(all);
    RegisterPoolingOps(all);
    RegisterShapeOps(all);
    RegisterIndexOps(all);
    RegisterScatterOps(all);
    RegisterCreationOps(all);
    RegisterUnaryOps(all);
    RegisterActivationOps(all);
    RegisterReductionOps(all);
    RegisterLayoutOps(all);
    RegisterRecurrentOps(all);
    RegisterScalarOps(all);
    RegisterImageOps(all);
    RegisterQuantizedOps(all);
    RegisterDataDependentOps(all);
    return all;
  }();
  return table;
}

namespace {

// Nodes the walk itself handles rather than a converter.
bool HandledByWalk(const Node& node) {
  return node.kind() == c10::prim::Constant || node.kind() == c10::prim::If ||
         node.kind() == c10::prim::Loop || node.kind() == c10::prim::RaiseException;
}

void CollectUnsupported(const torch::jit::Block& block, std::set<std::string>& missing) {
  for (const Node* node : block.nodes()) {
    for (const torch::jit::Block* nested : node->blocks()) CollectUnsupported(*nested, missing);
    if (HandledByWalk(*node)) continue;
    std::string kind = node->kind().toQualString();
    if (Converters().Find(*node) == nullptr && !CanFold(*node)) missing.insert(kind);
  }
}

}  // namespace

GraphOutputs ConvertGraphOutput(const torch::jit::Graph& graph, ConversionContext& context,
                                const ValueMap& values) {
  const torch::jit::Value* graph_output = graph.outputs()[0];
  const Value& output = values.at(graph_output);
  GraphOutputs outputs;
  auto check_not_quantized = [](const Value& item) {
    if (item.quantization) {
      throw ConversionError(
          "tvmbridge: forward returns a quantized tensor; compiled code returns float32 "
          "tensors, so dequantize it in the model (a DeQuantStub) first");
    }
  };
  check_not_quantized(output);
  if (output.kind == Value::Kind::kList) {
    outputs.is_tuple = true;
    for (const Value& item : output.items) {
      if (item.kind != Value::Kind::kTensor) {
        throw ConversionError(
            "tvmbridge: forward returns a tuple holding a non-tensor; only "
            "tensors and tuples of tensors can be returned");
      }
      check_not_quantized(item);
      outputs.tensors.push_back(item.tensor);
    }
  } else {
    outputs.tensors.push_back(context.Tensor(graph_output));
  }
  return outputs;
}

std::vector<FunctionAssembler::Input> FunctionAssembler::ForwardInputs(
    const torch::jit::Graph& graph, const std::vector<TensorSpec>& specs) {
  auto graph_inputs = graph.inputs();  // [self, tensors...]
  TORCH_CHECK_VALUE(graph_inputs.size() - 1 == specs.size(),
                    "tvmbridge: the model's forward takes ", graph_inputs.size() - 1,
                    " input(s) but ", specs.size(), " input spec(s) were given");
  std::vector<Input> inputs;
  for (size_t i = 0; i < specs.size(); ++i) {
    const torch::jit::Value* input = graph_inputs[i + 1];
    TORCH_CHECK_TYPE(input->type()->kind() == c10::TypeKind::TensorType, "tvmbridge: input ", i,
                     " ('", UserName(input, i), "') of forward is a ", input->type()->repr_str(),
                     "; a Relax function takes tensors (compile() takes such inputs)");
    inputs.push_back({input, specs[i]});
    if (inputs.back().spec.name.empty()) inputs.back().spec.name = UserName(input, i);
  }
  return inputs;
}

FunctionAssembler::FunctionAssembler(const std::vector<Input>& inputs, ValueMap values,
                                     const std::vector<Weight>& weights)
    : values_(std::move(values)) {
  std::vector<relax::Expr> params;
  for (const Input& input : inputs) {
    params.push_back(MakeInputParam(input.spec, symbols_));
    values_[input.value] = Value::Tensor(params.back());
  }
  for (const Weight& weight : weights) {
    const at::Tensor tensor = torch::jit::toIValue(weight.value)->toTensor();
    params.push_back(
        relax::MakeParam(weight.name, tensor.sizes().vec(), DtypeName(tensor.scalar_type())));
    weight_params_[weight.value] = params.back();
  }
  builder_ = std::make_unique<relax::FunctionBuilder>(params);
  context_ = std::make_unique<ConversionContext>(*builder_, symbols_, values_, weight_params_);
}

tvm::ffi::ObjectRef FunctionAssembler::Finish(const std::vector<relax::Expr>& outputs,
                                              bool as_tuple, const std::string& name,
                                              std::vector<TensorSpec>& specs) {
  for (size_t i = 0; i < outputs.size(); ++i) {
    specs.push_back(ResultSpec("output_" + std::to_string(i), outputs[i]));
  }
  return builder_->Finish(as_tuple ? relax::MakeTuple(outputs) : outputs.at(0), name, symbols_);
}

relax::Expr MakeInputParam(const TensorSpec& spec, relax::Symbols& symbols) {
  relax::Dims dims;
  for (size_t d = 0; d < spec.shape.size(); ++d) {
    if (spec.shape[d] != kDynamicExtent) {
      dims.emplace_back(spec.shape[d]);
      continue;
    }
    TORCH_CHECK(d < spec.dim_symbols.size() && !spec.dim_symbols[d].empty(), "tvmbridge: dim ", d,
                " of input '", spec.name, "' is dynamic but has no symbol");
    const std::string& symbol = spec.dim_symbols[d];
    dims.push_back(d < spec.dim_ranges.size()
                       ? symbols.Get(symbol, spec.dim_ranges[d].min, spec.dim_ranges[d].opt,
                                     spec.dim_ranges[d].max)
                       : symbols.Get(symbol));
  }
  return relax::MakeParam(spec.name, dims, DtypeName(spec.dtype));
}

TensorSpec ResultSpec(const std::string& name, const relax::Expr& result) {
  relax::TensorInfo info = relax::InfoOf(result);
  TensorSpec spec;
  spec.name = name;
  spec.dtype = DtypeFromName(info.dtype);
  if (info.shape || !info.dims) {
    spec.shape = info.shape.value_or(std::vector<int64_t>{});
    return spec;
  }
  spec.dim_symbols.resize(info.dims->size());
  for (size_t d = 0; d < info.dims->size(); ++d) {
    const relax::Dim& dim = (*info.dims)[d];
    spec.shape.push_back(dim.IsStatic() ? dim.Static() : kDynamicExtent);
    if (!dim.IsStatic()) spec.dim_symbols[d] = dim.ToString();
  }
  return spec;
}

std::vector<std::string> UnsupportedOps(const torch::jit::Graph& graph) {
  std::set<std::string> missing;
  CollectUnsupported(*graph.block(), missing);
  return {missing.begin(), missing.end()};
}

bool IsSizeArithmetic(const Node& node) {
  static const std::unordered_set<std::string> ops = {
      "prim::NumToTensor", "aten::Int",   "aten::IntImplicit",  "aten::ScalarImplicit",
      "aten::detach",      "aten::clone", "aten::add",          "aten::sub",
      "aten::mul",         "aten::div",   "aten::floor_divide", "aten::floordiv",
      "prim::min",         "prim::max",
  };
  return ops.count(node.kind().toQualString()) != 0;
}

namespace {

// Nodes PyTorch evaluates at conversion when their inputs are constants: creation ops
// (arange, zeros, ...) and arithmetic on 0-d tensors made from Python numbers (traced shape
// code: NumToTensor, add, Int), so scalars stay constants for the ops that need one.
bool IsScalarTensorArithmetic(const Node& node, const ConversionContext& context) {
  if (node.maybeOperator() == nullptr || node.isNondeterministic()) return false;
  return std::all_of(node.inputs().begin(), node.inputs().end(), [&](const torch::jit::Value* in) {
    const c10::IValue& constant = context.Get(in).constant;
    return !constant.isTensor() || constant.toTensor().dim() == 0;
  });
}

// Int arithmetic on symbolic extents (`x.size(0) * 4`, and the traced form: NumToTensor, add,
// Int) stays symbolic; nullopt when no input is a symbolic extent.
std::optional<Value> ConvertSizeArithmetic(const Node& node, const ConversionContext& context) {
  if (!IsSizeArithmetic(node)) return std::nullopt;
  bool symbolic =
      std::any_of(node.inputs().begin(), node.inputs().end(), [&](const torch::jit::Value* input) {
        return context.Get(input).kind == Value::Kind::kSize;
      });
  if (!symbolic || node.outputs().size() != 1) return std::nullopt;
  const std::string kind = node.kind().toQualString();
  auto size = [&](size_t i) { return context.SizeArgument(node.input(i)); };
  if (kind == "prim::NumToTensor" || kind == "aten::Int" || kind == "aten::IntImplicit" ||
      kind == "aten::ScalarImplicit" || kind == "aten::detach" || kind == "aten::clone") {
    return Value::Size(size(0));
  }
  if (kind == "aten::add" || kind == "aten::sub") {
    TORCH_CHECK(node.inputs().size() == 2 || size(2).Static() == 1,
                "size arithmetic with alpha other than 1 is not supported");
    return Value::Size(kind == "aten::add" ? size(0) + size(1) : size(0) - size(1));
  }
  if (kind == "aten::mul") return Value::Size(size(0) * size(1));
  if (kind == "aten::floordiv" || kind == "aten::floor_divide" ||
      (kind == "aten::div" && node.inputs().size() == 3 &&
       context.Constant(node.input(2)).isString() &&
       context.Constant(node.input(2)).toStringRef() == "floor")) {
    return Value::Size(relax::FloorDivide(size(0), size(1)));
  }
  if (kind == "prim::min" && node.inputs().size() == 2) {
    return Value::Size(context.Simplify(relax::Minimum(size(0), size(1))));
  }
  if (kind == "prim::max" && node.inputs().size() == 2) {
    return Value::Size(context.Simplify(relax::Maximum(size(0), size(1))));
  }
  return std::nullopt;
}

// `a is b` / `a is not b` of two tensors, where the graph shows the answer once the branches
// decided at conversion are resolved (nn.MultiheadAttention's `key is value` after its
// batch-first transposes, which the graph alone leaves to a shape check); nullopt otherwise.
std::optional<Value> ConvertTensorIdentity(const Node& node, const ConversionContext& context) {
  const bool is = node.kind() == c10::aten::__is__;
  if ((!is && node.kind() != c10::aten::__isnot__) || node.inputs().size() != 2) {
    return std::nullopt;
  }
  for (const torch::jit::Value* input : node.inputs()) {
    if (input->type()->kind() != c10::TypeKind::TensorType) return std::nullopt;
  }
  const BranchResolver taken = [&](const torch::jit::Value* value) {
    while (value->node()->kind() == c10::prim::If && context.IsConstant(value->node()->input(0))) {
      const bool then = context.Bool(value->node()->input(0));
      value = value->node()->blocks()[then ? 0 : 1]->outputs()[value->offset()];
    }
    return value;
  };
  std::optional<bool> identical = KnownTensorIdentity(node.input(0), node.input(1), taken);
  if (!identical) return std::nullopt;
  return Value::Constant(*identical == is);
}

}  // namespace

void ConvertNode(const Node& node, ConversionContext& context, ValueMap& values) {
  if (node.kind() == c10::prim::Constant) {
    values[node.output()] = Value::Constant(*torch::jit::toIValue(node.output()));
    return;
  }
  bool all_constant =
      std::all_of(node.inputs().begin(), node.inputs().end(),
                  [&](const torch::jit::Value* input) { return context.IsConstant(input); });
  if (all_constant && !node.outputs().empty() &&
      (CanFold(node) || IsScalarTensorArithmetic(node, context))) {
    torch::jit::Stack stack;
    for (const torch::jit::Value* input : node.inputs()) {
      stack.push_back(context.Constant(input));
    }
    node.getOperation()(stack);
    for (size_t i = 0; i < node.outputs().size(); ++i) {
      values[node.output(i)] = Value::Constant(stack[i]);
    }
    return;
  }
  if (std::optional<Value> size = ConvertSizeArithmetic(node, context)) {
    values[node.output()] = std::move(*size);
    return;
  }
  if (std::optional<Value> identity = ConvertTensorIdentity(node, context)) {
    values[node.output()] = std::move(*identity);
    return;
  }
  const RegisteredOp* op = Converters().Find(node);
  if (op == nullptr) {
    if (CanFold(node)) {
      throw std::runtime_error(
          "it computes a Python value from tensor data (data-dependent control flow and "
          "scalars are not supported yet)");
    }
    throw std::runtime_error(std::string("tvmbridge has no converter for ") +
                             node.kind().toQualString());
  }
  Value converted = AdjustForQuantizedInputs(context, node, op->traits, op->convert(context, node));
  if (node.outputs().size() == 1) {
    values[node.output()] = std::move(converted);
  } else {
    std::vector<Value> parts = converted.kind == Value::Kind::kList
                                   ? converted.items
                                   : SplitConstant(converted.constant, node.outputs().size());
    TORCH_CHECK(parts.size() == node.outputs().size(), "converter produced ", parts.size(),
                " values for ", node.outputs().size(), " outputs");
    for (size_t i = 0; i < parts.size(); ++i) values[node.output(i)] = parts[i];
  }
}

std::string ErrorText(const std::exception& error) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&error)) {
    return c10_error->what_without_backtrace();
  }
  return error.what();
}

namespace {

void ConvertBlock(const torch::jit::Block& block, ConversionContext& context, ValueMap& values);

// `if cond:` on a tensor value becomes a Relax If whose branches return the block outputs (a
// tuple when there are several).
void ConvertDataDependentIf(const Node& node, ConversionContext& context, ValueMap& values) {
  const Value& cond = context.Get(node.input(0));
  TORCH_CHECK(cond.kind == Value::Kind::kTensor,
              "the branch condition is computed in a way tvmbridge cannot convert");
  auto branch = [&](const torch::jit::Block& block) {
    return [&]() -> relax::Expr {
      ConvertBlock(block, context, values);
      std::vector<relax::Expr> results;
      for (const torch::jit::Value* output : block.outputs()) {
        TORCH_CHECK(output->type()->kind() == c10::TypeKind::TensorType,
                    "a data-dependent branch returns a ", output->type()->repr_str(),
                    "; only tensors can be returned from converted branches");
        results.push_back(context.Tensor(output));
      }
      return results.size() == 1 ? results[0] : relax::MakeTuple(results);
    };
  };
  relax::Expr result =
      context.builder().EmitIf(cond.tensor, branch(*node.blocks()[0]), branch(*node.blocks()[1]));
  if (node.outputs().size() == 1) {
    values[node.output()] = Value::Tensor(result);
    return;
  }
  for (size_t i = 0; i < node.outputs().size(); ++i) {
    values[node.output(i)] =
        Value::Tensor(context.EmitExpr(relax::TupleGetItem(result, static_cast<int>(i))));
  }
}

// Loops whose trip count and condition are known at conversion (`for i in range(n)`, also
// with n from a static shape) are unrolled: each iteration converts the body once, with the
// counter as a constant. Longer loops, and loops on tensor values, are refused.
constexpr int64_t kMaxUnrolledIterations = 1024;

void ConvertLoop(const Node& node, ConversionContext& context, ValueMap& values) {
  TORCH_CHECK(context.IsConstant(node.input(0)) && context.IsConstant(node.input(1)),
              "a loop whose trip count or condition depends on tensor values cannot be "
              "converted to Relax yet (tvmbridge.torch.compile runs it in TorchScript)");
  int64_t max_trips = context.Int(node.input(0));
  bool keep_going = context.Bool(node.input(1));
  const torch::jit::Block& body = *node.blocks()[0];
  std::vector<Value> carried;
  for (size_t i = 2; i < node.inputs().size(); ++i) carried.push_back(context.Get(node.input(i)));
  for (int64_t trip = 0; keep_going && trip < max_trips; ++trip) {
    TORCH_CHECK(trip < kMaxUnrolledIterations, "a loop of more than ", kMaxUnrolledIterations,
                " iterations is too long to unroll");
    values[body.inputs()[0]] = Value::Constant(trip);
    for (size_t k = 0; k < carried.size(); ++k) values[body.inputs()[k + 1]] = carried[k];
    ConvertBlock(body, context, values);
    TORCH_CHECK(context.IsConstant(body.outputs()[0]),
                "the loop condition depends on tensor values (a data-dependent while loop "
                "cannot be converted to Relax yet; tvmbridge.torch.compile runs it in "
                "TorchScript)");
    keep_going = context.Bool(body.outputs()[0]);
    for (size_t k = 0; k < carried.size(); ++k) carried[k] = context.Get(body.outputs()[k + 1]);
  }
  for (size_t k = 0; k < carried.size(); ++k) values[node.output(k)] = carried[k];
}

// Converts the nodes of `block` in order. Control flow whose condition is known at conversion
// (shape checks, flags frozen to constants) is resolved by converting the branch taken.
void ConvertBlock(const torch::jit::Block& block, ConversionContext& context, ValueMap& values) {
  for (const Node* node : block.nodes()) {
    try {
      if (node->kind() == c10::prim::If) {
        if (context.IsConstant(node->input(0))) {
          const torch::jit::Block& taken = *node->blocks()[context.Bool(node->input(0)) ? 0 : 1];
          ConvertBlock(taken, context, values);
          for (size_t i = 0; i < node->outputs().size(); ++i) {
            values[node->output(i)] = context.Get(taken.outputs()[i]);
          }
        } else {
          ConvertDataDependentIf(*node, context, values);
        }
        continue;
      }
      if (node->kind() == c10::prim::Loop) {
        ConvertLoop(*node, context, values);
        continue;
      }
      if (node->kind() == c10::prim::RaiseException) {
        std::string message = context.IsConstant(node->input(0))
                                  ? context.Constant(node->input(0)).toStringRef()
                                  : std::string("(no message)");
        TORCH_CHECK(false, "the model raises an exception for these input shapes: ", message);
      }
      ConvertNode(*node, context, values);
    } catch (const ConversionError&) {
      throw;
    } catch (const std::exception& error) {
      throw ConversionError(std::string("tvmbridge: cannot convert ") +
                            node->kind().toQualString() + ": " + ErrorText(error) +
                            "\n  in: " + Describe(*node));
    }
  }
}

}  // namespace

ConversionResult ConvertGraph(const torch::jit::Graph& graph, const std::vector<TensorSpec>& inputs,
                              const std::unordered_map<const void*, std::string>& weight_names,
                              const ConversionOptions& options) {
  std::vector<std::string> missing = UnsupportedOps(graph);
  if (!missing.empty()) {
    std::ostringstream message;
    message << "tvmbridge: the model uses ops that tvmbridge cannot convert yet:";
    for (const auto& kind : missing) message << " " << kind;
    throw ConversionError(message.str());
  }

  ConversionResult result;
  std::vector<FunctionAssembler::Input> assembled_inputs =
      FunctionAssembler::ForwardInputs(graph, inputs);
  for (const FunctionAssembler::Input& input : assembled_inputs)
    result.inputs.push_back(input.spec);
  std::vector<FunctionAssembler::Weight> weights;
  if (options.keep_params_as_input) {
    for (const Node* node : graph.nodes()) {
      if (node->kind() != c10::prim::Constant) continue;
      auto constant = torch::jit::toIValue(node->output());
      if (!constant || !constant->isTensor() || constant->toTensor().dim() == 0) continue;
      const at::Tensor& weight = constant->toTensor();
      auto named = weight_names.find(weight.data_ptr());
      std::string name = named != weight_names.end()
                             ? named->second
                             : "const_" + std::to_string(result.param_names.size());
      weights.push_back({node->output(), name});
      result.param_names.push_back(name);
      result.param_values.push_back(weight.contiguous());
    }
  }

  FunctionAssembler function(assembled_inputs, {}, weights);
  ConvertBlock(*graph.block(), function.context(), function.values());
  GraphOutputs outputs = ConvertGraphOutput(graph, function.context(), function.values());
  result.output_is_tuple = outputs.is_tuple;
  result.ir_module =
      function.Finish(outputs.tensors, outputs.is_tuple, options.function_name, result.outputs);
  return result;
}

}  // namespace tvmbridge::frontend
