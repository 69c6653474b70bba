// Partitioner units: observation, specialisation and regions on small TorchScript modules.
#include <string>

#include <gtest/gtest.h>
#include <torch/script.h>

#include "compiler/region_timing.h"
#include "partition/partitioner.h"
#include "partition/shape_observer.h"
#include "passes/pipeline.h"

namespace tvmbridge::partition {
namespace {

struct Analysed {
  passes::PreparedGraph prepared;
  Observations observations;
  Partition partition;
};

Analysed Analyse(const std::string& source, std::vector<TensorSpec> inputs,
                 PartitionOptions options = {}) {
  torch::jit::Module module("Net");
  module.register_attribute("training", c10::BoolType::get(), true);
  module.define(source);
  Analysed result{
      passes::PrepareForConversion(module, true, passes::InputWrites::kWriteBack), {}, {}};
  auto& graph = result.prepared.graph;
  c10::IValue self = result.prepared.frozen._ivalue();
  SpecializeToShapes(graph, ObserveTensors(*graph, self, inputs));
  result.observations = ObserveTensors(*graph, self, inputs);
  result.partition = PartitionGraph(*graph, result.observations, options);
  return result;
}

std::string PlacementOf(const Partition& partition, const std::string& kind) {
  for (const NodePlacement& placement : partition.placements) {
    if (placement.node->kind().toQualString() == kind) {
      return placement.region >= 0 ? "tvm" + std::to_string(placement.region) : "torch";
    }
  }
  return "absent";
}

TEST(Partition, UnsupportedOpSplitsTheGraphIntoTwoRegions) {
  PartitionOptions options;
  options.min_block_size = 1;
  Analysed a = Analyse(R"(
    def forward(self, x):
        y = torch.relu(x) * 2.0
        v, i = torch.cummax(y, -1)
        return torch.sigmoid(v) + 1.0
  )",
                       {{"x", {2, 8}, c10::ScalarType::Float}}, options);
  ASSERT_EQ(a.partition.regions.size(), 2u);
  EXPECT_EQ(PlacementOf(a.partition, "aten::relu"), "tvm0");
  EXPECT_EQ(PlacementOf(a.partition, "aten::cummax"), "torch");
  EXPECT_EQ(PlacementOf(a.partition, "aten::sigmoid"), "tvm1");
  // The second region's input is cummax's output, with the shape observed for it.
  const Region& second = a.partition.regions[1];
  ASSERT_EQ(second.inputs.size(), 1u);
  EXPECT_EQ(a.observations.at(second.inputs[0]).shape, (std::vector<int64_t>{2, 8}));
}

TEST(Partition, ShapeChecksAreFoldedAway) {
  Analysed a = Analyse(R"(
    def forward(self, x):
        if x.dim() == 2:
            y = torch.relu(x.view(x.size(0) * 2, -1))
        else:
            y = torch.sigmoid(x)
        return y + 1.0
  )",
                       {{"x", {4, 6}, c10::ScalarType::Float}});
  EXPECT_EQ(PlacementOf(a.partition, "prim::If"), "absent");
  EXPECT_EQ(PlacementOf(a.partition, "aten::sigmoid"), "absent");
  EXPECT_EQ(PlacementOf(a.partition, "aten::relu"), "tvm0");
  EXPECT_EQ(a.partition.regions.size(), 1u);
}

TEST(Partition, DataDependentShapesStayInPyTorch) {
  PartitionOptions options;
  options.min_block_size = 1;
  Analysed a = Analyse(R"(
    def forward(self, x):
        kept = x[torch.nonzero(x > 0).squeeze(1)]
        return kept * 2.0
  )",
                       {{"x", {64}, c10::ScalarType::Float}}, options);
  EXPECT_EQ(PlacementOf(a.partition, "aten::nonzero"), "torch");
  EXPECT_EQ(PlacementOf(a.partition, "aten::mul"), "torch");
  for (const NodePlacement& placement : a.partition.placements) {
    if (placement.node->kind() == c10::aten::mul) {
      EXPECT_EQ(placement.cause, PlacementCause::kInputFromPyTorch);
      EXPECT_NE(placement.reason.find("data-dependent shape"), std::string::npos);
    }
    if (placement.node->kind() == c10::aten::nonzero) {
      EXPECT_EQ(placement.cause, PlacementCause::kDataDependentShape);
    }
  }
}

