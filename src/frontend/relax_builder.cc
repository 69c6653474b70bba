#include "frontend/relax_builder.h"

#include "frontend/relax_ffi.h"

#include <algorithm>
#include <mutex>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include <tvm/ffi/c_api.h>
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/container/shape.h>
#include <tvm/ffi/dtype.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/reflection/accessor.h>
#include <tvm/ffi/string.h>

namespace tvmbridge::relax {
namespace {

using tvm::ffi::Any;
using tvm::ffi::Array;
using tvm::ffi::Function;
using tvm::ffi::ObjectRef;
using tvm::ffi::String;

// Registry names of the builder and IR constructors (the ops' are in relax_ops.cc).
const char* const kBuilderGlobals[] = {
    "relax.BlockBuilderCreate",
    "relax.BlockBuilderBeginScope",
    "relax.BlockBuilderEndScope",
    "relax.BlockBuilderBeginBindingBlock",
    "relax.BlockBuilderEmit",
    "relax.BlockBuilderEmitMatchCast",
    "relax.BlockBuilderEndBlock",
    "relax.BlockBuilderNormalize",
    "relax.BlockBuilderAddFunction",
    "relax.BlockBuilderFinalize",
    "relax.SeqExpr",
    "relax.Function",
    "relax.ShapeExpr",
    "relax.TensorType",
    "relax.ShapeType",
    "relax.MakeTensorConst",
    "relax.Tuple",
    "relax.TupleGetItem",
    "ir.Var",
    "ir.FloatImm",
    "ir.BaseFuncWithAttr",
    "ir.TupleType",
    "relax.ExternFunc",
    "relax.op.call_pure_packed",
    "ir.StringImm",
    "ir.Call",
    "ir.TypeMissing",
    "relax.transform.ConvertToDataflow",
    "transform.RunPass",
};
}  // namespace

// Looks a registry function up once and keeps it; throws if this TVM lacks it.
const Function& Global(const std::string& name) {
  static std::mutex mutex;
  static std::unordered_map<std::string, Function> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(name);
  if (it == cache.end()) {
    auto function = Function::GetGlobal(name);
    if (!function.has_value()) {
      throw std::runtime_error("tvmbridge: this TVM has no global function '" + name +
                               "' (is the TVM compiler loaded, and is it the pinned version?)");
    }
    it = cache.emplace(name, *function).first;
  }
  return it->second;
}

Array<Any> ToArray(const IntList& values) {
  Array<Any> array;
  for (int64_t value : values) array.push_back(value);
  return array;
}

Array<Any> ToArray(const Dims& dims) {
  Array<Any> array;
  for (const Dim& dim : dims) array.push_back(dim.ToExpr());
  return array;
}

// A Relax tuple of int64 immediates: how strided_slice takes its index lists.
Any IntTuple(const IntList& values) {
  Array<Any> fields;
  for (int64_t value : values) {
    fields.push_back(Global("ir.IntImm")(String("int64"), value, Any()));
  }
  return Global("relax.Tuple")(fields, Any());
}

DLDataType DLDataTypeOf(const std::string& dtype) { return tvm::ffi::StringToDLDataType(dtype); }

Any FloatImm(double value) { return Global("ir.FloatImm")(String("float64"), value, Any()); }

namespace {

Any GetField(const ObjectRef& object, const char* type_key, const char* field) {
  tvm::ffi::reflection::FieldGetter getter(type_key, field);
  return getter(object);
}

}  // namespace

const std::vector<std::string>& RequiredGlobalNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> all(std::begin(kBuilderGlobals), std::end(kBuilderGlobals));
    const std::vector<std::string>& ops = OpGlobalNames();
    all.insert(all.end(), ops.begin(), ops.end());
    return all;
  }();
  return names;
}

