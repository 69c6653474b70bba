// Shapes and dtypes of every tensor in a graph, learned by running it on example inputs.
//
// The converter knows the shape of everything it converts; what PyTorch computes between
// TVM regions (unsupported ops, loop-carried values) it learns here: the graph runs on example
// inputs of the compiled shapes, twice, with a probe after every tensor definition. A value
// whose shape differs between runs or loop iterations, that a data-dependent op produced, or
// whose shape was computed from tensor values (`int(x.max())`), is marked dynamic and stays in
// PyTorch. The examples are the caller's tensors where given (the graph then never runs on
// values the caller did not choose: a box's batch index, a token id), else random ones.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <ATen/core/ivalue.h>
#include <torch/csrc/jit/ir/ir.h>

#include "tvmbridge/artifact.h"

namespace tvmbridge::partition {

struct ObservedTensor {
  // The shape of the last run: at the inputs' opt extents where they are ranged.
  std::vector<int64_t> shape;
  c10::ScalarType dtype = c10::ScalarType::Float;
  // The shape follows from the input shapes alone: fixed, or with extents that are the inputs'
  // symbols (`dim_symbols`).
  bool static_shape = true;
  // Empty, or one per dim: "" where fixed, else the input symbol the extent is.
  std::vector<std::string> dim_symbols;
  std::vector<ExtentRange> dim_ranges;  // with dim_symbols: the extents each dim takes
  bool seen_defined = false;            // some run saw a tensor here
  bool seen_undefined = false;          // some run saw an undefined tensor (an absent optional)
  // The value of the last run, when kept (see ObserveTensors): what timing feeds a region.
  at::Tensor sample;
};

using Observations = std::unordered_map<const torch::jit::Value*, ObservedTensor>;

// What the example runs feed each input of forward. A tensor input (its spec has a dtype): the
// caller's tensor, or None for random values of the spec's shape and dtype (floats from a
// normal distribution; integers in [0, rows) where the graph indexes a constant table of
// that many rows with them, an embedding's, else [0, 10)). Any other input (see
// IsValueInput): the caller's value itself, of forward's declared type.
using ExampleInputs = std::vector<c10::IValue>;

// An input given by its value (an int, an optional, a list of tensors...) rather than by a
// tensor spec: its spec carries only a name, and no dtype.
inline bool IsValueInput(const TensorSpec& spec) {
  return spec.dtype == c10::ScalarType::Undefined;
}

// The spec of a tensor the runs observed: its extents that are input symbols dynamic.
TensorSpec ObservedSpec(const std::string& name, const ObservedTensor& observed);

// `graph`'s first input is the module (`self`); `inputs` describe the others, `examples`
// (empty, or one per input) gives their values. Inputs with ranged extents (dim_ranges) run at
// their min, max and opt extents; an extent that varies with them as one input symbol does
// is that symbol, any other variation makes the tensor dynamic. With `keep_samples`, each tensor's
// value in the last run is kept (integer tensors always; floating ones while they total under
// kMaxSampleBytes).
Observations ObserveTensors(torch::jit::Graph& graph, const c10::IValue& self,
                            const std::vector<TensorSpec>& inputs,
                            const ExampleInputs& examples = {}, bool keep_samples = false);
inline constexpr int64_t kMaxSampleBytes = int64_t{256} << 20;

// Replaces aten::size and aten::dim of tensors with static shapes (and prim::dtype and
// prim::device of observed tensors) by constants, then lets TorchScript's constant
// propagation fold the arithmetic and the branches that only checked shapes
// (`if x.dim() != 4: raise ...`), and unrolls the `for` loops whose trip count is now known.
void SpecializeToShapes(const std::shared_ptr<torch::jit::Graph>& graph,
                        const Observations& observations);

}  // namespace tvmbridge::partition
