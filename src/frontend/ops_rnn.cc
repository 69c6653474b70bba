// Recurrent layers: aten::lstm, aten::gru, aten::rnn_tanh and aten::rnn_relu (stacked,
// bidirectional, batch_first, unbatched inputs, LSTM projections), unrolled over the static
// sequence length. Each layer multiplies all its inputs by the input weights at once; each
// step then adds the hidden state's product and applies the gates, as PyTorch's cells do.
#include <c10/util/Exception.h>

#include "frontend/emit_math.h"

namespace tvmbridge::frontend {
namespace {

using relax::Expr;
using relax::IntList;
using torch::jit::Node;

enum class Cell { kLstm, kGru, kTanh, kRelu };

int GateCount(Cell cell) {
  switch (cell) {
    case Cell::kLstm:
      return 4;
    case Cell::kGru:
      return 3;
    default:
      return 1;
  }
}

// One direction of one layer: its weights as Relax expressions (weights transposed).
struct DirectionWeights {
  Expr input_t;       // [input, gates * hidden]
  Expr hidden_t;      // [hidden or projection, gates * hidden]
  Expr input_bias;    // [gates * hidden] or undefined
  Expr hidden_bias;   // [gates * hidden] or undefined
  Expr projection_t;  // LSTM with proj_size: [hidden, projection], else undefined
};

// The state a step reads and writes.
struct State {
  Expr hidden;  // [batch, hidden or projection]
  Expr cell;    // LSTM only: [batch, hidden]
};

class Unroller {
 public:
  Unroller(ConversionContext& ctx, Cell cell, int64_t hidden_size)
      : ctx_(ctx), cell_(cell), hidden_size_(hidden_size) {}

  Expr Transposed(const Expr& weight) {
    return ctx_.EmitExpr(relax::op::PermuteDims(weight, {1, 0}));
  }

  // The outputs of one direction over `inputs` ([steps, batch, features]): the hidden state
  // at every step, in time order, and the final state.
  std::pair<Expr, State> Run(const Expr& inputs, const DirectionWeights& w, State state,
                             bool reverse) {
    EmitMath m = EmitMath::Like(ctx_, inputs);
    Expr projected = ctx_.EmitExpr(relax::op::Matmul(inputs, w.input_t));
    if (w.input_bias.defined()) projected = m.Add(projected, w.input_bias);
    int64_t steps = ctx_.Shape(inputs)[0];
    std::vector<Expr> outputs(steps);
    for (int64_t k = 0; k < steps; ++k) {
      int64_t t = reverse ? steps - 1 - k : k;
      Expr x_gates = ctx_.EmitExpr(relax::op::Squeeze(
          ctx_.EmitExpr(relax::op::StridedSlice(projected, {0}, {t}, {t + 1}, {1})), {0}));
      Expr h_gates = ctx_.EmitExpr(relax::op::Matmul(state.hidden, w.hidden_t));
      if (w.hidden_bias.defined()) h_gates = m.Add(h_gates, w.hidden_bias);
      state = Step(m, x_gates, h_gates, state, w);
      outputs[t] = ctx_.EmitExpr(relax::op::ExpandDims(state.hidden, {0}));
    }
    return {ctx_.EmitExpr(relax::op::Concat(outputs, 0)), state};
  }

 private:
  std::vector<Expr> Gates(const Expr& gates) {
    IntList at;
    for (int i = 1; i < GateCount(cell_); ++i) at.push_back(i * hidden_size_);
    Expr split = ctx_.EmitExpr(relax::op::Split(gates, at, 1));
    std::vector<Expr> parts;
    for (int i = 0; i < GateCount(cell_); ++i)
      parts.push_back(ctx_.EmitExpr(relax::TupleGetItem(split, i)));
    return parts;
  }

  State Step(EmitMath& m, const Expr& x_gates, const Expr& h_gates, const State& state,
             const DirectionWeights& w) {
    auto sigmoid = [&](const Expr& x) { return m.Unary("sigmoid", x); };
    auto tanh = [&](const Expr& x) { return m.Unary("tanh", x); };
    switch (cell_) {
      case Cell::kLstm: {
        std::vector<Expr> g = Gates(m.Add(x_gates, h_gates));  // input, forget, cell, output
        Expr cell = m.Add(m.Mul(sigmoid(g[1]), state.cell), m.Mul(sigmoid(g[0]), tanh(g[2])));
        Expr hidden = m.Mul(sigmoid(g[3]), tanh(cell));
        if (w.projection_t.defined())
          hidden = ctx_.EmitExpr(relax::op::Matmul(hidden, w.projection_t));
        return {hidden, cell};
      }
      case Cell::kGru: {
        std::vector<Expr> xi = Gates(x_gates);  // reset, update, new
        std::vector<Expr> hh = Gates(h_gates);
        Expr reset = sigmoid(m.Add(xi[0], hh[0]));
        Expr update = sigmoid(m.Add(xi[1], hh[1]));
        Expr candidate = tanh(m.Add(xi[2], m.Mul(reset, hh[2])));
        // (1 - z) * n + z * h = n + z * (h - n)
        return {m.Add(candidate, m.Mul(update, m.Sub(state.hidden, candidate))), Expr()};
      }
      case Cell::kTanh:
        return {tanh(m.Add(x_gates, h_gates)), Expr()};
      case Cell::kRelu:
        return {m.Unary("nn.relu", m.Add(x_gates, h_gates)), Expr()};
    }
    TORCH_CHECK(false, "unknown recurrent cell");
  }