TensorInfo InfoOf(const Expr& expr) {
  TensorInfo info;
  Any type = GetField(expr, "ir.Expr", "ty");
  if (type == nullptr || type.GetTypeKey() != std::string("relax.TensorType")) return info;
  auto type_object = type.cast<ObjectRef>();
  info.ndim = static_cast<int>(GetField(type_object, "relax.TensorType", "ndim").cast<int64_t>());
  Any dtype = GetField(type_object, "relax.TensorType", "dtype");
  if (dtype != nullptr) {
    DLDataType dl = GetField(dtype.cast<ObjectRef>(), "ir.PrimType", "dtype").cast<DLDataType>();
    info.dtype = std::string(tvm::ffi::DLDataTypeToString(dl));
  }
  Any shape = GetField(type_object, "relax.TensorType", "shape");
  if (shape == nullptr || shape.GetTypeKey() != std::string("relax.expr.ShapeExpr")) return info;
  Dims dims;
  for (const Any& value :
       GetField(shape.cast<ObjectRef>(), "relax.expr.ShapeExpr", "values").cast<Array<Any>>()) {
    dims.emplace_back(value.cast<Expr>());
  }
  info.shape = StaticExtents(dims);
  info.dims = std::move(dims);
  return info;
}

namespace {

// relax.TensorType of `info`: with its shape (symbolic or static), or with its rank alone.
Any TensorTypeOf(const TensorInfo& info) {
  std::optional<Dims> dims = info.dims;
  if (!dims && info.shape) dims = ToDims(*info.shape);
  Any shape = dims ? Global("relax.ShapeExpr")(ToArray(*dims), Any()) : Any();
  int64_t ndim = dims ? -1 : info.ndim;
  return Global("relax.TensorType")(shape, String(info.dtype), ndim, Any(), Any());
}

Expr Int64Imm(int64_t value) { return Call("ir.IntImm", DLDataTypeOf("int64"), value, Any()); }

// a op b: folded where both are numbers, else TVM's simplifying constructor (`prim._OpAdd`).
template <typename Fold>
Dim Arithmetic(const char* global, const Dim& a, const Dim& b, Fold fold) {
  if (a.IsStatic() && b.IsStatic()) return Dim(fold(a.Static(), b.Static()));
  return Dim(Call(global, a.ToExpr(), b.ToExpr(), Any()));
}

}  // namespace

Dim::Dim(const Expr& expression) {
  if (expression.GetTypeKey() == std::string("ir.IntImm")) {
    extent_ = GetField(expression, "ir.IntImm", "value").cast<int64_t>();
  } else {
    symbolic_ = expression;
  }
}

int64_t Dim::Static() const {
  if (!IsStatic()) {
    throw std::runtime_error("the extent " + ToString() +
                             " is symbolic here; this op needs a number");
  }
  return extent_;
}

Expr Dim::ToExpr() const { return IsStatic() ? Int64Imm(extent_) : symbolic_; }

std::string Dim::ToString() const {
  if (IsStatic()) return std::to_string(extent_);
  return std::string(Global("ffi.ReprPrint")(symbolic_).cast<String>());
}

Dim operator+(const Dim& a, const Dim& b) {
  return Arithmetic("prim._OpAdd", a, b, [](int64_t x, int64_t y) { return x + y; });
}
Dim operator-(const Dim& a, const Dim& b) {
  return Arithmetic("prim._OpSub", a, b, [](int64_t x, int64_t y) { return x - y; });
}
Dim operator*(const Dim& a, const Dim& b) {
  return Arithmetic("prim._OpMul", a, b, [](int64_t x, int64_t y) { return x * y; });
}
Dim FloorDivide(const Dim& a, const Dim& b) {
  return Arithmetic("prim._OpFloorDiv", a, b, [](int64_t x, int64_t y) {
    if (y == 0) throw std::runtime_error("integer division by zero in a size");
    int64_t quotient = x / y;
    return (x % y != 0 && ((x < 0) != (y < 0))) ? quotient - 1 : quotient;
  });
}
Dim Minimum(const Dim& a, const Dim& b) {
  return Arithmetic("prim._OpMin", a, b, [](int64_t x, int64_t y) { return std::min(x, y); });
}
Dim Maximum(const Dim& a, const Dim& b) {
  return Arithmetic("prim._OpMax", a, b, [](int64_t x, int64_t y) { return std::max(x, y); });
}

Symbols::Symbols() : analyzer_(Global("sym.Analyzer")()) {}

Dim Symbols::Get(const std::string& name) {
  auto known = variables_.find(name);
  if (known != variables_.end()) return known->second;
  Any int64 = Global("ir.PrimType")(DLDataTypeOf("int64"));
  return variables_.emplace(name, Dim(Call("ir.Var", String(name), int64, Any()))).first->second;
}