TEST(Partition, SmallRegionsAreEvicted) {
  PartitionOptions options;
  options.min_block_size = 3;
  Analysed a = Analyse(R"(
    def forward(self, x):
        v, i = torch.cummax(torch.relu(x), -1)
        return v
  )",
                       {{"x", {2, 8}, c10::ScalarType::Float}}, options);
  EXPECT_TRUE(a.partition.regions.empty());
  EXPECT_EQ(PlacementOf(a.partition, "aten::relu"), "torch");
}

TEST(Partition, UnknownTorchExecutedOpIsAnError) {
  PartitionOptions options;
  options.torch_executed_ops = {"aten::relu_but_not_really"};
  EXPECT_THROW(Analyse(R"(
    def forward(self, x):
        return torch.relu(x)
  )",
                       {{"x", {2}, c10::ScalarType::Float}}, options),
               c10::ValueError);
}

// What enable()'s pass sees: an unfrozen graph, no shapes. Op kinds decide; a branch on
// tensor values and an op without a converter split the runs; an input check does not.
TEST(Partition, RegionsByOpKindSplitAtControlFlowAndUnsupportedOps) {
  torch::jit::Module module("Net");
  module.define(R"(
    def forward(self, x):
        a = torch.relu(x)
        b = a + a
        assert b.dim() == 1
        c = torch.sigmoid(b)
        values, indices = torch.cummax(c, -1)
        return torch.exp(-torch.tanh(values)), indices
  )");
  std::shared_ptr<torch::jit::Graph> graph = module.get_method("forward").graph()->copy();
  std::vector<Region> regions = RegionsByOpKind(*graph, /*min_block_size=*/3);
  ASSERT_EQ(regions.size(), 2u);
  // relu, add, the rank check and sigmoid; then tanh, neg, exp after the unsupported cummax.
  EXPECT_EQ(regions[0].nodes.size(), 6u);
  EXPECT_EQ(regions[0].nodes.back()->kind().toQualString(), std::string("aten::sigmoid"));
  ASSERT_EQ(regions[0].outputs.size(), 1u);
  EXPECT_EQ(regions[1].nodes.size(), 3u);
  EXPECT_EQ(regions[1].inputs.size(), 1u);  // cummax's values, computed by PyTorch
  // Too small a run stays in PyTorch.
  EXPECT_TRUE(RegionsByOpKind(*graph, /*min_block_size=*/5).size() == 1u);
}

}  // namespace
}  // namespace tvmbridge::partition

namespace tvmbridge {

TEST(Partition, ARegionReturnedToPyTorchShiftsTheLaterOnes) {
  partition::Partition partition;
  partition.regions.resize(3);
  for (int region : {0, 1, 1, -1, 2}) {
    partition::NodePlacement placement;
    placement.region = region;
    partition.placements.push_back(placement);
  }
  ReturnRegionToPyTorch(partition, 1, partition::PlacementCause::kMeasuredSlower, "slower");
  ASSERT_EQ(partition.regions.size(), 2u);
  std::vector<int> regions;
  for (const auto& placement : partition.placements) regions.push_back(placement.region);
  EXPECT_EQ(regions, (std::vector<int>{0, -1, -1, -1, 1}));
  EXPECT_EQ(partition.placements[1].cause, partition::PlacementCause::kMeasuredSlower);
  EXPECT_EQ(partition.placements[1].reason, "slower");
  EXPECT_TRUE(partition.placements[1].fallback());
  EXPECT_EQ(partition.placements[0].cause, partition::PlacementCause::kTvm);
  EXPECT_FALSE(partition.placements[0].fallback());
}

}  // namespace tvmbridge
