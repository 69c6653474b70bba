// enable()'s group signatures: what a compiled version matches, and how it widens to ranges.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "compiler/group_signature.h"

namespace tvmbridge {
namespace {

using RangeEnd = GroupSignature::RangeEnd;

// Token ids and their mask, as a BERT group takes them, and a weight compiled in.
std::vector<c10::IValue> Call(int64_t batch, int64_t length, const at::Tensor& weight) {
  return {at::zeros({batch, length}, at::kLong), at::ones({batch, length}, at::kLong), weight};
}

const std::vector<int64_t> kWeightIsAttribute = {0, 0, 1};

GroupSignature Exact(const std::vector<c10::IValue>& call) {
  GroupSignature signature;
  EXPECT_EQ(GroupSignature::Of(call, kWeightIsAttribute, signature), "");
  return signature;
}

TEST(GroupSignature, ExactMatchesItsShapesAndWeightOnly) {
  at::Tensor weight = at::randn({4});
  GroupSignature signature = Exact(Call(1, 8, weight));
  EXPECT_FALSE(signature.symbolic());
  EXPECT_TRUE(signature.Matches(Call(1, 8, weight)));
  EXPECT_FALSE(signature.Matches(Call(1, 9, weight)));
  EXPECT_FALSE(signature.Matches(Call(1, 8, weight.clone())));  // another weight
  weight.add_(1);                                               // the same one, written
  EXPECT_FALSE(signature.Matches(Call(1, 8, weight)));
}

TEST(GroupSignature, ChangedExtentsBecomeOneSharedSymbol) {
  at::Tensor weight = at::randn({4});
  std::optional<GroupSignature> widened =
      Exact(Call(1, 8, weight)).WidenedTo(Call(1, 5, weight), RangeEnd::kPowerOfTwo);
  ASSERT_TRUE(widened);
  ASSERT_TRUE(widened->symbolic());
  const TensorSpec& ids = widened->arguments()[0].tensor;
  const TensorSpec& mask = widened->arguments()[1].tensor;
  EXPECT_EQ(ids.shape, (std::vector<int64_t>{1, kDynamicExtent}));
  EXPECT_EQ(ids.dim_symbols, (std::vector<std::string>{"", "s0"}));
  EXPECT_EQ(mask.dim_symbols, ids.dim_symbols);  // one length for ids and mask
  EXPECT_EQ(ids.dim_ranges[1].min, 2);           // 0 and 1 stay exact until seen
  EXPECT_EQ(ids.dim_ranges[1].opt, 8);           // the first shape is the typical one
  EXPECT_EQ(ids.dim_ranges[1].max, 8);
  for (int64_t length : {2, 3, 8}) EXPECT_TRUE(widened->Matches(Call(1, length, weight)));
  EXPECT_FALSE(widened->Matches(Call(1, 1, weight)));
  EXPECT_FALSE(widened->Matches(Call(1, 9, weight)));
  EXPECT_FALSE(widened->Matches(Call(2, 8, weight)));  // the batch stays fixed
  // Ids and mask of different lengths break the relation the symbol stands for.
  std::vector<c10::IValue> unequal = Call(1, 4, weight);
  unequal[1] = at::ones({1, 3}, at::kLong);
  EXPECT_FALSE(widened->Matches(unequal));
}

TEST(GroupSignature, RangesGrowToAPowerOfTwoOrTheLargestExtentSeen) {
  at::Tensor weight = at::randn({4});
  GroupSignature first =
      *Exact(Call(1, 8, weight)).WidenedTo(Call(1, 5, weight), RangeEnd::kPowerOfTwo);
  std::optional<GroupSignature> longer =
      first.WidenedTo(Call(1, 40, weight), RangeEnd::kPowerOfTwo);
  ASSERT_TRUE(longer);
  const ExtentRange& range = longer->arguments()[0].tensor.dim_ranges[1];
  EXPECT_EQ(range.min, 2);
  EXPECT_EQ(range.opt, 8);
  EXPECT_EQ(range.max, 64);
  EXPECT_FALSE(*longer == *first.WidenedTo(Call(1, 40, weight), RangeEnd::kLargestSeen));
  EXPECT_TRUE(*longer == *first.WidenedTo(Call(1, 40, weight), RangeEnd::kPowerOfTwo));
  EXPECT_EQ(first.WidenedTo(Call(1, 40, weight), RangeEnd::kLargestSeen)
                ->arguments()[0]
                .tensor.dim_ranges[1]
                .max,
            40);
  // A batch that changes too gets its own symbol; a length of 1 lowers the minimum.
  std::optional<GroupSignature> both = longer->WidenedTo(Call(3, 1, weight), RangeEnd::kPowerOfTwo);
  ASSERT_TRUE(both);
  const TensorSpec& ids = both->arguments()[0].tensor;
  EXPECT_EQ(ids.shape, (std::vector<int64_t>{kDynamicExtent, kDynamicExtent}));
  EXPECT_NE(ids.dim_symbols[0], ids.dim_symbols[1]);
  EXPECT_EQ(ids.dim_ranges[0].min, 1);
  EXPECT_EQ(ids.dim_ranges[0].max, 4);
  EXPECT_EQ(ids.dim_ranges[1].min, 1);
  EXPECT_EQ(ids.dim_ranges[1].max, 64);
  EXPECT_TRUE(both->Matches(Call(4, 64, weight)));
  EXPECT_TRUE(both->Matches(Call(1, 1, weight)));
}

TEST(GroupSignature, OnlyExtentsWiden) {
  at::Tensor weight = at::randn({4});
  GroupSignature signature = Exact(Call(1, 8, weight));
  std::vector<c10::IValue> other_dtype = Call(1, 5, weight);
  other_dtype[0] = at::zeros({1, 5}, at::kInt);
  EXPECT_FALSE(signature.WidenedTo(other_dtype, RangeEnd::kPowerOfTwo));
  std::vector<c10::IValue> other_rank = Call(1, 5, weight);
  other_rank[0] = at::zeros({5}, at::kLong);
  EXPECT_FALSE(signature.WidenedTo(other_rank, RangeEnd::kPowerOfTwo));
  EXPECT_FALSE(signature.WidenedTo(Call(1, 5, weight.clone()), RangeEnd::kPowerOfTwo));
  EXPECT_FALSE(signature.WidenedTo(Call(1, 8, weight), RangeEnd::kPowerOfTwo));  // no change
  EXPECT_FALSE(signature.WidenedTo(Call(1, 0, weight), RangeEnd::kPowerOfTwo));  // empty
}

TEST(GroupSignature, ScalarsAreCompiledInAndCompared) {
  GroupSignature signature;
  std::vector<c10::IValue> call = {at::zeros({2}), c10::IValue(int64_t{3})};
  ASSERT_EQ(GroupSignature::Of(call, {0, 0}, signature), "");
  EXPECT_TRUE(signature.Matches(call));
  EXPECT_FALSE(signature.Matches({at::zeros({2}), c10::IValue(int64_t{4})}));
  EXPECT_FALSE(
      signature.WidenedTo({at::zeros({5}), c10::IValue(int64_t{4})}, RangeEnd::kPowerOfTwo));
  EXPECT_NE(
      GroupSignature::Of({at::zeros({2}), c10::IValue(c10::List<at::Tensor>())}, {0, 0}, signature),
      "");
}

}  // namespace
}  // namespace tvmbridge
