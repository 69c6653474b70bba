// TorchScript graph -> Relax function: the walk over nodes and the table of op converters.
#pragma once

#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <ATen/core/ivalue.h>
#include <torch/csrc/jit/ir/ir.h>

#include "frontend/op_traits.h"
#include "frontend/relax_builder.h"
#include "tvmbridge/artifact.h"

namespace tvmbridge::frontend {

// The per-tensor affine quantization of a PyTorch quantized tensor (quint8, qint8, qint32).
struct QuantParams {
  double scale = 1.0;
  int64_t zero_point = 0;
  c10::ScalarType dtype = c10::ScalarType::QUInt8;
};

// What a TorchScript value became during conversion.
struct Value {
  enum class Kind { kTensor, kConstant, kList, kSize };
  Kind kind = Kind::kConstant;
  relax::Expr tensor;        // kTensor: an emitted Relax variable
  c10::IValue constant;      // kConstant: known at conversion (ints, floats, lists, weights)
  std::vector<Value> items;  // kList: a list or tuple holding at least one non-constant
  // kSize: an int that is a symbolic extent, or arithmetic on extents (`x.size(0) * 4`); the
  // traced form, a 0-d tensor made from one (prim::NumToTensor), is a kSize too.
  relax::Dim size = 0;
  // kTensor of a quantized tensor: `tensor` holds its float32 values, (q - zero_point) * scale
  // (ops_quantized.cc).
  std::optional<QuantParams> quantization;

  static Value Tensor(relax::Expr expr);
  static Value Constant(c10::IValue value);
  static Value List(std::vector<Value> items);
  static Value Size(relax::Dim size);  // a number becomes a kConstant int
};

class ConversionContext;
using ValueMap = std::unordered_map<const torch::jit::Value*, Value>;
using Converter = std::function<Value(ConversionContext&, const torch::jit::Node&)>;
struct RegisteredOp {
  Converter convert;
  OpTraits traits;
};
// The converters by op kind ("aten::conv2d"), or by one overload of it ("aten::add.t", list
// concatenation, beside "aten::add" for the tensor forms), with the traits of each op that
// PyTorch does not declare. A name is registered once: a second registration would silently
// replace the first, so Register throws, naming it.
class ConverterTable {
 public:
  using Map = std::unordered_map<std::string, RegisteredOp>;
  void Register(const std::string& kind, Converter converter, OpTraits traits = {});
  // The converter for the node's overload if one is registered, else for its kind (but for
  // out= overloads, which only their own registration takes); null when neither is.
  const RegisteredOp* Find(const torch::jit::Node& node) const;
  size_t count(const std::string& kind) const { return converters_.count(kind); }
  Map::const_iterator begin() const { return converters_.begin(); }
  Map::const_iterator end() const { return converters_.end(); }

 private:
  Map converters_;
};

// Registers `converter` under each of `kinds`.
void RegisterAll(ConverterTable& table, std::initializer_list<const char*> kinds,
                 const Converter& converter, OpTraits traits = {});
// Registers `converter` under `name` and its in-place form `name_` (graph preparation has
// made the in-place uses that remain functional).
void RegisterWithInplace(ConverterTable& table, const std::string& name, Converter converter,
                         OpTraits traits = {});
// `axis` in [0, rank) (negative counts from the end); throws if out of range.
int64_t NormalizeAxis(int64_t axis, int64_t rank);
// 0, 1, ..., rank-1 with `a` and `b` swapped: the permutation of a transpose.
std::vector<int64_t> SwappedAxes(int64_t rank, int64_t a, int64_t b);

// The registered converters, by op family (one file each).
void RegisterElementwiseOps(ConverterTable& table);
void RegisterNNOps(ConverterTable& table);
void RegisterPoolingOps(ConverterTable& table);
void RegisterShapeOps(ConverterTable& table);
void RegisterIndexOps(ConverterTable& table);
void RegisterScatterOps(ConverterTable& table);
void RegisterCreationOps(ConverterTable& table);
void RegisterUnaryOps(ConverterTable& table);
void RegisterActivationOps(ConverterTable& table);
void RegisterReductionOps(ConverterTable& table);
void RegisterLayoutOps(ConverterTable& table);
void RegisterRecurrentOps(ConverterTable& table);
void RegisterScalarOps(ConverterTable& table);
void RegisterImageOps(ConverterTable& table);
void RegisterQuantizedOps(ConverterTable& table);
void RegisterDataDependentOps(ConverterTable& table);
const ConverterTable& Converters();

// A Relax constant holding `value`'s elements, copied where they are not contiguous or not
// 64-byte aligned: TVM's kernels read buffers with aligned vector loads, and a constant that a
// split or slice of a weight folded to (nn.MultiheadAttention's `b_kv`) may start anywhere in
// the weight's memory (a general-protection fault when in-memory modules ran).
relax::Expr TensorConstant(const at::Tensor& value);

// What converters use to read their inputs and emit Relax.
class ConversionContext {
 public:
  ConversionContext(relax::FunctionBuilder& builder, relax::Symbols& symbols,
                    std::unordered_map<const torch::jit::Value*, Value>& values,
                    std::unordered_map<const torch::jit::Value*, relax::Expr>& weight_params);

