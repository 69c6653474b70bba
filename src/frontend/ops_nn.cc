// Convolution, normalisation (batch, layer, instance, group, weight norm) and dense
// layers (linear, matmul in every rank combination, addmm/baddbmm, dot, mv, outer, einsum).
#include <cmath>
#include <limits>
#include <optional>

#include <ATen/Functions.h>
#include <c10/util/Exception.h>

#include "frontend/converter.h"
#include "frontend/emit_nn.h"
#include "tvmbridge/tensor_bridge.h"

namespace tvmbridge::frontend {

using relax::Expr;
using relax::IntList;
using torch::jit::Node;

IntList SymmetricPadding(IntList padding, size_t spatial_dims) {
  if (padding.size() == 1) padding.assign(spatial_dims, padding[0]);
  TORCH_CHECK(padding.size() == spatial_dims, "expected ", spatial_dims, " padding values");
  IntList both(padding);
  both.insert(both.end(), padding.begin(), padding.end());
  return both;
}

IntList PerSpatialDim(IntList values, size_t spatial_dims, const char* what) {
  if (values.size() == 1) values.assign(spatial_dims, values[0]);
  TORCH_CHECK(values.size() == spatial_dims, "expected ", spatial_dims, " values for ", what,
              ", got ", values.size());
  return values;
}

ConvGeometry ConvGeometry::Symmetric(size_t spatial_dims, const IntList& strides,
                                     const IntList& padding, const IntList& dilation,
                                     int64_t groups) {
  ConvGeometry geometry;
  geometry.strides = strides;
  geometry.padding = SymmetricPadding(padding, spatial_dims);
  geometry.dilation = dilation;
  geometry.groups = groups;
  return geometry;
}

Expr EmitConv(ConversionContext& ctx, const Expr& data, const Expr& weight,
              const std::optional<Expr>& bias, const ConvGeometry& geometry) {
  size_t spatial = static_cast<size_t>(ctx.Rank(weight)) - 2;
  TORCH_CHECK(static_cast<size_t>(ctx.Rank(data)) == spatial + 2,
              "unbatched convolution input is not supported");
  auto dims = static_cast<int>(spatial);
  Expr out =
      geometry.transposed
          ? ctx.EmitExpr(relax::op::ConvTranspose(dims, data, weight, geometry.strides,
                                                  geometry.padding, geometry.output_padding,
                                                  geometry.dilation, geometry.groups))
          : ctx.EmitExpr(relax::op::Conv(dims, data, weight, geometry.strides, geometry.padding,
                                         geometry.dilation, geometry.groups));
  if (!bias) return out;
  IntList bias_shape(spatial + 2, 1);
  bias_shape[1] = -1;
  return ctx.EmitExpr(
      relax::op::Add(out, ctx.EmitExpr(relax::op::Reshape(*bias, relax::ToDims(bias_shape)))));
}

namespace {

struct ConvArgs {
  const torch::jit::Value* input;
  const torch::jit::Value* weight;
  const torch::jit::Value* bias;
  const torch::jit::Value* stride;
  const torch::jit::Value* padding;
  const torch::jit::Value* dilation;
  const torch::jit::Value* groups;
  const torch::jit::Value* output_padding = nullptr;
  bool transposed = false;
};

Value EmitConvolution(ConversionContext& ctx, const ConvArgs& args) {
  Expr data = ctx.Tensor(args.input);
  Expr weight = ctx.Tensor(args.weight);
  IntList weight_shape = ctx.Shape(weight);
  size_t spatial = weight_shape.size() - 2;
  TORCH_CHECK(spatial >= 1 && spatial <= 3, "only 1-, 2- and 3-d convolutions are supported");
  IntList kernel(weight_shape.begin() + 2, weight_shape.end());
  ConvGeometry geometry;
  geometry.strides = PerSpatialDim(ctx.Ints(args.stride), spatial, "stride");
  geometry.dilation = PerSpatialDim(ctx.Ints(args.dilation), spatial, "dilation");
  c10::IValue padding_value = ctx.Constant(args.padding);
  if (padding_value.isString()) {
    const std::string& mode = padding_value.toStringRef();
    TORCH_CHECK(mode == "valid" || mode == "same", "unknown padding mode '", mode, "'");
    IntList begin(spatial, 0), end(spatial, 0);
    if (mode == "same") {
      for (size_t i = 0; i < spatial; ++i) {
        int64_t total = geometry.dilation[i] * (kernel[i] - 1);
        begin[i] = total / 2;
        end[i] = total - begin[i];
      }
    }
    geometry.padding = begin;
    geometry.padding.insert(geometry.padding.end(), end.begin(), end.end());
  } else {
    geometry.padding = SymmetricPadding(padding_value.toIntVector(), spatial);
  }
  geometry.groups = ctx.Int(args.groups);
  geometry.transposed = args.transposed;
  if (args.transposed) {
    geometry.output_padding =
        PerSpatialDim(ctx.Ints(args.output_padding), spatial, "output_padding");
  }
  std::optional<Expr> bias;
  if (!ctx.IsNone(args.bias)) bias = ctx.Tensor(args.bias);
  return Value::Tensor(EmitConv(ctx, data, weight, bias, geometry));
}

// aten::conv{1,2,3}d(input, weight, bias, stride, padding, dilation, groups)
Value ConvertConv(ConversionContext& ctx, const Node& node) {
  return EmitConvolution(ctx, {node.input(0), node.input(1), node.input(2), node.input(3),
                               node.input(4), node.input(5), node.input(6)});
}

// aten::conv_transpose{1,2,3}d(input, weight, bias, stride, padding, output_padding, groups,
//                             dilation)
Value ConvertConvTranspose(ConversionContext& ctx, const Node& node) {
  ConvArgs args{node.input(0), node.input(1), node.input(2), node.input(3),
                node.input(4), node.input(7), node.input(6)};
  args.output_padding = node.input(5);
  args.transposed = true;
  return EmitConvolution(ctx, args);
}

// aten::_convolution(input, weight, bias, stride, padding, dilation, transposed,
//                    output_padding, groups, ...) as recorded by torch.jit.trace
Value ConvertUnderscoreConvolution(ConversionContext& ctx, const Node& node) {
  ConvArgs args{node.input(0), node.input(1), node.input(2), node.input(3),
                node.input(4), node.input(5), node.input(8)};
  args.output_padding = node.input(7);
  args.transposed = ctx.Bool(node.input(6));
  return EmitConvolution(ctx, args);
}

// A per-channel parameter, or `fill` when PyTorch passes None (affine=False).
Expr ChannelParam(ConversionContext& ctx, const torch::jit::Value* value, int64_t channels,
                  double fill, const std::string& dtype) {
  if (!ctx.IsNone(value)) return ctx.Tensor(value);
  return ctx.Filled(fill, {channels}, dtype);
}

// aten::batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps,
//                  cudnn_enabled)
Value ConvertBatchNorm(ConversionContext& ctx, const Node& node) {
  TORCH_CHECK(!ctx.Bool(node.input(5)), "batch norm in training mode; call model.eval() first");
  TORCH_CHECK(!ctx.IsNone(node.input(3)) && !ctx.IsNone(node.input(4)),
              "batch norm without running statistics is not supported");
  Expr x = ctx.Tensor(node.input(0));
  relax::TensorInfo info = ctx.Info(x);
  int64_t channels = ctx.Dims(x).at(1).Static();
  Expr mean = ctx.Tensor(node.input(3));
  Expr var = ctx.Tensor(node.input(4));
  Expr gamma = ChannelParam(ctx, node.input(1), channels, 1.0, info.dtype);
  Expr beta = ChannelParam(ctx, node.input(2), channels, 0.0, info.dtype);
  Expr normalized =
      ctx.EmitExpr(relax::op::BatchNorm(x, gamma, beta, mean, var, 1, ctx.Double(node.input(7))));
  return ctx.Emit(relax::TupleGetItem(normalized, 0));
}

// aten::layer_norm(input, normalized_shape, weight?, bias?, eps, cudnn_enable)
Value ConvertLayerNorm(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  int64_t rank = ctx.Rank(x);
  IntList normalized_shape = ctx.Ints(node.input(1));
  auto normalized = static_cast<int64_t>(normalized_shape.size());
  IntList axes;
  for (int64_t axis = rank - normalized; axis < rank; ++axis) axes.push_back(axis);
  std::string dtype = ctx.Info(x).dtype;
  auto param = [&](const torch::jit::Value* value, double fill) {
    return ctx.IsNone(value) ? ctx.Filled(fill, normalized_shape, dtype) : ctx.Tensor(value);
  };
  return ctx.Emit(relax::op::LayerNorm(x, param(node.input(2), 1.0), param(node.input(3), 0.0),
                                       axes, ctx.Double(node.input(4))));
}

// The spatial axes 2..rank-1 of an NC... tensor.
IntList SpatialAxes(ConversionContext& ctx, const Expr& x) {
  IntList axes;
  for (int64_t axis = 2; axis < ctx.Rank(x); ++axis) {
    axes.push_back(axis);
  }
  return axes;
}

// aten::instance_norm(input, weight?, bias?, running_mean?, running_var?, use_input_stats,
//                     momentum, eps, cudnn_enabled)
Value ConvertInstanceNorm(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  std::string dtype = ctx.Info(x).dtype;
  int64_t channels = ctx.Shape(x).at(1);
  Expr gamma = ChannelParam(ctx, node.input(1), channels, 1.0, dtype);
  Expr beta = ChannelParam(ctx, node.input(2), channels, 0.0, dtype);
  double epsilon = ctx.Double(node.input(7));
  if (!ctx.Bool(node.input(5))) {  // track_running_stats in eval: the running statistics
    Expr normalized = ctx.EmitExpr(relax::op::BatchNorm(x, gamma, beta, ctx.Tensor(node.input(3)),
                                                        ctx.Tensor(node.input(4)), 1, epsilon));
    return ctx.Emit(relax::TupleGetItem(normalized, 0));
  }
  if (dtype == "float32") {
    return ctx.Emit(relax::op::InstanceNorm(x, gamma, beta, SpatialAxes(ctx, x), epsilon));
  }
  // TVM's instance_norm takes float32 and float16 only, and computes float16 in float16; PyTorch
  // computes half precision in float32 and double in double.
  std::string computed = dtype == "float64" ? "float64" : "float32";
  Expr wide = ctx.EmitExpr(relax::op::AsType(x, computed));
  IntList axes = SpatialAxes(ctx, x);
  Expr centered =
      ctx.EmitExpr(relax::op::Subtract(wide, ctx.EmitExpr(relax::op::Mean(wide, axes, true))));
  Expr variance = ctx.EmitExpr(
      relax::op::Mean(ctx.EmitExpr(relax::op::Multiply(centered, centered)), axes, true));
  Expr deviation = ctx.EmitExpr(relax::op::Unary(
      "sqrt", ctx.EmitExpr(relax::op::Add(variance, ctx.Scalar(epsilon, computed)))));
  Expr normalized = ctx.EmitExpr(relax::op::Divide(centered, deviation));
  IntList per_channel(axes.size() + 2, 1);
  per_channel[1] = channels;
  auto channel_param = [&](const Expr& param) {
    return ctx.EmitExpr(
        relax::op::Reshape(relax::op::AsType(param, computed), relax::ToDims(per_channel)));
  };
  Expr scaled = ctx.EmitExpr(relax::op::Add(
      ctx.EmitExpr(relax::op::Multiply(normalized, channel_param(gamma))), channel_param(beta)));
  return ctx.Emit(relax::op::AsType(scaled, dtype));
}

// aten::group_norm(input, num_groups, weight?, bias?, eps, cudnn_enabled)
Value ConvertGroupNorm(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  std::string dtype = ctx.Info(x).dtype;
  int64_t channels = ctx.Shape(x).at(1);
  int64_t groups = ctx.Int(node.input(1));
  TORCH_CHECK(groups > 0 && channels % groups == 0, "group_norm: ", channels,
              " channels do not split into ", groups, " groups");
  Expr gamma = ChannelParam(ctx, node.input(2), channels, 1.0, dtype);
  Expr beta = ChannelParam(ctx, node.input(3), channels, 0.0, dtype);
  return ctx.Emit(
      relax::op::GroupNorm(x, gamma, beta, groups, SpatialAxes(ctx, x), ctx.Double(node.input(4))));
}

// aten::_weight_norm(v, g, dim): v * g / ||v||, the norm over every axis but `dim`.
Value ConvertWeightNorm(ConversionContext& ctx, const Node& node) {
  Expr v = ctx.Tensor(node.input(0));
  Expr g = ctx.Tensor(node.input(1));
  auto rank = ctx.Rank(v);
  int64_t dim = ctx.Int(node.input(2));
  IntList axes;
  for (int64_t axis = 0; axis < rank; ++axis) {
    if (dim == -1 || axis != NormalizeAxis(dim, rank)) axes.push_back(axis);
  }
  Expr squares = ctx.EmitExpr(relax::op::Sum(ctx.EmitExpr(relax::op::Multiply(v, v)), axes, true));
  Expr norm = ctx.EmitExpr(relax::op::Unary("sqrt", squares));
  return ctx.Emit(relax::op::Multiply(v, ctx.EmitExpr(relax::op::Divide(g, norm))));
}

Expr TransposeLastTwo(ConversionContext& ctx, const Expr& x) {
  auto rank = ctx.Rank(x);
  if (rank < 2) return x;
  return ctx.EmitExpr(relax::op::PermuteDims(x, SwappedAxes(rank, rank - 1, rank - 2)));
}

// aten::linear(input, weight, bias): input @ weight.T + bias
Value ConvertLinear(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  Expr out = ctx.EmitExpr(relax::op::Matmul(x, TransposeLastTwo(ctx, ctx.Tensor(node.input(1)))));
  if (ctx.IsNone(node.input(2))) return Value::Tensor(out);
  return ctx.Emit(relax::op::Add(out, ctx.Tensor(node.input(2))));
}

// aten::addmm(self, mat1, mat2, beta, alpha): beta * self + alpha * (mat1 @ mat2)
Value ConvertAddmm(ConversionContext& ctx, const Node& node) {
  Expr product =
      ctx.EmitExpr(relax::op::Matmul(ctx.Tensor(node.input(1)), ctx.Tensor(node.input(2))));
  std::string dtype = ctx.Info(product).dtype;
  Expr bias = ctx.Tensor(node.input(0));
  double beta = ctx.Double(node.input(3));
  double alpha = ctx.Double(node.input(4));
  if (alpha != 1.0) product = ctx.EmitExpr(relax::op::Multiply(product, ctx.Scalar(alpha, dtype)));
  if (beta == 0.0) return Value::Tensor(product);
  if (beta != 1.0) bias = ctx.EmitExpr(relax::op::Multiply(bias, ctx.Scalar(beta, dtype)));
  return ctx.Emit(relax::op::Add(product, bias));
}

// aten::outer / ger(self, vec2): self[:, None] * vec2[None, :]
Value ConvertOuter(ConversionContext& ctx, const Node& node) {
  Expr column = ctx.EmitExpr(relax::op::ExpandDims(ctx.Tensor(node.input(0)), {1}));
  return ctx.Emit(relax::op::Multiply(column, ctx.Tensor(node.input(1))));
}

// aten::einsum(equation, tensors, path)
Value ConvertEinsum(ConversionContext& ctx, const Node& node) {
  return ctx.Emit(relax::op::Einsum(ctx.Tensors(node.input(1)), ctx.String(node.input(0))));
}

Value ConvertMatmul(ConversionContext& ctx, const Node& node) {
  return ctx.Emit(relax::op::Matmul(ctx.Tensor(node.input(0)), ctx.Tensor(node.input(1))));
}

// aten::scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal,
// scale, enable_gqa): softmax(q @ k^T * scale + mask) @ v, written out so that the matmuls
// and the softmax get the CPU schedules every other matmul gets. A query that sees no key
// (every score -inf: a fully padded sequence) gets zeros, as from PyTorch's kernels, not the
// NaN a plain softmax gives. The build hands the whole pattern back to PyTorch's fused kernel
// (attention.py).
Value ConvertScaledDotProductAttention(ConversionContext& ctx, const Node& node) {
  Expr query = ctx.Tensor(node.input(0));
  Expr key = ctx.Tensor(node.input(1));
  Expr value = ctx.Tensor(node.input(2));
  TORCH_CHECK(ctx.Double(node.input(4)) == 0.0,
              "scaled_dot_product_attention: dropout_p must be 0 (tvmbridge compiles inference)");
  if (node.inputs().size() > 7) {
    TORCH_CHECK(!ctx.Bool(node.input(7)) || ctx.Shape(query) == ctx.Shape(key),
                "scaled_dot_product_attention: enable_gqa with fewer key heads is not supported");
  }
  std::string dtype = ctx.Info(query).dtype;
  double scale = ctx.IsNone(node.input(6))
                     ? 1.0 / std::sqrt(static_cast<double>(ctx.Dims(query).back().Static()))
                     : ctx.Double(node.input(6));
  Expr scores = ctx.EmitExpr(relax::op::Matmul(query, TransposeLastTwo(ctx, key)));
  scores = ctx.EmitExpr(relax::op::Multiply(scores, ctx.Scalar(scale, dtype)));
  Expr masked_out = ctx.Scalar(-std::numeric_limits<double>::infinity(), dtype);
  if (ctx.Bool(node.input(5))) {  // is_causal: query i sees keys 0..i
    IntList score_shape = ctx.Shape(scores);
    int64_t queries = score_shape[score_shape.size() - 2], keys = score_shape.back();
    at::Tensor causal = at::ones({queries, keys}, at::kBool).tril();
    scores = ctx.EmitExpr(relax::op::Where(TensorConstant(causal), scores, masked_out));
  }
  if (!ctx.IsNone(node.input(3))) {
    Expr mask = ctx.Tensor(node.input(3));
    scores = ctx.Info(mask).dtype == "bool"
                 ? ctx.EmitExpr(relax::op::Where(mask, scores, masked_out))
                 : ctx.EmitExpr(relax::op::Add(scores, mask));
  }
  auto rank = static_cast<int>(ctx.Rank(scores));
  Expr weights = ctx.EmitExpr(relax::op::Softmax(scores, rank - 1));
  // Every score -inf, counted exactly: TVM's max starts from the lowest finite number, and a
  // row at that number (an additive mask of finfo.min) is one PyTorch's softmax still spreads.
  Expr blocked =
      ctx.EmitExpr(relax::op::AsType(ctx.EmitExpr(relax::op::Equal(scores, masked_out)), dtype));
  Expr all_blocked = ctx.EmitExpr(relax::op::Reduce("min", blocked, {rank - 1}, true));
  Expr sees_no_key = ctx.EmitExpr(relax::op::Equal(all_blocked, ctx.Scalar(1, dtype)));
  weights = ctx.EmitExpr(relax::op::Where(sees_no_key, ctx.Scalar(0, dtype), weights));
  return ctx.Emit(relax::op::Matmul(weights, value));
}

// x @ weight.T + bias
Expr Dense(ConversionContext& ctx, const Expr& x, const torch::jit::Value* weight,
           const torch::jit::Value* bias) {
  Expr out = ctx.EmitExpr(relax::op::Matmul(x, TransposeLastTwo(ctx, ctx.Tensor(weight))));
  return ctx.EmitExpr(relax::op::Add(out, ctx.Tensor(bias)));
}

// The weights of nn.MultiheadAttention's fused inference ops: the packed input projection
// (qkv_weight [3 * embed, embed], qkv_bias [3 * embed]) and the output projection.
struct AttentionWeights {
  int64_t heads;
  const torch::jit::Value* qkv_weight;
  const torch::jit::Value* qkv_bias;
  const torch::jit::Value* proj_weight;
  const torch::jit::Value* proj_bias;
};

struct AttentionResult {
  Expr output;         // [batch, queries, embed]
  Expr probabilities;  // the softmax weights, [batch, heads, queries, keys]
};

// [batch, steps, heads * head_dim] -> [batch, heads, steps, head_dim]
Expr SplitHeads(ConversionContext& ctx, const Expr& x, int64_t heads) {
  IntList shape = ctx.Shape(x);
  Expr split = ctx.EmitExpr(relax::op::Reshape(x, {shape[0], shape[1], heads, shape[2] / heads}));
  return ctx.EmitExpr(relax::op::PermuteDims(split, {0, 2, 1, 3}));
}

// Multi-head attention as PyTorch's fused inference ops compute it: softmax(q k^T /
// sqrt(head_dim)) v per head, then the output projection. Self-attention (query, key and value
// one tensor) projects once with the packed weight; otherwise each takes its third of it.
// Inputs are [batch, steps, embed].
AttentionResult MultiHeadAttention(ConversionContext& ctx, const Expr& query, const Expr& key,
                                   const Expr& value, bool self_attention,
                                   const AttentionWeights& weights) {
  IntList shape = ctx.Shape(query);
  TORCH_CHECK(shape.size() == 3, "fused attention expects [batch, seq, embed] input, got rank ",
              shape.size());
  int64_t batch = shape[0], steps = shape[1], embed = shape[2];
  int64_t heads = weights.heads, head_dim = embed / heads;
  Expr q, k, v;
  if (self_attention) {  // one projection, then its thirds
    Expr qkv = Dense(ctx, query, weights.qkv_weight, weights.qkv_bias);
    Expr parts = ctx.EmitExpr(relax::op::Split(qkv, {embed, 2 * embed}, 2));
    auto part = [&](int i) {
      return SplitHeads(ctx, ctx.EmitExpr(relax::TupleGetItem(parts, i)), heads);
    };
    q = part(0), k = part(1), v = part(2);
  } else {
    Expr packed_weight = ctx.Tensor(weights.qkv_weight);
    Expr packed_bias = ctx.Tensor(weights.qkv_bias);
    auto project = [&](const Expr& input, int64_t third) {
      Expr weight = ctx.EmitExpr(
          relax::op::StridedSlice(packed_weight, {0}, {third * embed}, {(third + 1) * embed}, {1}));
      Expr bias = ctx.EmitExpr(
          relax::op::StridedSlice(packed_bias, {0}, {third * embed}, {(third + 1) * embed}, {1}));
      Expr out = ctx.EmitExpr(relax::op::Matmul(input, TransposeLastTwo(ctx, weight)));
      return SplitHeads(ctx, ctx.EmitExpr(relax::op::Add(out, bias)), heads);
    };
    q = project(query, 0), k = project(key, 1), v = project(value, 2);
  }
  std::string dtype = ctx.Info(query).dtype;
  Expr scores = ctx.EmitExpr(
      relax::op::Multiply(ctx.EmitExpr(relax::op::Matmul(q, TransposeLastTwo(ctx, k))),
                          ctx.Scalar(1.0 / std::sqrt(static_cast<double>(head_dim)), dtype)));
  Expr probabilities = ctx.EmitExpr(relax::op::Softmax(scores, 3));
  Expr mixed = ctx.EmitExpr(relax::op::Matmul(probabilities, v));
  Expr merged = ctx.EmitExpr(relax::op::Reshape(
      ctx.EmitExpr(relax::op::PermuteDims(mixed, {0, 2, 1, 3})), {batch, steps, embed}));
  return {Dense(ctx, merged, weights.proj_weight, weights.proj_bias), probabilities};
}

// aten::_native_multi_head_attention(query, key, value, embed_dim, num_head, qkv_weight,
// qkv_bias, proj_weight, proj_bias, mask?, need_weights, average_attn_weights, mask_type?)
// -> (output, weights): nn.MultiheadAttention's inference fast path (batch_first) without a
// mask. The weights are undefined unless need_weights; averaged over heads by default.
Value ConvertNativeMultiHeadAttention(ConversionContext& ctx, const Node& node) {
  TORCH_CHECK(ctx.IsNone(node.input(9)),
              "fused multi-head attention with a mask is not supported yet");
  bool need_weights = ctx.Bool(node.input(10));
  AttentionWeights weights{ctx.Int(node.input(4)), node.input(5), node.input(6), node.input(7),
                           node.input(8)};
  bool self_attention = node.input(0) == node.input(1) && node.input(1) == node.input(2);
  AttentionResult attention =
      MultiHeadAttention(ctx, ctx.Tensor(node.input(0)), ctx.Tensor(node.input(1)),
                         ctx.Tensor(node.input(2)), self_attention, weights);
  if (!need_weights) {
    // PyTorch returns an undefined tensor, which TorchScript code sees as None.
    TORCH_CHECK(!node.output(1)->hasUses(),
                "fused multi-head attention: the undefined weights (need_weights=False) are "
                "used");
    return Value::List({Value::Tensor(attention.output), Value::Constant(c10::IValue())});
  }
  Expr scores = attention.probabilities;
  if (ctx.Bool(node.input(11))) scores = ctx.EmitExpr(relax::op::Mean(scores, {1}, false));
  return Value::List({Value::Tensor(attention.output), Value::Tensor(scores)});
}

// aten::_transformer_encoder_layer_fwd(src, embed_dim, num_heads, qkv_weight, qkv_bias,
// proj_weight, proj_bias, use_gelu, norm_first, eps, norm_weight_1, norm_bias_1,
// norm_weight_2, norm_bias_2, ffn_weight_1, ffn_bias_1, ffn_weight_2, ffn_bias_2, mask?,
// mask_type?): nn.TransformerEncoderLayer's inference fast path (batch_first), written out.
Value ConvertTransformerEncoderLayer(ConversionContext& ctx, const Node& node) {
  TORCH_CHECK(ctx.IsNone(node.input(18)),
              "the transformer encoder fast path with an attention mask is not supported yet");
  Expr src = ctx.Tensor(node.input(0));  // MultiHeadAttention checks it is [batch, seq, embed]
  int64_t heads = ctx.Int(node.input(2));
  bool norm_first = ctx.Bool(node.input(8));
  double epsilon = ctx.Double(node.input(9));
  auto norm = [&](const Expr& x, int which) {
    return ctx.EmitExpr(relax::op::LayerNorm(x, ctx.Tensor(node.input(10 + 2 * which)),
                                             ctx.Tensor(node.input(11 + 2 * which)), {2}, epsilon));
  };
  AttentionWeights weights{heads, node.input(3), node.input(4), node.input(5), node.input(6)};
  auto attention = [&](const Expr& x) {
    return MultiHeadAttention(ctx, x, x, x, /*self_attention=*/true, weights).output;
  };
  auto feed_forward = [&](const Expr& x) {
    Expr hidden = Dense(ctx, x, node.input(14), node.input(15));
    hidden = ctx.EmitExpr(ctx.Bool(node.input(7)) ? relax::op::Gelu(hidden, false)
                                                  : relax::op::Unary("nn.relu", hidden));
    return Dense(ctx, hidden, node.input(16), node.input(17));
  };
  Expr x = src;
  if (norm_first) {
    x = ctx.EmitExpr(relax::op::Add(x, attention(norm(x, 0))));
    return ctx.Emit(relax::op::Add(x, feed_forward(norm(x, 1))));
  }
  x = norm(ctx.EmitExpr(relax::op::Add(x, attention(x))), 0);
  return Value::Tensor(norm(ctx.EmitExpr(relax::op::Add(x, feed_forward(x))), 1));
}

}  // namespace

void RegisterNNOps(ConverterTable& table) {
  RegisterAll(table, {"aten::conv1d", "aten::conv2d", "aten::conv3d"}, ConvertConv);
  RegisterAll(table, {"aten::conv_transpose1d", "aten::conv_transpose2d", "aten::conv_transpose3d"},
              ConvertConvTranspose);
  table.Register("aten::_convolution", ConvertUnderscoreConvolution);
  table.Register("aten::batch_norm", ConvertBatchNorm);
  table.Register("aten::layer_norm", ConvertLayerNorm);
  table.Register("aten::linear", ConvertLinear);
  table.Register("aten::scaled_dot_product_attention", ConvertScaledDotProductAttention);
  // baddbmm(self, batch1, batch2, beta, alpha) has addmm's arguments.
  RegisterAll(table, {"aten::addmm", "aten::baddbmm"}, ConvertAddmm);
  RegisterAll(table, {"aten::matmul", "aten::mm", "aten::bmm", "aten::dot", "aten::mv"},
              ConvertMatmul);
  RegisterAll(table, {"aten::outer", "aten::ger"}, ConvertOuter);
  table.Register("aten::_transformer_encoder_layer_fwd", ConvertTransformerEncoderLayer,
                 kWholeLayer);
  table.Register("aten::_native_multi_head_attention", ConvertNativeMultiHeadAttention,
                 kWholeLayer);
  table.Register("aten::instance_norm", ConvertInstanceNorm);
  table.Register("aten::group_norm", ConvertGroupNorm);
  table.Register("aten::_weight_norm", ConvertWeightNorm);
  table.Register("aten::einsum", ConvertEinsum);
}

}  // namespace tvmbridge::frontend