Dim Symbols::Get(const std::string& name, int64_t min, int64_t opt, int64_t max) {
  const bool made = variables_.count(name) == 0;
  Dim variable = Get(name);
  if (made) {
    opt_extents_[name] = opt;
    Any extents = Global("ir.Range")(Int64Imm(min), Int64Imm(max + 1), Any());
    Global("sym.AnalyzerBind")(analyzer_, variable.ToExpr(), extents, false);
  }
  return variable;
}

Dim Symbols::DataDependent(const std::string& stem, const Dim& most) {
  std::string name;
  do {
    name = stem + "_" + std::to_string(data_dependent_++);
  } while (variables_.count(name) != 0);
  Dim variable = Get(name);
  Any extents = Global("ir.Range")(Int64Imm(0), (most + 1).ToExpr(), Any());
  Global("sym.AnalyzerBind")(analyzer_, variable.ToExpr(), extents, false);
  return variable;
}

Dim Symbols::Simplify(const Dim& dim) const {
  if (dim.IsStatic()) return dim;
  return Dim(Global("sym.AnalyzerSimplify")(analyzer_, dim.ToExpr(), 2).cast<Expr>());
}

bool Symbols::ProvablyEqual(const Dim& a, const Dim& b) const {
  if (a.IsStatic() && b.IsStatic()) return a.Static() == b.Static();
  return Global("sym.AnalyzerCanProveEqual")(analyzer_, a.ToExpr(), b.ToExpr()).cast<bool>();
}

bool Symbols::ProvablyAtMost(const Dim& a, const Dim& b) const {
  if (a.IsStatic() && b.IsStatic()) return a.Static() <= b.Static();
  Any at_most = Global("prim._OpLE")(a.ToExpr(), b.ToExpr(), Any());
  constexpr int kDefaultStrength = 0;
  return Global("sym.AnalyzerCanProve")(analyzer_, at_most, kDefaultStrength).cast<bool>();
}

std::string ToString(const Dims& dims) {
  std::string text = "[";
  for (size_t i = 0; i < dims.size(); ++i) text += (i ? ", " : "") + dims[i].ToString();
  return text + "]";
}

Dims ToDims(const IntList& extents) { return Dims(extents.begin(), extents.end()); }

std::optional<IntList> StaticExtents(const Dims& dims) {
  IntList extents;
  for (const Dim& dim : dims) {
    if (!dim.IsStatic()) return std::nullopt;
    extents.push_back(dim.Static());
  }
  return extents;
}

Expr MakeParam(const std::string& name, const Dims& shape, const std::string& dtype) {
  TensorInfo info;
  info.dims = shape;
  info.dtype = dtype;
  return Call("ir.Var", String(name), TensorTypeOf(info), Any());
}

Expr MakeParam(const std::string& name, const IntList& shape, const std::string& dtype) {
  return MakeParam(name, ToDims(shape), dtype);
}

Expr CallPurePacked(const std::string& function, const std::vector<Expr>& args,
                    const std::vector<TensorInfo>& outputs) {
  Any callee = Global("relax.ExternFunc")(String(function), Any(), Any());
  Array<Any> fields;
  for (const TensorInfo& output : outputs) fields.push_back(TensorTypeOf(output));
  Any result_type = Global("ir.TupleType")(fields, Any());
  return Call("relax.op.call_pure_packed", callee, Array<Expr>(args.begin(), args.end()), Any(),
              Array<Any>{result_type});
}

Expr MakeConstant(const tvm::ffi::Tensor& value) {
  return Call("relax.MakeTensorConst", value, Any(), Any());
}

Expr MakeString(const std::string& text) { return Call("ir.StringImm", String(text), Any()); }

Expr MakeBool(bool value) {
  return Call("ir.IntImm", DLDataTypeOf("bool"), static_cast<int64_t>(value), Any());
}

Expr MakeTuple(const std::vector<Expr>& fields) {
  return Call("relax.Tuple", Array<Expr>(fields.begin(), fields.end()), Any());
}

Expr TupleGetItem(const Expr& tuple, int index) {
  return Call("relax.TupleGetItem", tuple, index, Any());
}

FunctionBuilder::FunctionBuilder(std::vector<Expr> params)
    : builder_(Global("relax.BlockBuilderCreate")(Any()).cast<ObjectRef>()),
      params_(params.begin(), params.end()) {
  Global("relax.BlockBuilderBeginScope")(builder_, params_);
  Global("relax.BlockBuilderBeginBindingBlock")(builder_);
}