  const Value& Get(const torch::jit::Value* value) const;
  bool IsConstant(const torch::jit::Value* value) const;
  bool IsNone(const torch::jit::Value* value) const;

  // A tensor input as Relax; constant tensors become Relax constants (or parameters).
  relax::Expr Tensor(const torch::jit::Value* value);
  // A tensor, or a number made into a 0-d constant of `like`'s dtype.
  relax::Expr TensorOrScalar(const torch::jit::Value* value, const relax::Expr& like);
  std::vector<relax::Expr> Tensors(const torch::jit::Value* value);  // Tensor[] input
  // Tensor?[] input (aten::index): nullopt for None entries.
  std::vector<std::optional<relax::Expr>> OptionalTensors(const torch::jit::Value* value);

  c10::IValue Constant(const torch::jit::Value* value) const;  // throws if not constant
  int64_t Int(const torch::jit::Value* value) const;
  double Double(const torch::jit::Value* value) const;
  bool Bool(const torch::jit::Value* value) const;
  std::string String(const torch::jit::Value* value) const;
  relax::IntList Ints(const torch::jit::Value* value) const;
  // An int, or a list of ints, that may hold symbolic extents (kSize).
  relax::Dim SizeArgument(const torch::jit::Value* value) const;
  relax::Dims SizesArgument(const torch::jit::Value* value) const;

  // Shape, dtype and rank of a Relax tensor, as TVM inferred them.
  relax::TensorInfo Info(const relax::Expr& tensor) const;
  // The static shape; throws (the op stays in PyTorch) when an extent is symbolic.
  relax::IntList Shape(const relax::Expr& tensor) const;
  // The shape with symbolic extents, for ops that handle them.
  relax::Dims Dims(const relax::Expr& tensor) const;
  // The static extent of one axis (normalised); throws when that one is symbolic.
  int64_t Extent(const relax::Expr& tensor, int64_t axis) const;
  int64_t Rank(const relax::Expr& tensor) const;
  // Size arithmetic, simplified knowing the input symbols' ranges (`min(seq, 512)` is seq).
  relax::Dim Simplify(const relax::Dim& dim) const { return symbols_.Simplify(dim); }
  bool ProvablyEqual(const relax::Dim& a, const relax::Dim& b) const {
    return symbols_.ProvablyEqual(a, b);
  }
  bool ProvablyAtMost(const relax::Dim& a, const relax::Dim& b) const {
    return symbols_.ProvablyAtMost(a, b);
  }
  bool IsFloating(const relax::Expr& tensor) const;  // float16, bfloat16, float32, float64
  // `value` (a tensor whose shape TVM cannot infer: nonzero's, unique's) bound with `shape`,
  // which holds extents made by DataDependentExtent.
  relax::Expr MatchShape(const relax::Expr& value, const relax::Dims& shape);
  relax::Dim DataDependentExtent(const std::string& stem, const relax::Dim& most) {
    return symbols_.DataDependent(stem, most);
  }
  // A new such extent holding the value of the 0-d int64 tensor `size` (not negative): for
  // results whose length a computed number decides (bincount's).
  relax::Dim DataDependentExtentOf(const relax::Expr& size, const std::string& stem,
                                   const relax::Dim& most);

