// What is known about an op besides how to convert it. What PyTorch declares (alias
// annotations in the schema, operator tags) is read from PyTorch, so it cannot drift from the
// ops; what it does not declare (how quantized kernels quantize their results) is declared
// where the converter is registered (ConverterTable::Register).
#pragma once

#include <torch/csrc/jit/ir/ir.h>

namespace tvmbridge::frontend {

// The grid an op's result is on when its input is a quantized tensor (eager-mode quantized
// models), as PyTorch's quantized kernel for the op gives it.
enum class QuantizedResult {
  kNotSupported,  // PyTorch has no quantized kernel: converting the op there is an error
  kInputGrid,     // the input's: values unchanged (max, relu, views) or rounded onto it
                  // (averages, interpolation)
  kUnitGrid,      // [0, 1) in 256 steps, for a quint8 input (sigmoid, hardsigmoid)
};

struct OpTraits {
  QuantizedResult quantized_result = QuantizedResult::kNotSupported;
  // A whole layer in one op (an LSTM, a transformer encoder layer): dozens of kernels' work, so
  // it makes a region on its own whatever min_block_size asks, which counts ops to keep
  // regions whose kernels are too small to pay for the crossing into TVM in PyTorch.
  bool whole_layer = false;
};
inline constexpr OpTraits kOnInputGrid{QuantizedResult::kInputGrid};
inline constexpr OpTraits kOnUnitGrid{QuantizedResult::kUnitGrid};
inline constexpr OpTraits kWholeLayer{QuantizedResult::kNotSupported, /*whole_layer=*/true};

// An aten op that writes into its first argument and returns it (`add_`), by PyTorch's naming
// of in-place variants.
bool IsInPlace(const torch::jit::Node& node);
// The tensor an out= overload writes its result into (`max(x, y, out=o)`: o); null for
// other nodes.
const torch::jit::Value* OutArgument(const torch::jit::Node& node);

// The input whose memory `value` may share, as its producer's schema says: views and ops that
// may return their input (`Tensor(a) self -> Tensor(a)`: view, diagonal, movedim, reshape,
// `to`) and in-place ops; for a tensor taken out of a list of views (split, unbind, chunk), that
// list (whose own aliased input is the tensor they view). nullptr where the schema promises a
// new tensor or there is no schema. Following it step by step reaches the tensor that owns the
// memory.
torch::jit::Value* AliasedInput(const torch::jit::Value* value);

// Whether the extents of the op's results may depend on tensor values (nonzero, unique, nms),
// by PyTorch's `dynamic_output_shape` tag and the few such ops it leaves untagged. Some tagged
// ops are value-decided only in some uses (index by a boolean mask, one_hot without
// num_classes): callers that know better refine this.
bool MayHaveDynamicOutputShape(const torch::jit::Node& node);

}  // namespace tvmbridge::frontend
