// ConversionContext: what converters read their inputs with (constants, tensors, sizes that
// may be symbolic) and emit Relax through, and the shape helpers they share.
#include <algorithm>
#include <numeric>

#include <ATen/Functions.h>
#include <c10/util/Exception.h>

#include "frontend/converter.h"
#include "tvmbridge/tensor_bridge.h"

namespace tvmbridge::frontend {

using torch::jit::Node;

ConversionContext::ConversionContext(
    relax::FunctionBuilder& builder, relax::Symbols& symbols,
    std::unordered_map<const torch::jit::Value*, Value>& values,
    std::unordered_map<const torch::jit::Value*, relax::Expr>& weight_params)
    : builder_(builder), symbols_(symbols), values_(values), weight_params_(weight_params) {}

const Value& ConversionContext::Get(const torch::jit::Value* value) const {
  auto it = values_.find(value);
  TORCH_INTERNAL_ASSERT(it != values_.end(), "value %", value->debugName(), " not converted");
  return it->second;
}

bool ConversionContext::IsConstant(const torch::jit::Value* value) const {
  return Get(value).kind == Value::Kind::kConstant;
}

bool ConversionContext::IsNone(const torch::jit::Value* value) const {
  return IsConstant(value) && Get(value).constant.isNone();
}

relax::Expr ConversionContext::Tensor(const torch::jit::Value* value) {
  const Value& converted = Get(value);
  if (converted.kind == Value::Kind::kTensor) return converted.tensor;
  auto param = weight_params_.find(value);
  if (param != weight_params_.end()) return param->second;
  TORCH_CHECK(converted.kind == Value::Kind::kConstant && converted.constant.isTensor(), "input %",
              value->debugName(), " is not a tensor");
  return TensorConstant(converted.constant.toTensor());
}

relax::Expr ConversionContext::TensorOrScalar(const torch::jit::Value* value,
                                              const relax::Expr& like) {
  const Value& converted = Get(value);
  if (converted.kind == Value::Kind::kConstant && converted.constant.isScalar()) {
    return Scalar(converted.constant.toScalar().toDouble(), Info(like).dtype);
  }
  return Tensor(value);
}

std::vector<std::optional<relax::Expr>> ConversionContext::OptionalTensors(
    const torch::jit::Value* value) {
  const Value& converted = Get(value);
  auto as_tensor = [](const c10::IValue& constant) -> std::optional<relax::Expr> {
    if (constant.isNone()) return std::nullopt;
    return TensorConstant(constant.toTensor());
  };
  std::vector<std::optional<relax::Expr>> tensors;
  if (converted.kind == Value::Kind::kList) {
    for (const Value& item : converted.items) {
      TORCH_CHECK(item.kind != Value::Kind::kList, "nested lists of tensors are not supported");
      tensors.push_back(item.kind == Value::Kind::kTensor ? item.tensor : as_tensor(item.constant));
    }
    return tensors;
  }
  TORCH_CHECK(converted.kind == Value::Kind::kConstant && converted.constant.isList(), "input %",
              value->debugName(), " is not a list of tensors");
  for (const c10::IValue& item : converted.constant.toListRef()) tensors.push_back(as_tensor(item));
  return tensors;
}

std::vector<relax::Expr> ConversionContext::Tensors(const torch::jit::Value* value) {
  std::vector<relax::Expr> tensors;
  for (const std::optional<relax::Expr>& tensor : OptionalTensors(value)) {
    TORCH_CHECK(tensor.has_value(), "input %", value->debugName(), " holds a None, not a tensor");
    tensors.push_back(*tensor);
  }
  return tensors;
}

c10::IValue ConversionContext::Constant(const torch::jit::Value* value) const {
  const Value& converted = Get(value);
  TORCH_CHECK(converted.kind == Value::Kind::kConstant, "argument %", value->debugName(),
              " must be known at compile time (a constant), but it is computed from tensors");
  return converted.constant;
}

int64_t ConversionContext::Int(const torch::jit::Value* value) const {
  return Constant(value).toInt();
}
double ConversionContext::Double(const torch::jit::Value* value) const {
  return Constant(value).toScalar().toDouble();
}
bool ConversionContext::Bool(const torch::jit::Value* value) const {
  return Constant(value).toBool();
}
std::string ConversionContext::String(const torch::jit::Value* value) const {
  return Constant(value).toStringRef();
}
relax::IntList ConversionContext::Ints(const torch::jit::Value* value) const {
  c10::IValue constant = Constant(value);
  if (constant.isInt()) return {constant.toInt()};
  return constant.toIntVector();
}

namespace {

relax::Dim SizeOf(const Value& value, const torch::jit::Value* source) {
  if (value.kind == Value::Kind::kSize) return value.size;
  TORCH_CHECK(value.kind == Value::Kind::kConstant &&
                  (value.constant.isInt() ||
                   (value.constant.isTensor() && value.constant.toTensor().dim() == 0 &&
                    !c10::isFloatingType(value.constant.toTensor().scalar_type()))),
              "argument %", source->debugName(), " must be an int known at compile time or a size");
  return value.constant.isInt() ? value.constant.toInt()
                                : value.constant.toTensor().item<int64_t>();
}

}  // namespace

relax::Dim ConversionContext::SizeArgument(const torch::jit::Value* value) const {
  return SizeOf(Get(value), value);
}

relax::Dims ConversionContext::SizesArgument(const torch::jit::Value* value) const {
  const Value& converted = Get(value);
  if (converted.kind == Value::Kind::kSize) return {converted.size};
  if (converted.kind == Value::Kind::kList) {
    relax::Dims dims;
    for (const Value& item : converted.items) dims.push_back(SizeOf(item, value));
    return dims;
  }
  return relax::ToDims(Ints(value));
}

const torch::jit::Value* NamedInput(const Node& node, const char* name) {
  auto index = node.schema().argumentIndexWithName(name);
  return index ? node.input(*index) : nullptr;
}

std::vector<int64_t> ReductionAxes(const ConversionContext& ctx, const torch::jit::Value* dims,
                                   int64_t rank) {
  std::vector<int64_t> axes;
  if (dims != nullptr && !ctx.IsNone(dims)) axes = ctx.Ints(dims);
  if (axes.empty()) {
    axes.resize(rank);
    std::iota(axes.begin(), axes.end(), 0);
  }
  for (int64_t& axis : axes) axis = NormalizeAxis(axis, rank);
  return axes;
}

std::optional<std::string> DtypeArgument(const ConversionContext& ctx, const Node& node) {
  auto index = node.schema().argumentIndexWithName("dtype");
  if (!index || ctx.IsNone(node.input(*index))) return std::nullopt;
  return DtypeName(static_cast<c10::ScalarType>(ctx.Int(node.input(*index))));
}

void CheckCpuDevice(const ConversionContext& ctx, const Node& node) {
  auto index = node.schema().argumentIndexWithName("device");
  if (!index || ctx.IsNone(node.input(*index))) return;
  c10::Device device = ctx.Constant(node.input(*index)).toDevice();
  TORCH_CHECK(device.is_cpu(), node.kind().toQualString(), " asks for device ", device,
              "; tvmbridge compiles for the CPU");
}

relax::TensorInfo ConversionContext::Info(const relax::Expr& tensor) const {
  return relax::InfoOf(tensor);
}

relax::IntList ConversionContext::Shape(const relax::Expr& tensor) const {
  relax::TensorInfo info = Info(tensor);
  if (info.dims && !info.shape) {
    std::string shape;
    for (const relax::Dim& dim : *info.dims) shape += (shape.empty() ? "" : ", ") + dim.ToString();
    TORCH_CHECK(false, "this op needs a static shape, and its input's shape [", shape,
                "] is symbolic");
  }
  TORCH_CHECK(info.shape.has_value(), "the shape of this tensor is not known");
  return *info.shape;
}

relax::Dims ConversionContext::Dims(const relax::Expr& tensor) const {
  relax::TensorInfo info = Info(tensor);
  TORCH_CHECK(info.dims.has_value(), "the shape of this tensor is not known");
  return *info.dims;
}

int64_t ConversionContext::Extent(const relax::Expr& tensor, int64_t axis) const {
  relax::Dims dims = Dims(tensor);
  const relax::Dim& dim = dims.at(static_cast<size_t>(axis));
  TORCH_CHECK(dim.IsStatic(), "this op needs a static extent in dim ", axis, ", and it is ",
              dim.ToString());
  return dim.Static();
}

int64_t ConversionContext::Rank(const relax::Expr& tensor) const {
  relax::TensorInfo info = Info(tensor);
  TORCH_CHECK(info.ndim >= 0, "the rank of this tensor is not known");
  return info.ndim;
}

bool ConversionContext::IsFloating(const relax::Expr& tensor) const {
  return c10::isFloatingType(DtypeFromName(Info(tensor).dtype));
}

Value ConversionContext::Emit(const relax::Expr& expr) { return Value::Tensor(EmitExpr(expr)); }

relax::Expr ConversionContext::EmitExpr(const relax::Expr& expr) { return builder_.Emit(expr); }

relax::Expr TensorConstant(const at::Tensor& value) {
  // PyTorch's CPU allocator aligns to 64 bytes, so a copy is aligned.
  constexpr uintptr_t kAlignment = 64;
  const bool aligned = reinterpret_cast<uintptr_t>(value.data_ptr()) % kAlignment == 0;
  const at::Tensor& stored =
      value.is_contiguous() && aligned ? value : value.clone(at::MemoryFormat::Contiguous);
  return relax::MakeConstant(ToTvm(stored));
}

relax::Expr ConversionContext::Scalar(double value, const std::string& dtype) {
  at::Tensor scalar = at::scalar_tensor(value, at::TensorOptions().dtype(DtypeFromName(dtype)));
  return TensorConstant(scalar);
}

relax::Expr ConversionContext::SizeScalar(const relax::Dim& size, const std::string& dtype) {
  if (size.IsStatic()) return Scalar(static_cast<double>(size.Static()), dtype);
  // arange(n, n + 1) holds n: Relax has no op that makes a tensor of a shape variable.
  relax::Expr counted = EmitExpr(relax::op::Arange(size, size + 1, 1, dtype));
  return EmitExpr(relax::op::Reshape(counted, {}));
}

relax::Expr ConversionContext::MatchShape(const relax::Expr& value, const relax::Dims& shape) {
  relax::TensorInfo type;
  type.dtype = Info(value).dtype;
  type.dims = shape;
  return builder_.EmitMatchCast(value, type);
}

relax::Dim ConversionContext::DataDependentExtentOf(const relax::Expr& size,
                                                    const std::string& stem,
                                                    const relax::Dim& most) {
  relax::Dim extent = DataDependentExtent(stem, most);
  relax::Expr shape = EmitExpr(relax::op::TensorToShape(EmitExpr(relax::op::Reshape(size, {1}))));
  builder_.EmitShapeMatchCast(shape, {extent});
  return extent;
}

bool IsOne(const relax::Dim& extent) { return extent.IsStatic() && extent.Static() == 1; }

relax::Dim Product(relax::Dims::const_iterator begin, relax::Dims::const_iterator end) {
  return std::accumulate(begin, end, relax::Dim(1), std::multiplies<>());
}

bool SameShape(const ConversionContext& ctx, const relax::Dims& a, const relax::Dims& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!ctx.ProvablyEqual(a[i], b[i])) return false;
  }
  return true;
}

relax::Dims BroadcastShapes(const ConversionContext& ctx, const std::vector<relax::Dims>& shapes,
                            const std::string& what) {
  size_t rank = 0;
  for (const relax::Dims& shape : shapes) rank = std::max(rank, shape.size());
  relax::Dims result(rank, 1);
  for (const relax::Dims& shape : shapes) {
    for (size_t i = 0; i < shape.size(); ++i) {
      relax::Dim& into = result[rank - shape.size() + i];
      TORCH_CHECK(IsOne(shape[i]) || IsOne(into) || ctx.ProvablyEqual(shape[i], into), what,
                  " could not be broadcast together (", shape[i].ToString(), " and ",
                  into.ToString(), ")");
      if (!IsOne(shape[i])) into = shape[i];
    }
  }
  return result;
}

relax::Expr ConversionContext::Filled(double value, const relax::IntList& shape,
                                      const std::string& dtype) {
  at::Tensor filled = at::full(shape, value, at::TensorOptions().dtype(DtypeFromName(dtype)));
  return TensorConstant(filled);
}

}  // namespace tvmbridge::frontend
