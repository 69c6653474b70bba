#include "compiler/group_signature.h"

#include <algorithm>
#include <map>
#include <tuple>

namespace tvmbridge {
namespace {

// Scalars and lists of them can be compiled in; anything holding tensors cannot.
bool IsCompilableScalar(const c10::IValue& value) {
  return value.isInt() || value.isDouble() || value.isBool() || value.isNone() ||
         value.isString() || value.isDevice() || value.isIntList() || value.isDoubleList() ||
         value.isBoolList();
}

int64_t VersionOf(const at::Tensor& tensor) {
  return tensor.is_inference() ? 0 : static_cast<int64_t>(tensor._version());
}

bool SymbolicAt(const TensorSpec& spec, size_t dim) {
  return !spec.dim_symbols.empty() && !spec.dim_symbols[dim].empty();
}

// The range of dim `dim`: a symbol's, or a fixed extent's {n, n, n}.
ExtentRange RangeAt(const TensorSpec& spec, size_t dim) {
  if (SymbolicAt(spec, dim)) return spec.dim_ranges[dim];
  return {spec.shape[dim], spec.shape[dim], spec.shape[dim]};
}

int64_t PowerOfTwoAtLeast(int64_t extent) {
  int64_t power = 1;
  while (power < extent) power *= 2;
  return power;
}

bool CompiledInMatches(const ExpectedArgument& expected, const c10::IValue& argument) {
  if (expected.value.isTensor()) {
    return argument.isTensor() && argument.toTensor().is_same(expected.value.toTensor()) &&
           VersionOf(expected.value.toTensor()) == expected.version;
  }
  return IsCompilableScalar(argument) && argument == expected.value;
}

// Dtype, rank, fixed extents and ranges; symbols shared between dims are checked by the caller.
bool TensorMatches(const TensorSpec& spec, const at::Tensor& tensor) {
  if (tensor.scalar_type() != spec.dtype || !tensor.is_cpu() ||
      tensor.dim() != static_cast<int64_t>(spec.shape.size())) {
    return false;
  }
  for (size_t d = 0; d < spec.shape.size(); ++d) {
    const int64_t extent = tensor.size(static_cast<int64_t>(d));
    if (!SymbolicAt(spec, d)) {
      if (extent != spec.shape[d]) return false;
      continue;
    }
    const ExtentRange& range = spec.dim_ranges[d];
    if (extent < range.min || extent > range.max) return false;
  }
  return true;
}

}  // namespace

std::string GroupSignature::Of(const std::vector<c10::IValue>& arguments,
                               const std::vector<int64_t>& attribute_inputs,
                               GroupSignature& signature) {
  signature.arguments_.clear();
  for (size_t i = 0; i < arguments.size(); ++i) {
    const c10::IValue& argument = arguments[i];
    ExpectedArgument expected;
    if (argument.isTensor() && !attribute_inputs.at(i)) {
      const at::Tensor& tensor = argument.toTensor();
      if (!tensor.is_cpu()) return "an input is on " + tensor.device().str() + ", not the CPU";
      expected.tensor.shape = tensor.sizes().vec();
      expected.tensor.dtype = tensor.scalar_type();
    } else if (argument.isTensor() || IsCompilableScalar(argument)) {
      expected.kind = ExpectedArgument::Kind::kCompiledIn;
      expected.value = argument;
      if (argument.isTensor()) expected.version = VersionOf(argument.toTensor());
    } else {
      return "an input is a " + argument.type()->repr_str() +
             " computed by PyTorch, which cannot be compiled in";
    }
    signature.arguments_.push_back(std::move(expected));
  }
  signature.IndexSharedExtents();  // none in an exact signature: clears a reused one's
  return "";
}

bool GroupSignature::Matches(const std::vector<c10::IValue>& arguments) const {
  for (size_t i = 0; i < arguments_.size(); ++i) {
    const ExpectedArgument& expected = arguments_[i];
    const c10::IValue& argument = arguments[i];
    const bool matches =
        expected.kind == ExpectedArgument::Kind::kTensor
            ? argument.isTensor() && TensorMatches(expected.tensor, argument.toTensor())
            : CompiledInMatches(expected, argument);
    if (!matches) return false;
  }
  // Every argument named in shared_extents_ is a tensor: TensorMatches said so above.
  auto extent = [&](size_t argument, size_t dim) {
    return arguments[argument].toTensor().size(static_cast<int64_t>(dim));
  };
  return std::all_of(shared_extents_.begin(), shared_extents_.end(), [&](const SharedExtent& s) {
    return extent(s.argument, s.dim) == extent(s.first_argument, s.first_dim);
  });
}

void GroupSignature::IndexSharedExtents() {
  shared_extents_.clear();
  std::map<std::string, std::pair<size_t, size_t>> first_use;
  for (size_t i = 0; i < arguments_.size(); ++i) {
    const TensorSpec& spec = arguments_[i].tensor;
    for (size_t d = 0; d < spec.dim_symbols.size(); ++d) {
      if (spec.dim_symbols[d].empty()) continue;
      auto [first, inserted] = first_use.emplace(spec.dim_symbols[d], std::make_pair(i, d));
      if (!inserted) shared_extents_.push_back({i, d, first->second.first, first->second.second});
    }
  }
}

std::optional<GroupSignature> GroupSignature::WidenedTo(const std::vector<c10::IValue>& arguments,
                                                        RangeEnd end) const {
  if (arguments.size() != arguments_.size()) return std::nullopt;
  // Dims are grouped by what they were (a symbol, or a fixed extent) and the extent the call
  // gives them: one group, one symbol.
  using DimKey = std::tuple<std::string, int64_t, int64_t>;  // old symbol, old extent, new
  std::map<DimKey, std::string> symbol_of;
  std::map<std::string, ExtentRange> range_of;
  GroupSignature widened = *this;
  for (size_t i = 0; i < arguments.size(); ++i) {
    ExpectedArgument& expected = widened.arguments_[i];
    if (expected.kind == ExpectedArgument::Kind::kCompiledIn) {
      if (!CompiledInMatches(expected, arguments[i])) return std::nullopt;
      continue;
    }
    if (!arguments[i].isTensor()) return std::nullopt;
    const at::Tensor& tensor = arguments[i].toTensor();
    TensorSpec& spec = expected.tensor;
    const auto rank = static_cast<int64_t>(spec.shape.size());
    if (tensor.scalar_type() != spec.dtype || tensor.dim() != rank || !tensor.is_cpu()) {
      return std::nullopt;
    }
    std::vector<std::string> symbols(spec.shape.size());
    std::vector<ExtentRange> ranges(spec.shape.size());
    for (size_t d = 0; d < spec.shape.size(); ++d) {
      const int64_t extent = tensor.size(static_cast<int64_t>(d));
      const ExtentRange old_range = RangeAt(spec, d);
      ranges[d] = old_range;
      if (!SymbolicAt(spec, d) && extent == spec.shape[d]) continue;
      if (extent == 0) return std::nullopt;  // empty tensors keep exact versions
      DimKey key{SymbolicAt(spec, d) ? spec.dim_symbols[d] : "", spec.shape[d], extent};
      auto found = symbol_of.find(key);
      if (found == symbol_of.end()) {
        found = symbol_of.emplace(key, "s" + std::to_string(symbol_of.size())).first;
      }
      ExtentRange& range = range_of[found->second];
      const int64_t least = std::min(old_range.min, extent);
      const int64_t most = std::max(old_range.max, extent);
      range = {std::min<int64_t>(2, least), old_range.opt,
               end == RangeEnd::kPowerOfTwo ? PowerOfTwoAtLeast(most) : most};
      symbols[d] = found->second;
    }
    spec.dim_symbols = std::move(symbols);
    spec.dim_ranges = std::move(ranges);
  }
  // Ranges are per symbol, so they are written once every dim is grouped.
  bool any_symbol = false;
  for (ExpectedArgument& expected : widened.arguments_) {
    TensorSpec& spec = expected.tensor;
    if (expected.kind == ExpectedArgument::Kind::kCompiledIn) continue;
    bool symbolic = false;
    for (size_t d = 0; d < spec.shape.size(); ++d) {
      if (spec.dim_symbols[d].empty()) continue;
      symbolic = true;
      spec.shape[d] = kDynamicExtent;
      spec.dim_ranges[d] = range_of.at(spec.dim_symbols[d]);
    }
    if (!symbolic) {
      spec.dim_symbols.clear();
      spec.dim_ranges.clear();
    }
    any_symbol = any_symbol || symbolic;
  }
  if (!any_symbol) return std::nullopt;
  widened.IndexSharedExtents();
  return widened;
}

bool GroupSignature::symbolic() const {
  return std::any_of(arguments_.begin(), arguments_.end(), [](const ExpectedArgument& expected) {
    return !expected.tensor.dim_symbols.empty();
  });
}

bool GroupSignature::operator==(const GroupSignature& other) const {
  auto same_range = [](const ExtentRange& a, const ExtentRange& b) {
    return a.min == b.min && a.opt == b.opt && a.max == b.max;
  };
  return std::equal(
      arguments_.begin(), arguments_.end(), other.arguments_.begin(), other.arguments_.end(),
      [&](const ExpectedArgument& a, const ExpectedArgument& b) {
        return a.kind == b.kind && a.tensor.dtype == b.tensor.dtype &&
               a.tensor.shape == b.tensor.shape && a.tensor.dim_symbols == b.tensor.dim_symbols &&
               std::equal(a.tensor.dim_ranges.begin(), a.tensor.dim_ranges.end(),
                          b.tensor.dim_ranges.begin(), b.tensor.dim_ranges.end(), same_range);
      });
}

}  // namespace tvmbridge