void FunctionBuilder::EmitEffect(const std::string& function, const std::vector<Expr>& args) {
  Any callee = Global("relax.ExternFunc")(String(function), Any(), Any());
  Any no_result = Global("ir.TupleType")(Array<Any>{}, Any());
  // An ExternFunc call is impure: it stays out of dataflow blocks and in its place.
  Emit(Call("ir.Call", Global("ir.TypeMissing")(), callee, Array<Expr>(args.begin(), args.end()),
            Any(), Array<Any>{no_result}, Any()));
}

Expr FunctionBuilder::EmitIf(const Expr& cond, const std::function<Expr()>& then_branch,
                             const std::function<Expr()>& else_branch) {
  auto branch = [&](const std::function<Expr()>& body) {
    Global("relax.BlockBuilderBeginScope")(builder_, Any());
    Global("relax.BlockBuilderBeginBindingBlock")(builder_);
    Expr result = body();
    Any block = Global("relax.BlockBuilderEndBlock")(builder_);
    Global("relax.BlockBuilderEndScope")(builder_);
    return Global("relax.SeqExpr")(Array<Any>{block}, result, Any());
  };
  Any then_seq = branch(then_branch);
  Any else_seq = branch(else_branch);
  return Emit(Call("relax.If", cond, then_seq, else_seq, Any()));
}

FunctionBuilder::~FunctionBuilder() {
  if (finished_) return;
  try {
    Global("relax.BlockBuilderEndBlock")(builder_);
    Global("relax.BlockBuilderEndScope")(builder_);
  } catch (...) {  // nothing to report from a destructor; the builder is discarded anyway
  }
}

Expr FunctionBuilder::Emit(const Expr& value, const std::string& name_hint) {
  return Call("relax.BlockBuilderEmit", builder_, value, String(name_hint));
}

Expr FunctionBuilder::EmitMatchCast(const Expr& value, const TensorInfo& type) {
  return Call("relax.BlockBuilderEmitMatchCast", builder_, value, TensorTypeOf(type), String(""));
}

Expr FunctionBuilder::EmitShapeMatchCast(const Expr& value, const Dims& shape) {
  Any type = Global("relax.ShapeType")(ToArray(shape), -1, Any());
  return Call("relax.BlockBuilderEmitMatchCast", builder_, value, type, String(""));
}

ObjectRef FunctionBuilder::Finish(const Expr& output, const std::string& name,
                                  const Symbols& symbols) {
  finished_ = true;
  Any block = Global("relax.BlockBuilderEndBlock")(builder_);
  Any body = Global("relax.SeqExpr")(Array<Any>{block}, output, Any());
  Global("relax.BlockBuilderBeginScope")(builder_, params_);
  body = Global("relax.BlockBuilderNormalize")(builder_, body);
  Global("relax.BlockBuilderEndScope")(builder_);
  Any no_attrs = [] {
    int32_t type_index;
    const TVMFFIByteArray type_key{"ir.DictAttrs", 12};
    TVM_FFI_CHECK_SAFE_CALL(TVMFFITypeKeyToIndex(&type_key, &type_index));
    tvm::ffi::reflection::TypeAttrColumn init_column("__ffi_init__");
    return init_column[type_index].cast<Function>()(tvm::ffi::Map<String, Any>());
  }();
  Any function = Global("relax.Function")(params_, body, Any(), true, no_attrs, Any());
  function = Global("ir.BaseFuncWithAttr")(function, String("global_symbol"), String(name));
  if (!symbols.OptExtents().empty()) {
    tvm::ffi::Map<String, int64_t> opt_extents;
    for (const auto& [symbol, extent] : symbols.OptExtents()) opt_extents.Set(symbol, extent);
    function = Global("ir.BaseFuncWithAttr")(function, String(kOptExtentsAttribute), opt_extents);
  }
  Global("relax.BlockBuilderEndScope")(builder_);
  Global("relax.BlockBuilderAddFunction")(builder_, function, String(name));
  Any module = Global("relax.BlockBuilderFinalize")(builder_);
  // Every run of pure bindings between checks and branches becomes a dataflow block.
  Any to_dataflow = Global("relax.transform.ConvertToDataflow")(1);
  return Global("transform.RunPass")(to_dataflow, module).cast<ObjectRef>();
}

}  // namespace tvmbridge::relax