  ConversionContext& ctx_;
  Cell cell_;
  int64_t hidden_size_;
};

// Row `index` of a [layers * directions, batch, size] initial state, as [batch, size].
Expr InitialState(ConversionContext& ctx, const Expr& states, int64_t index) {
  Expr row = ctx.EmitExpr(relax::op::StridedSlice(states, {0}, {index}, {index + 1}, {1}));
  return ctx.EmitExpr(relax::op::Squeeze(row, {0}));
}

// aten::lstm(input, hx[2], params, has_biases, num_layers, dropout, train, bidirectional,
// batch_first) -> (output, h_n, c_n); aten::gru / rnn_tanh / rnn_relu take one hx tensor and
// return (output, h_n).
template <Cell kCell>
Value ConvertRecurrent(ConversionContext& ctx, const Node& node) {
  TORCH_CHECK(node.input(0)->type()->kind() == c10::TypeKind::TensorType,
              "packed sequences are not supported; pass a padded tensor");
  Expr input = ctx.Tensor(node.input(0));
  std::vector<Expr> params = ctx.Tensors(node.input(2));
  bool has_biases = ctx.Bool(node.input(3));
  int64_t layers = ctx.Int(node.input(4));
  TORCH_CHECK(!ctx.Bool(node.input(6)), "recurrent layer in training mode; call model.eval()");
  int64_t directions = ctx.Bool(node.input(7)) ? 2 : 1;
  bool batch_first = ctx.Bool(node.input(8));

  std::vector<Expr> initial;
  if (kCell == Cell::kLstm) {
    initial = ctx.Tensors(node.input(1));
    TORCH_CHECK(initial.size() == 2, "lstm expects (h0, c0)");
  } else {
    initial = {ctx.Tensor(node.input(1))};
  }
  bool unbatched = static_cast<size_t>(ctx.Rank(input)) == 2;
  if (unbatched) {
    input = ctx.EmitExpr(relax::op::ExpandDims(input, {1}));
    for (Expr& state : initial) state = ctx.EmitExpr(relax::op::ExpandDims(state, {1}));
  } else if (batch_first) {
    input = ctx.EmitExpr(relax::op::PermuteDims(input, {1, 0, 2}));
  }

  size_t per_direction = params.size() / static_cast<size_t>(layers * directions);
  size_t expected = has_biases ? 4 : 2;
  bool projected = kCell == Cell::kLstm && per_direction == expected + 1;
  TORCH_CHECK(per_direction == expected || projected, "unexpected number of weights (",
              params.size(), ") for ", layers, " layer(s) and ", directions, " direction(s)");
  int64_t hidden_size = ctx.Shape(params[1])[0] / GateCount(kCell);

  Unroller unroller(ctx, kCell, hidden_size);
  std::vector<Expr> final_hidden, final_cell;
  Expr layer_input = input;
  for (int64_t layer = 0; layer < layers; ++layer) {
    std::vector<Expr> direction_outputs;
    for (int64_t direction = 0; direction < directions; ++direction) {
      int64_t index = layer * directions + direction;
      const Expr* p = &params[static_cast<size_t>(index) * per_direction];
      DirectionWeights weights{unroller.Transposed(p[0]), unroller.Transposed(p[1]), Expr(), Expr(),
                               Expr()};
      if (has_biases) {
        weights.input_bias = p[2];
        weights.hidden_bias = p[3];
      }
      if (projected) weights.projection_t = unroller.Transposed(p[per_direction - 1]);
      State state{InitialState(ctx, initial[0], index),
                  kCell == Cell::kLstm ? InitialState(ctx, initial[1], index) : Expr()};
      auto [outputs, last] = unroller.Run(layer_input, weights, state, direction == 1);
      direction_outputs.push_back(outputs);
      final_hidden.push_back(ctx.EmitExpr(relax::op::ExpandDims(last.hidden, {0})));
      if (kCell == Cell::kLstm)
        final_cell.push_back(ctx.EmitExpr(relax::op::ExpandDims(last.cell, {0})));
    }
    layer_input = directions == 1 ? direction_outputs[0]
                                  : ctx.EmitExpr(relax::op::Concat(direction_outputs, 2));
  }

  auto restore = [&](Expr x, bool is_output) {
    if (unbatched) return ctx.EmitExpr(relax::op::Squeeze(x, {1}));
    if (is_output && batch_first) return ctx.EmitExpr(relax::op::PermuteDims(x, {1, 0, 2}));
    return x;
  };
  std::vector<Value> results{
      Value::Tensor(restore(layer_input, true)),
      Value::Tensor(restore(ctx.EmitExpr(relax::op::Concat(final_hidden, 0)), false))};
  if (kCell == Cell::kLstm) {
    results.push_back(
        Value::Tensor(restore(ctx.EmitExpr(relax::op::Concat(final_cell, 0)), false)));
  }
  return Value::List(std::move(results));
}

}  // namespace

void RegisterRecurrentOps(ConverterTable& table) {
  table.Register("aten::lstm", ConvertRecurrent<Cell::kLstm>, kWholeLayer);
  table.Register("aten::gru", ConvertRecurrent<Cell::kGru>, kWholeLayer);
  table.Register("aten::rnn_tanh", ConvertRecurrent<Cell::kTanh>, kWholeLayer);
  table.Register("aten::rnn_relu", ConvertRecurrent<Cell::kRelu>, kWholeLayer);
}

}  // namespace tvmbridge::frontend