  // Binds `expr` to a new variable and returns it as the node's result.
  Value Emit(const relax::Expr& expr);
  relax::Expr EmitExpr(const relax::Expr& expr);
  relax::Expr Scalar(double value, const std::string& dtype);
  // A size as a 0-d tensor (a symbolic one is computed when the program runs).
  relax::Expr SizeScalar(const relax::Dim& size, const std::string& dtype);
  relax::FunctionBuilder& builder() { return builder_; }
  relax::Expr Filled(double value, const relax::IntList& shape, const std::string& dtype);

 private:
  relax::FunctionBuilder& builder_;
  relax::Symbols& symbols_;
  std::unordered_map<const torch::jit::Value*, Value>& values_;
  std::unordered_map<const torch::jit::Value*, relax::Expr>& weight_params_;
};

// Shapes with symbolic extents, compared and broadcast by what the analyzer proves.
bool IsOne(const relax::Dim& extent);
// The product of extents (unsimplified; ctx.Simplify it where it is emitted).
relax::Dim Product(relax::Dims::const_iterator begin, relax::Dims::const_iterator end);
inline relax::Dim ElementCount(const relax::Dims& dims) {
  return Product(dims.begin(), dims.end());
}
bool SameShape(const ConversionContext& ctx, const relax::Dims& a, const relax::Dims& b);
// The shape `shapes` broadcast to (NumPy rules, as PyTorch's). Two symbolic extents must be
// provably equal: one of them being 1 at run time is not handled. `what` ("index: indexing
// tensors") starts the error.
relax::Dims BroadcastShapes(const ConversionContext& ctx, const std::vector<relax::Dims>& shapes,
                            const std::string& what);

// Indexing by a boolean mask, whose result extent the mask's values decide
// (ops_data_dependent.cc), for aten::index's converter, which sees the index dtypes.
Value ConvertIndexByMask(ConversionContext& ctx, const torch::jit::Node& node);

// The node's input for the schema argument `name`; nullptr when its schema has none (ops
// with several overloads are told apart this way).
const torch::jit::Value* NamedInput(const torch::jit::Node& node, const char* name);
// The normalised axes that the reduction argument `dims` names; all axes when it is None or
// an empty list, as PyTorch's reductions read it.
std::vector<int64_t> ReductionAxes(const ConversionContext& ctx, const torch::jit::Value* dims,
                                   int64_t rank);

// The node's `dtype` argument as a Relax dtype; nullopt when it has none or it is None.
std::optional<std::string> DtypeArgument(const ConversionContext& ctx,
                                         const torch::jit::Node& node);
// Throws unless the node's `device` argument is absent, None or the CPU (what TVM runs on).
void CheckCpuDevice(const ConversionContext& ctx, const torch::jit::Node& node);

// Thrown for graphs or nodes we cannot convert; the message names the op and why.
class ConversionError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ConversionOptions {
  // True: weights become trailing function parameters (returned separately, as TVM frontends
  // do); false: they are embedded as constants, ready to compile.
  bool keep_params_as_input = false;
  std::string function_name = "main";
};

struct ConversionResult {
  tvm::ffi::ObjectRef ir_module;
  std::vector<std::string> param_names;
  std::vector<at::Tensor> param_values;
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  bool output_is_tuple = false;
};

// Converts one node that is not control flow: constants, scalar nodes folded by TorchScript's
// interpreter, and ops with a converter. Stores the outputs in `values`; throws the reason
// (any std::exception) when the node cannot be converted.
void ConvertNode(const torch::jit::Node& node, ConversionContext& context, ValueMap& values);

// Carries the quantization of quantized inputs through an aten op's result as its traits say
// PyTorch's quantized kernel does; throws for ops without one, so they stay in PyTorch
// (ops_quantized.cc).
Value AdjustForQuantizedInputs(ConversionContext& ctx, const torch::jit::Node& node,
                               const OpTraits& traits, Value converted);

// Whether `node` is arithmetic that stays a size when its operands are sizes (ints, or the 0-d
// tensors traced code keeps them in: NumToTensor, add, Int): the ops ConvertNode keeps
// symbolic, and whose results the shape observer counts as decided by shapes.
bool IsSizeArithmetic(const torch::jit::Node& node);

// The Relax parameter for an input described by `spec`: its dynamic extents become the int64
// variables of their symbols, one per symbol name in `symbols` (shared by a function's inputs).
relax::Expr MakeInputParam(const TensorSpec& spec, relax::Symbols& symbols);
// The spec of a converted result: dtype and shape as TVM inferred them, a symbolic extent as
// kDynamicExtent named by its expression ("batch * 4").
TensorSpec ResultSpec(const std::string& name, const relax::Expr& result);

// "%y : Tensor = aten::relu(%x)": a node for error messages.
std::string Describe(const torch::jit::Node& node);
// An exception's message without a C++ backtrace.
std::string ErrorText(const std::exception& error);
// A graph input's name as the user wrote it ("x.1" -> "x"), or input_<index>.
std::string UserName(const torch::jit::Value* value, size_t index);
// Whether a node with no converter can still be evaluated when its inputs are constants.
bool CanFold(const torch::jit::Node& node);

// Kinds of the nodes in `graph` that have no converter ("aten::topk", ...), sorted, unique.
std::vector<std::string> UnsupportedOps(const torch::jit::Graph& graph);

// One Relax function assembled from TorchScript values, as compile's regions, from_torchscript
// and its TorchScript fallback make theirs: each input a parameter (MakeInputParam; symbolic
// extents shared by name) bound to its TorchScript value, weights kept as parameters where
// asked, a context the converters emit through, and the results with their specs.
class FunctionAssembler {
 public:
  struct Input {
    const torch::jit::Value* value;
    TensorSpec spec;
  };
  struct Weight {  // a constant tensor passed as a parameter instead of embedded
    const torch::jit::Value* value;
    std::string name;
  };
  // Forward's inputs after `self`, paired with `specs` (a spec without a name takes the
  // argument's); refuses an input that is not a tensor, since parameters are tensors.
  static std::vector<Input> ForwardInputs(const torch::jit::Graph& graph,
                                          const std::vector<TensorSpec>& specs);
  // `values` holds what is known before conversion (a region's constants).
  FunctionAssembler(const std::vector<Input>& inputs, ValueMap values,
                    const std::vector<Weight>& weights = {});
  FunctionAssembler(const FunctionAssembler&) = delete;
  FunctionAssembler& operator=(const FunctionAssembler&) = delete;

