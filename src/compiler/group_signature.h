// What one compiled version of a compilation group (enable()) is specialised to, and how a
// group widens it when calls keep changing shape (enable(dynamic=True)).
//
// A version expects each argument either as a tensor passed to TVM (dtype and shape; some
// extents may be symbols with ranges) or as a value compiled in (a weight, compared by identity
// and version; a scalar, compared by value). A call runs the first version it matches.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/ivalue.h>

#include "tvmbridge/artifact.h"

namespace tvmbridge {

struct ExpectedArgument {
  enum class Kind { kTensor, kCompiledIn };
  Kind kind = Kind::kTensor;
  // kTensor: dtype and shape; with symbols, kDynamicExtent where the extent is one (then
  // dim_symbols and dim_ranges have one entry per dim, as TensorSpec documents).
  TensorSpec tensor;
  c10::IValue value;    // kCompiledIn: the weight or the scalar
  int64_t version = 0;  // kCompiledIn weights: the tensor's version counter when compiled in
};

class GroupSignature {
 public:
  // The exact signature of `arguments` (`attribute_inputs[i]`: argument i is a module
  // attribute, compiled in as a constant). Returns why the arguments cannot be compiled, or
  // an empty string.
  static std::string Of(const std::vector<c10::IValue>& arguments,
                        const std::vector<int64_t>& attribute_inputs, GroupSignature& signature);

  bool Matches(const std::vector<c10::IValue>& arguments) const;

  // The signature covering both this one and `arguments`, which differ from it in tensor
  // extents only; nullopt when they differ in more (a dtype, a rank, a value compiled in).
  // Each extent that differs becomes a symbol (extents that took the same values share one,
  // as ids and their mask share a length). Its range runs from min(2, smallest extent seen),
  // as PyTorch specialises 0 and 1, up to `end`.
  enum class RangeEnd {
    // The next power of two at or above the largest extent seen: a group meeting ever longer
    // inputs compiles a logarithmic number of times.
    kPowerOfTwo,
    // The largest extent seen, for models that refuse anything longer (a position table).
    kLargestSeen,
  };
  std::optional<GroupSignature> WidenedTo(const std::vector<c10::IValue>& arguments,
                                          RangeEnd end) const;

  bool symbolic() const;
  // Same tensor shapes, symbols and ranges (values compiled in are not compared).
  bool operator==(const GroupSignature& other) const;
  const std::vector<ExpectedArgument>& arguments() const { return arguments_; }

 private:
  // Records, for each symbolic dim after its symbol's first, where that first one is, so that
  // Matches checks shared symbols without building a symbol table per call.
  void IndexSharedExtents();

  struct SharedExtent {
    size_t argument, dim;              // a dim whose symbol appeared before
    size_t first_argument, first_dim;  // where it first appeared
  };
  std::vector<ExpectedArgument> arguments_;
  std::vector<SharedExtent> shared_extents_;
};

}  // namespace tvmbridge
