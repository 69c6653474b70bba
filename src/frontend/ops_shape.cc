// Lists, tuples, static sizes and views: view/reshape/flatten, permute, transpose, cat.
#include <c10/util/Exception.h>

#include "frontend/converter.h"

namespace tvmbridge::frontend {
namespace {

using torch::jit::Node;

// Lists and tuples of constants stay constants (shapes, strides); any tensor makes a kList.
Value ConvertListConstruct(ConversionContext& ctx, const Node& node) {
  std::vector<Value> items;
  bool all_constant = true;
  for (const torch::jit::Value* input : node.inputs()) {
    items.push_back(ctx.Get(input));
    all_constant = all_constant && items.back().kind == Value::Kind::kConstant;
  }
  if (!all_constant) return Value::List(std::move(items));
  std::vector<c10::IValue> elements;
  for (const Value& item : items) elements.push_back(item.constant);
  if (node.kind() == c10::prim::TupleConstruct) {
    return Value::Constant(c10::ivalue::Tuple::create(std::move(elements)));
  }
  c10::impl::GenericList list(node.output()->type()->containedType(0));
  for (auto& element : elements) list.push_back(std::move(element));
  return Value::Constant(c10::IValue(std::move(list)));
}

// prim::DictConstruct(key, value, ...): a dict of tensors a model returns (torchvision's
// segmentation models: {"out": ..., "aux": ...}). Its values are what crosses; like a tuple
// that packs region outputs, the node itself runs in PyTorch, as bookkeeping.
Value ConvertDictConstruct(ConversionContext& ctx, const Node& node) {
  std::vector<Value> values;
  for (size_t i = 1; i < node.inputs().size(); i += 2) values.push_back(ctx.Get(node.input(i)));
  return Value::List(std::move(values));
}

// The items of a list or tuple: a kList's, or a constant list's or tuple's elements as
// constants.
std::vector<Value> ListItems(const Value& list) {
  if (list.kind == Value::Kind::kList) return list.items;
  TORCH_CHECK(
      list.kind == Value::Kind::kConstant && (list.constant.isList() || list.constant.isTuple()),
      "expected a list or tuple, got another value");
  std::vector<Value> items;
  auto add = [&](const c10::IValue& element) { items.push_back(Value::Constant(element)); };
  if (list.constant.isList()) {
    for (const c10::IValue& element : list.constant.toListRef()) add(element);
  } else {
    for (const c10::IValue& element : list.constant.toTupleRef().elements()) add(element);
  }
  return items;
}

// prim::ListUnpack / TupleUnpack: the items, where a constant list's are constants
// (`tgt_len, bsz, embed_dim = query.shape` on static shapes, in nn.MultiheadAttention).
Value ConvertUnpack(ConversionContext& ctx, const Node& node) {
  return Value::List(ListItems(ctx.Get(node.input(0))));
}

// aten::__getitem__(list, index) on a list holding tensors, and prim::TupleIndex(tuple, index)
// at an index known at conversion (one that branches resolved at conversion chose).
Value ConvertItemAt(ConversionContext& ctx, const Node& node) {
  const std::vector<Value> items = ListItems(ctx.Get(node.input(0)));
  const auto size = static_cast<int64_t>(items.size());
  int64_t index = ctx.Int(node.input(1));
  if (index < 0) index += size;
  TORCH_CHECK(index >= 0 && index < size, "index ", ctx.Int(node.input(1)), " out of range for ",
              size, " items");
  return items[index];
}

// aten::add.t(a, b): two lists joined (`torch.cat(to_cat + [x])`, timm's ViTs); lists of
// constants only are folded before this.
Value ConvertListConcat(ConversionContext& ctx, const Node& node) {
  std::vector<Value> items = ListItems(ctx.Get(node.input(0)));
  std::vector<Value> tail = ListItems(ctx.Get(node.input(1)));
  items.insert(items.end(), tail.begin(), tail.end());
  return Value::List(std::move(items));
}

// aten::len(list) of a list holding tensors: known at conversion.
Value ConvertListLen(ConversionContext& ctx, const Node& node) {
  const Value& list = ctx.Get(node.input(0));
  TORCH_CHECK(list.kind == Value::Kind::kList, "len() of this value is not supported");
  return Value::Constant(static_cast<int64_t>(list.items.size()));
}

// A symbolic extent is a kSize (see Value); static ones are constants.
Value ConvertSize(ConversionContext& ctx, const Node& node) {
  relax::Dims dims = ctx.Dims(ctx.Tensor(node.input(0)));
  if (node.inputs().size() == 1) {
    if (std::optional<relax::IntList> shape = relax::StaticExtents(dims)) {
      return Value::Constant(c10::IValue(*shape));
    }
    std::vector<Value> sizes;
    for (const relax::Dim& dim : dims) sizes.push_back(Value::Size(dim));
    return Value::List(std::move(sizes));
  }
  int64_t axis = NormalizeAxis(ctx.Int(node.input(1)), static_cast<int64_t>(dims.size()));
  return Value::Size(dims[axis]);
}

Value ConvertDim(ConversionContext& ctx, const Node& node) {
  return Value::Constant(ctx.Rank(ctx.Tensor(node.input(0))));
}

Value PassThrough(ConversionContext& ctx, const Node& node) { return ctx.Get(node.input(0)); }

// aten::dropout(input, p, train): inference only, so dropout must be off.
Value ConvertDropout(ConversionContext& ctx, const Node& node) {
  TORCH_CHECK(!ctx.Bool(node.input(2)), "dropout in training mode; call model.eval() first");
  return ctx.Get(node.input(0));
}

// Resolves one -1 in a target shape the way torch.view does. With symbolic extents the
// inferred one is total / known (TVM checks at run time that the element counts agree), after
// cancelling the extents both share: [b, s, 64] viewed as [b, s, -1, 16] infers 4.
relax::Dims ResolveShape(const ConversionContext& ctx, relax::Dims target,
                         const relax::Dims& source) {
  relax::Dims uncancelled(source);
  relax::Dim known = 1;
  int64_t inferred = -1;
  for (size_t i = 0; i < target.size(); ++i) {
    if (target[i].IsStatic() && target[i].Static() == -1) {
      TORCH_CHECK(inferred < 0, "only one dimension can be inferred (-1)");
      inferred = static_cast<int64_t>(i);
      continue;
    }
    auto shared = std::find_if(uncancelled.begin(), uncancelled.end(), [&](const relax::Dim& dim) {
      return !dim.IsStatic() && ctx.ProvablyEqual(dim, target[i]);
    });
    if (shared != uncancelled.end()) {
      uncancelled.erase(shared);
    } else {
      known = known * target[i];
    }
  }
  relax::Dim total = Product(uncancelled.begin(), uncancelled.end());
  if (inferred >= 0) {
    if (total.IsStatic() && known.IsStatic()) {
      TORCH_CHECK(known.Static() != 0 && total.Static() % known.Static() == 0, "cannot view ",
                  total.Static(), " elements as the shape");
    }
    target[inferred] = ctx.Simplify(relax::FloorDivide(total, known));
  }
  return target;
}

Value ConvertReshape(ConversionContext& ctx, const Node& node) {
  relax::Expr x = ctx.Tensor(node.input(0));
  return ctx.Emit(
      relax::op::Reshape(x, ResolveShape(ctx, ctx.SizesArgument(node.input(1)), ctx.Dims(x))));
}

Value ConvertReshapeAs(ConversionContext& ctx, const Node& node) {
  return ctx.Emit(
      relax::op::Reshape(ctx.Tensor(node.input(0)), ctx.Dims(ctx.Tensor(node.input(1)))));
}

Value ConvertFlatten(ConversionContext& ctx, const Node& node) {
  relax::Expr x = ctx.Tensor(node.input(0));
  relax::Dims shape = ctx.Dims(x);
  auto rank = static_cast<int64_t>(shape.size());
  if (rank == 0) return ctx.Emit(relax::op::Reshape(x, relax::Dims{1}));
  int64_t start = NormalizeAxis(ctx.Int(node.input(1)), rank);
  int64_t end = NormalizeAxis(ctx.Int(node.input(2)), rank);
  relax::Dims target(shape.begin(), shape.begin() + start);
  target.push_back(Product(shape.begin() + start, shape.begin() + end + 1));
  target.insert(target.end(), shape.begin() + end + 1, shape.end());
  return ctx.Emit(relax::op::Reshape(x, target));
}

Value ConvertPermute(ConversionContext& ctx, const Node& node) {
  relax::Expr x = ctx.Tensor(node.input(0));
  int64_t rank = ctx.Rank(x);
  relax::IntList axes = ctx.Ints(node.input(1));
  for (int64_t& axis : axes) axis = NormalizeAxis(axis, rank);
  return ctx.Emit(relax::op::PermuteDims(x, axes));
}

// aten::transpose(self, dim0, dim1) and aten::t(self)
Value ConvertTranspose(ConversionContext& ctx, const Node& node) {
  relax::Expr x = ctx.Tensor(node.input(0));
  int64_t rank = ctx.Rank(x);
  if (node.inputs().size() == 1 && rank < 2) return ctx.Get(node.input(0));  // t() of a vector
  int64_t a = node.inputs().size() == 1 ? 0 : NormalizeAxis(ctx.Int(node.input(1)), rank);
  int64_t b = node.inputs().size() == 1 ? 1 : NormalizeAxis(ctx.Int(node.input(2)), rank);
  return ctx.Emit(relax::op::PermuteDims(x, SwappedAxes(rank, a, b)));
}

// aten::numpy_T(self) (x.T): every axis reversed.
Value ConvertReverseAxes(ConversionContext& ctx, const Node& node) {
  relax::Expr x = ctx.Tensor(node.input(0));
  int64_t rank = ctx.Rank(x);
  relax::IntList axes(rank);
  for (int64_t i = 0; i < rank; ++i) axes[i] = rank - 1 - i;
  return ctx.Emit(relax::op::PermuteDims(x, axes));
}

Value ConvertCat(ConversionContext& ctx, const Node& node) {
  std::vector<relax::Expr> tensors = ctx.Tensors(node.input(0));
  TORCH_CHECK(!tensors.empty(), "cat of an empty list");
  int64_t rank = ctx.Rank(tensors[0]);
  return ctx.Emit(relax::op::Concat(tensors, NormalizeAxis(ctx.Int(node.input(1)), rank)));
}

}  // namespace

void RegisterShapeOps(ConverterTable& table) {
  RegisterAll(table, {"prim::ListConstruct", "prim::TupleConstruct"}, ConvertListConstruct);
  RegisterAll(table, {"prim::ListUnpack", "prim::TupleUnpack"}, ConvertUnpack);
  table.Register("prim::TupleIndex", ConvertItemAt);
  table.Register("prim::DictConstruct", ConvertDictConstruct);
  table.Register("aten::__getitem__", ConvertItemAt);
  table.Register("aten::len", ConvertListLen);
  table.Register("aten::add.t", ConvertListConcat);
  table.Register("aten::size", ConvertSize);
  table.Register("aten::dim", ConvertDim);
  RegisterAll(table, {"aten::contiguous", "aten::detach", "aten::clone"}, PassThrough,
              kOnInputGrid);
  RegisterAll(table,
              {"aten::dropout", "aten::dropout_", "aten::feature_dropout", "aten::alpha_dropout"},
              ConvertDropout, kOnInputGrid);
  RegisterAll(table, {"aten::view", "aten::reshape"}, ConvertReshape, kOnInputGrid);
  RegisterAll(table, {"aten::view_as", "aten::reshape_as"}, ConvertReshapeAs);
  table.Register("aten::flatten", ConvertFlatten, kOnInputGrid);
  table.Register("aten::permute", ConvertPermute, kOnInputGrid);
  RegisterAll(table, {"aten::transpose", "aten::t", "aten::swapaxes", "aten::swapdims"},
              ConvertTranspose, kOnInputGrid);
  table.Register("aten::numpy_T", ConvertReverseAxes);
  RegisterAll(table, {"aten::cat", "aten::concat"}, ConvertCat);
}

}  // namespace tvmbridge::frontend
