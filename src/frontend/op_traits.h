// What is known about an op besides how to convert it. What PyTorch declares (alias
// annotations in the schema, operator tags) is read from PyTorch, so it cannot drift from the
// ops; what it does not declare (how quantized kernels quantize their results) is declared
// where the converter is registered (ConverterTable::Register).
#pragma once

#include <functional>
#include <optional>

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
// Ops that may hand back the tensor object they were given (`contiguous` of a contiguous
// tensor, `to` its own dtype, dropout in eval mode), besides in-place ops, which always do.
bool MayReturnItsInput(const torch::jit::Node& node);

// Maps the output of a prim::If whose condition is known to what its taken block returns, and
// any other value to itself (the converter knows conditions that the graph leaves open).
using BranchResolver = std::function<const torch::jit::Value*(const torch::jit::Value*)>;

// What `a is b` of two tensors is known to be from the graph: true for the same value (`query
// is key` of self-attention); false for tensors that different ops created, or two different
// graph inputs (nn.MultiheadAttention's `query is key` only picks a faster, equivalent path),
// looking through ops that may return their input and through the branches `resolve` knows.
// nullopt where the graph does not show it: one may be the other handed back
// (`x.contiguous() is x`), a branch's result, an element taken out of a list.
std::optional<bool> KnownTensorIdentity(const torch::jit::Value* a, const torch::jit::Value* b,
                                        const BranchResolver& resolve = nullptr);

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
