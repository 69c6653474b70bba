// Rearranging elements: repeat/tile/repeat_interleave, stack/unbind, narrow, flip, roll,
// unflatten, movedim, broadcast_tensors, tensor_split, meshgrid, tril/triu and padding.
#include <algorithm>
#include <numeric>

#include <ATen/ops/arange.h>
#include <ATen/ops/repeat_interleave.h>
#include <c10/util/Exception.h>

#include "frontend/converter.h"
#include "tvmbridge/tensor_bridge.h"

namespace tvmbridge::frontend {
namespace {

using relax::Expr;
using relax::IntList;
using torch::jit::Node;

Expr Slice(ConversionContext& ctx, const Expr& x, int64_t axis, int64_t begin, int64_t end) {
  return ctx.EmitExpr(relax::op::StridedSlice(x, {axis}, {begin}, {end}, {1}));
}

// An int argument that may arrive as a 0-d tensor (narrow.Tensor, traced code).
int64_t IntOrScalarTensor(ConversionContext& ctx, const torch::jit::Value* value) {
  c10::IValue constant = ctx.Constant(value);
  return constant.isTensor() ? constant.toTensor().item<int64_t>() : constant.toInt();
}

// aten::repeat(self, repeats) and aten::tile(self, dims): both are NumPy's tile once the
// shorter of shape and repeats is padded with leading ones.
Value ConvertTile(ConversionContext& ctx, const Node& node) {
  return ctx.Emit(relax::op::Tile(ctx.Tensor(node.input(0)), ctx.Ints(node.input(1))));
}

// aten::repeat_interleave(self, repeats: int | Tensor, dim?, output_size?): an int repeats
// each element in place; a constant tensor of counts becomes a take of computed indices.
Value ConvertRepeatInterleave(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  const torch::jit::Value* dim = NamedInput(node, "dim");
  if (dim == nullptr || ctx.IsNone(dim)) {
    int64_t count = 1;
    for (int64_t extent : ctx.Shape(x)) count *= extent;
    x = ctx.EmitExpr(relax::op::Reshape(x, {count}));
  }
  int64_t axis = dim == nullptr || ctx.IsNone(dim) ? 0 : NormalizeAxis(ctx.Int(dim), ctx.Rank(x));
  c10::IValue repeats = ctx.Constant(node.input(1));
  if (repeats.isInt() || repeats.toTensor().numel() == 1) {
    int64_t count = repeats.isInt() ? repeats.toInt() : repeats.toTensor().item<int64_t>();
    return ctx.Emit(relax::op::Repeat(x, count, axis));
  }
  at::Tensor positions = at::arange(ctx.Shape(x)[axis], at::TensorOptions().dtype(at::kLong));
  at::Tensor indices = at::repeat_interleave(positions, repeats.toTensor().to(at::kLong));
  return ctx.Emit(relax::op::Take(x, TensorConstant(indices), axis));
}

// aten::stack(tensors, dim)
Value ConvertStack(ConversionContext& ctx, const Node& node) {
  std::vector<Expr> tensors = ctx.Tensors(node.input(0));
  TORCH_CHECK(!tensors.empty(), "stack of an empty list");
  int64_t axis = NormalizeAxis(ctx.Int(node.input(1)), ctx.Rank(tensors[0]) + 1);
  return ctx.Emit(relax::op::Stack(tensors, axis));
}

// aten::unbind(self, dim): the slices along dim, each without it.
Value ConvertUnbind(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  int64_t axis = NormalizeAxis(ctx.Int(node.input(1)), ctx.Rank(x));
  std::vector<Value> items;
  for (int64_t i = 0; i < ctx.Shape(x)[axis]; ++i) {
    items.push_back(ctx.Emit(relax::op::Squeeze(Slice(ctx, x, axis, i, i + 1), {axis})));
  }
  return Value::List(std::move(items));
}

// aten::narrow(self, dim, start, length)
Value ConvertNarrow(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  IntList shape = ctx.Shape(x);
  int64_t axis = NormalizeAxis(ctx.Int(node.input(1)), static_cast<int64_t>(shape.size()));
  int64_t start = IntOrScalarTensor(ctx, node.input(2));
  if (start < 0) start += shape[axis];
  int64_t length = ctx.Int(node.input(3));
  TORCH_CHECK(start >= 0 && length >= 0 && start + length <= shape[axis], "narrow: start ", start,
              " and length ", length, " exceed size ", shape[axis], " of dimension ", axis);
  return ctx.Emit(relax::op::StridedSlice(x, {axis}, {start}, {start + length}, {1}));
}

// aten::flip(self, dims)
Value ConvertFlip(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  int64_t rank = ctx.Rank(x);
  for (int64_t axis : ctx.Ints(node.input(1))) {
    x = ctx.EmitExpr(relax::op::Flip(x, NormalizeAxis(axis, rank)));
  }
  return Value::Tensor(x);
}

// x rolled by `shift` along `axis`: the last `shift` elements come first.
Expr Roll(ConversionContext& ctx, const Expr& x, int64_t shift, int64_t axis) {
  int64_t extent = ctx.Shape(x)[axis];
  if (extent == 0) return x;
  shift = ((shift % extent) + extent) % extent;
  if (shift == 0) return x;
  return ctx.EmitExpr(relax::op::Concat(
      {Slice(ctx, x, axis, extent - shift, extent), Slice(ctx, x, axis, 0, extent - shift)}, axis));
}

// aten::roll(self, shifts, dims): without dims the flattened tensor rolls.
Value ConvertRoll(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  IntList shape = ctx.Shape(x);
  IntList shifts = ctx.Ints(node.input(1));
  IntList dims = ctx.Ints(node.input(2));
  if (dims.empty()) {
    TORCH_CHECK(shifts.size() == 1, "roll without dims takes one shift");
    int64_t count = std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
    Expr flat = ctx.EmitExpr(relax::op::Reshape(x, {count}));
    return ctx.Emit(relax::op::Reshape(Roll(ctx, flat, shifts[0], 0), relax::ToDims(shape)));
  }
  TORCH_CHECK(shifts.size() == dims.size(), "roll: ", shifts.size(), " shifts for ", dims.size(),
              " dims");
  auto rank = static_cast<int64_t>(shape.size());
  for (size_t i = 0; i < dims.size(); ++i)
    x = Roll(ctx, x, shifts[i], NormalizeAxis(dims[i], rank));
  return Value::Tensor(x);
}

// aten::unflatten(self, dim, sizes): one -1 among the sizes is inferred.
Value ConvertUnflatten(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  IntList shape = ctx.Shape(x);
  int64_t axis = NormalizeAxis(ctx.Int(node.input(1)), static_cast<int64_t>(shape.size()));
  IntList sizes = ctx.Ints(node.input(2));
  int64_t known = 1;
  for (int64_t size : sizes) known *= size == -1 ? 1 : size;
  for (int64_t& size : sizes) {
    if (size == -1) size = shape[axis] / known;
  }
  IntList target(shape.begin(), shape.begin() + axis);
  target.insert(target.end(), sizes.begin(), sizes.end());
  target.insert(target.end(), shape.begin() + axis + 1, shape.end());
  return ctx.Emit(relax::op::Reshape(x, relax::ToDims(target)));
}

// aten::movedim / moveaxis(self, source, destination) with ints or lists of them.
Value ConvertMovedim(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  int64_t rank = ctx.Rank(x);
  IntList source = ctx.Ints(node.input(1));
  IntList destination = ctx.Ints(node.input(2));
  TORCH_CHECK(source.size() == destination.size(),
              "movedim: source and destination differ in "
              "length");
  IntList order(rank, -1);
  std::vector<bool> moved(rank, false);
  for (size_t i = 0; i < source.size(); ++i) {
    int64_t from = NormalizeAxis(source[i], rank);
    order[NormalizeAxis(destination[i], rank)] = from;
    moved[from] = true;
  }
  int64_t next = 0;
  for (int64_t& axis : order) {
    if (axis >= 0) continue;
    while (moved[next]) ++next;
    axis = next++;
  }
  return ctx.Emit(relax::op::PermuteDims(x, order));
}

// aten::broadcast_tensors(tensors): each broadcast to the common shape.
Value ConvertBroadcastTensors(ConversionContext& ctx, const Node& node) {
  std::vector<Expr> tensors = ctx.Tensors(node.input(0));
  size_t rank = 0;
  for (const Expr& tensor : tensors) rank = std::max(rank, static_cast<size_t>(ctx.Rank(tensor)));
  IntList common(rank, 1);
  for (const Expr& tensor : tensors) {
    IntList shape = ctx.Shape(tensor);
    for (size_t i = 0; i < shape.size(); ++i) {
      int64_t& into = common[rank - shape.size() + i];
      TORCH_CHECK(shape[i] == into || shape[i] == 1 || into == 1,
                  "broadcast_tensors: shapes cannot be broadcast together");
      if (shape[i] != 1) into = shape[i];
    }
  }
  std::vector<Value> items;
  for (const Expr& tensor : tensors) {
    items.push_back(ctx.Shape(tensor) == common
                        ? Value::Tensor(tensor)
                        : ctx.Emit(relax::op::BroadcastTo(tensor, relax::ToDims(common))));
  }
  return Value::List(std::move(items));
}

// aten::tensor_split(self, sections | indices, dim): n sections of which the first
// size % n are one longer, or pieces between the given indices.
Value ConvertTensorSplit(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  IntList shape = ctx.Shape(x);
  int64_t axis = NormalizeAxis(ctx.Int(node.inputs().back()), static_cast<int64_t>(shape.size()));
  int64_t extent = shape[axis];
  c10::IValue split = ctx.Constant(node.input(1));
  if (split.isTensor()) {  // tensor_indices_or_sections: a constant tensor
    at::Tensor counts = split.toTensor().to(at::kLong).contiguous();
    split = counts.dim() == 0
                ? c10::IValue(counts.item<int64_t>())
                : c10::IValue(std::vector<int64_t>(counts.data_ptr<int64_t>(),
                                                   counts.data_ptr<int64_t>() + counts.numel()));
  }
  IntList bounds{0};
  if (split.isInt()) {
    int64_t sections = split.toInt();
    TORCH_CHECK(sections > 0, "tensor_split expects a positive number of sections");
    for (int64_t i = 0; i < sections; ++i) {
      bounds.push_back(bounds.back() + extent / sections + (i < extent % sections ? 1 : 0));
    }
  } else {
    for (int64_t index : split.toIntVector()) {
      bounds.push_back(std::clamp<int64_t>(index < 0 ? index + extent : index, 0, extent));
    }
    bounds.push_back(extent);
  }
  std::vector<Value> items;
  for (size_t i = 0; i + 1 < bounds.size(); ++i) {
    int64_t begin = bounds[i];
    int64_t end = std::max(begin, bounds[i + 1]);
    items.push_back(ctx.Emit(relax::op::StridedSlice(x, {axis}, {begin}, {end}, {1})));
  }
  return Value::List(std::move(items));
}

// aten::meshgrid(tensors, indexing="ij"): each 1-d input spread along its own axis; "xy"
// swaps the first two axes of every result.
Value ConvertMeshgrid(ConversionContext& ctx, const Node& node) {
  std::vector<Expr> tensors = ctx.Tensors(node.input(0));
  std::string indexing = node.inputs().size() > 1 ? ctx.String(node.input(1)) : "ij";
  TORCH_CHECK(indexing == "ij" || indexing == "xy", "meshgrid: unknown indexing '", indexing, "'");
  IntList extents;
  for (const Expr& tensor : tensors) {
    IntList shape = ctx.Shape(tensor);
    TORCH_CHECK(shape.size() <= 1, "meshgrid expects 0-d or 1-d tensors");
    extents.push_back(shape.empty() ? 1 : shape[0]);
  }
  bool swap = indexing == "xy" && tensors.size() >= 2;
  IntList grid = extents;
  if (swap) std::swap(grid[0], grid[1]);
  std::vector<Value> items;
  for (size_t i = 0; i < tensors.size(); ++i) {
    size_t position = swap && i < 2 ? 1 - i : i;
    IntList spread(tensors.size(), 1);
    spread[position] = extents[i];
    Expr placed = ctx.EmitExpr(relax::op::Reshape(tensors[i], relax::ToDims(spread)));
    items.push_back(ctx.Emit(relax::op::BroadcastTo(placed, relax::ToDims(grid))));
  }
  return Value::List(std::move(items));
}

// aten::tril / triu(self, diagonal)
template <bool kUpper>
Value ConvertTriangle(ConversionContext& ctx, const Node& node) {
  int64_t diagonal = node.inputs().size() > 1 ? ctx.Int(node.input(1)) : 0;
  return ctx.Emit(relax::op::Triangle(kUpper, ctx.Tensor(node.input(0)), diagonal));
}

// PyTorch's pad list, (before, after) pairs from the last axis backwards, as Relax's
// per-axis widths from the first axis on.
IntList PadWidths(const IntList& pad, int64_t rank) {
  TORCH_CHECK(pad.size() % 2 == 0 && static_cast<int64_t>(pad.size()) <= 2 * rank,
              "pad: a list of (before, after) pairs for at most ", rank, " dims, got ", pad.size(),
              " values");
  IntList widths(2 * rank, 0);
  for (size_t pair = 0; pair < pad.size() / 2; ++pair) {
    int64_t axis = rank - 1 - static_cast<int64_t>(pair);
    widths[2 * axis] = pad[2 * pair];
    widths[2 * axis + 1] = pad[2 * pair + 1];
  }
  return widths;
}

// Pads `x`; negative widths (constant mode) crop, as in PyTorch.
Value Pad(ConversionContext& ctx, Expr x, const IntList& pad, const std::string& mode,
          double value) {
  int64_t rank = ctx.Rank(x);
  IntList widths = PadWidths(pad, rank);
  IntList shape = ctx.Shape(x);
  for (int64_t axis = 0; axis < rank; ++axis) {
    int64_t before = std::min<int64_t>(widths[2 * axis], 0);
    int64_t after = std::min<int64_t>(widths[2 * axis + 1], 0);
    if (before == 0 && after == 0) continue;
    TORCH_CHECK(mode == "constant", "pad: negative padding needs mode 'constant'");
    x = Slice(ctx, x, axis, -before, shape[axis] + after);
    widths[2 * axis] -= before;
    widths[2 * axis + 1] -= after;
  }
  if (std::all_of(widths.begin(), widths.end(), [](int64_t w) { return w == 0; })) {
    return Value::Tensor(x);
  }
  if (mode == "reflect") {
    for (int64_t axis = 0; axis < rank; ++axis) {
      TORCH_CHECK(widths[2 * axis] < shape[axis] && widths[2 * axis + 1] < shape[axis],
                  "pad: reflect padding must be smaller than the padded dimension");
    }
  }
  return ctx.Emit(relax::op::Pad(x, widths, mode, value));
}

// aten::pad(self, pad, mode, value?) and aten::constant_pad_nd(self, pad, value).
Value ConvertPad(ConversionContext& ctx, const Node& node) {
  const torch::jit::Value* mode_input = NamedInput(node, "mode");
  std::string mode = mode_input == nullptr ? "constant" : ctx.String(mode_input);
  const torch::jit::Value* value = NamedInput(node, "value");
  double fill = value == nullptr || ctx.IsNone(value) ? 0.0 : ctx.Double(value);
  TORCH_CHECK(mode == "constant" || mode == "reflect" || mode == "replicate" || mode == "circular",
              "pad: unknown mode '", mode, "'");
  return Pad(ctx, ctx.Tensor(node.input(0)), ctx.Ints(node.input(1)), mode, fill);
}

// reflection_pad{1,2,3}d / replication_pad{1,2,3}d(self, padding)
Converter ModePad(std::string mode) {
  return [mode](ConversionContext& ctx, const Node& node) {
    return Pad(ctx, ctx.Tensor(node.input(0)), ctx.Ints(node.input(1)), mode, 0.0);
  };
}

}  // namespace

void RegisterLayoutOps(ConverterTable& table) {
  RegisterAll(table, {"aten::repeat", "aten::tile"}, ConvertTile);
  table.Register("aten::repeat_interleave", ConvertRepeatInterleave);
  table.Register("aten::stack", ConvertStack);
  table.Register("aten::unbind", ConvertUnbind);
  table.Register("aten::narrow", ConvertNarrow, kOnInputGrid);
  table.Register("aten::flip", ConvertFlip);
  table.Register("aten::roll", ConvertRoll);
  table.Register("aten::unflatten", ConvertUnflatten);
  RegisterAll(table, {"aten::movedim", "aten::moveaxis"}, ConvertMovedim);
  table.Register("aten::broadcast_tensors", ConvertBroadcastTensors);
  table.Register("aten::tensor_split", ConvertTensorSplit);
  table.Register("aten::meshgrid", ConvertMeshgrid);
  RegisterWithInplace(table, "aten::tril", ConvertTriangle<false>);
  RegisterWithInplace(table, "aten::triu", ConvertTriangle<true>);
  RegisterAll(table, {"aten::pad", "aten::constant_pad_nd"}, ConvertPad);
  for (const char* dims : {"1d", "2d", "3d"}) {
    table.Register(std::string("aten::reflection_pad") + dims, ModePad("reflect"));
    table.Register(std::string("aten::replication_pad") + dims, ModePad("replicate"));
  }
}

}  // namespace tvmbridge::frontend