  ConversionContext& context() { return *context_; }
  ValueMap& values() { return values_; }
  // Ends the function with `outputs`, a tuple of them when `as_tuple` (else the one output),
  // named `name`; appends the outputs' specs to `specs`.
  tvm::ffi::ObjectRef Finish(const std::vector<relax::Expr>& outputs, bool as_tuple,
                             const std::string& name, std::vector<TensorSpec>& specs);

 private:
  relax::Symbols symbols_;
  ValueMap values_;
  std::unordered_map<const torch::jit::Value*, relax::Expr> weight_params_;
  std::unique_ptr<relax::FunctionBuilder> builder_;
  std::unique_ptr<ConversionContext> context_;
};

// The graph's return value: its tensors, and whether forward returns them as a tuple.
struct GraphOutputs {
  std::vector<relax::Expr> tensors;
  bool is_tuple = false;
};
GraphOutputs ConvertGraphOutput(const torch::jit::Graph& graph, ConversionContext& context,
                                const ValueMap& values);

// Converts a prepared graph (see passes/pipeline.h) whose first input is the module itself.
// `weight_names` names constant tensors by their data pointer (from the original module).
ConversionResult ConvertGraph(const torch::jit::Graph& graph, const std::vector<TensorSpec>& inputs,
                              const std::unordered_map<const void*, std::string>& weight_names,
                              const ConversionOptions& options);

}  // namespace tvmbridge::frontend
